/*
 * vt.js: a small VT100/xterm-compatible terminal emulator for the browser, written for this
 * project (no dependencies, no build step). Classic script: defines globalThis.VTerminal.
 *
 *   const term = new VTerminal(element, { cols, rows });   // or fit to the element
 *   term.ondata = (text) => ...;      // keys and pastes, to send to the host
 *   term.onresize = (cols, rows) => ...;
 *   term.write(text);                 // output from the host (already decoded to text)
 *   term.text();                      // the visible screen as plain text (for tests)
 *   term.historyText();               // the scroll-back as plain text, oldest line first
 *
 * Scroll-back: lines that scroll off the top of the main screen (not the alternate screen
 * of full-screen programs, nor a scroll region that starts below the top) are kept, up to
 * opts.scrollback lines (default 1000, 0 for none), above the screen in the same element:
 * give the element `overflow-y: auto` and scroll it with the mouse, or Shift+PageUp /
 * Shift+PageDown. Output keeps the view at the bottom unless the user scrolled up; typing
 * returns to it. CSI 3 J clears the scroll-back, as in xterm.
 *
 * Supported: C0 controls (BS HT LF VT FF CR BEL), ESC 7/8 D E M c = >, charsets ESC ( 0 / B
 * (DEC line drawing), CSI cursor movement (A B C D E F G H f d ` a e), erase (J K X), insert
 * and delete (@ P L M), scroll (S T), scroll regions (r), SGR (bold, dim, italic, underline,
 * blink, reverse, invisible; 8/16/256 colours and 24-bit), modes (4 insert, 20 newline;
 * ?1 application cursor keys, ?6 origin, ?7 autowrap, ?25 cursor, ?47/?1047/?1049 alternate
 * screen), save/restore cursor (s u), device status and attributes (5n 6n c), tab stops
 * (H in ESC, g); OSC titles are accepted and ignored. Keyboard: printable keys, Enter,
 * Backspace, Tab, Escape, arrows, Home/End, PgUp/PgDn, Insert/Delete, F1-F12, Ctrl and Alt
 * combinations; paste.
 */
(function (root) {
  'use strict';

  const DEC_GRAPHICS = {
    '`': '\u25c6', a: '\u2592', f: '\u00b0', g: '\u00b1', j: '\u2518', k: '\u2510', l: '\u250c',
    m: '\u2514', n: '\u253c', o: '\u23ba', p: '\u23bb', q: '\u2500', r: '\u23bc', s: '\u23bd',
    t: '\u251c', u: '\u2524', v: '\u2534', w: '\u252c', x: '\u2502', y: '\u2264', z: '\u2265',
    '{': '\u03c0', '|': '\u2260', '}': '\u00a3', '~': '\u00b7',
  };

  const BASE16 = ['#000000', '#cd0000', '#00cd00', '#cdcd00', '#0000ee', '#cd00cd', '#00cdcd', '#e5e5e5',
    '#7f7f7f', '#ff0000', '#00ff00', '#ffff00', '#5c5cff', '#ff00ff', '#00ffff', '#ffffff'];

  function colour256(n) {
    if (n < 16) return BASE16[n];
    if (n < 232) {
      n -= 16;
      const v = (c) => (c ? 55 + c * 40 : 0);
      return 'rgb(' + v(Math.floor(n / 36)) + ',' + v(Math.floor(n / 6) % 6) + ',' + v(n % 6) + ')';
    }
    const g = 8 + (n - 232) * 10;
    return 'rgb(' + g + ',' + g + ',' + g + ')';
  }

  // Attributes: {fg, bg: null (default) or CSS colour; flags bit set}
  const BOLD = 1, DIM = 2, ITALIC = 4, UNDERLINE = 8, BLINK = 16, REVERSE = 32, INVISIBLE = 64;
  const DEFAULT_ATTR = Object.freeze({ fg: null, bg: null, flags: 0 });

  function blankRow(cols, attr) {
    const row = new Array(cols);
    for (let i = 0; i < cols; i++) row[i] = [' ', attr];
    return row;
  }

  function VTerminal(el, opts) {
    opts = opts || {};
    this.el = el;
    this.ondata = function () {};
    this.onresize = function () {};
    this.title = '';
    el.classList.add('vt');
    if (!el.hasAttribute('tabindex')) el.tabIndex = 0;
    this.scrollback = opts.scrollback === undefined ? 1000 : Math.max(0, opts.scrollback | 0);
    this.history = [];
    this._historyPending = [];
    this._historyEl = document.createElement('div');
    this._historyEl.className = 'vt-history';
    el.appendChild(this._historyEl);
    this._screenEl = document.createElement('div');
    this._screenEl.className = 'vt-screen';
    this._screenEl.setAttribute('aria-live', 'polite');
    el.appendChild(this._screenEl);
    let cols = opts.cols, rows = opts.rows;
    if (!cols || !rows) {
      const fit = this.measure();
      cols = cols || fit.cols;
      rows = rows || fit.rows;
    }
    this.cols = cols;
    this.rows = rows;
    this.reset();
    this._bindKeys();
  }

  const P = VTerminal.prototype;

  // Columns and rows that fit the element, from the size of one character cell.
  P.measure = function () {
    const probe = document.createElement('span');
    probe.textContent = 'MMMMMMMMMM';
    probe.style.visibility = 'hidden';
    this._screenEl.appendChild(probe);
    const r = probe.getBoundingClientRect();
    this._screenEl.removeChild(probe);
    const cw = r.width / 10 || 8, ch = r.height || 16;
    // The client box: inside any scroll bar (give the element `scrollbar-gutter: stable` so
    // that the scroll-back's bar does not take columns away later).
    const w = this.el.clientWidth, h = this.el.clientHeight;
    return { cols: Math.max(20, Math.floor((w - 8) / cw)), rows: Math.max(5, Math.floor((h - 8) / ch)) };
  };

  P.reset = function () {
    this.attr = DEFAULT_ATTR;
    this.main = this._blankScreen();
    this.alt = null;
    this.screen = this.main;
    this.x = 0;
    this.y = 0;
    this.wrapPending = false;
    this.top = 0;
    this.bottom = this.rows - 1;
    this.modes = { autowrap: true, appCursor: false, cursor: true, insert: false, origin: false, newline: false };
    this.charsets = ['B', 'B'];
    this.gl = 0;
    this.saved = null;
    this.tabs = new Set();
    for (let i = 8; i < this.cols; i += 8) this.tabs.add(i);
    this._state = 'ground';
    this._params = '';
    this._osc = '';
    this._dirty = true;
    this._schedule();
  };

  P._blankScreen = function () {
    const s = [];
    for (let i = 0; i < this.rows; i++) s.push(blankRow(this.cols, DEFAULT_ATTR));
    return s;
  };

  P.resize = function (cols, rows) {
    if (cols === this.cols && rows === this.rows) return;
    const fix = (scr) => {
      if (!scr) return scr;
      while (scr.length > rows) {
        const gone = scr.shift();
        if (scr === this.main) this._toHistory(gone);
      }
      while (scr.length < rows) scr.push(blankRow(cols, DEFAULT_ATTR));
      for (const row of scr) {
        if (row.length > cols) row.length = cols;
        while (row.length < cols) row.push([' ', DEFAULT_ATTR]);
      }
      return scr;
    };
    const shift = Math.max(0, this.rows - rows);
    this.cols = cols;
    this.rows = rows;
    fix(this.main);
    fix(this.alt);
    this.y = Math.max(0, Math.min(rows - 1, this.y - shift));
    this.x = Math.min(cols - 1, this.x);
    this.top = 0;
    this.bottom = rows - 1;
    this._dirty = true;
    this._schedule();
    this.onresize(cols, rows);
  };

  P.fit = function () {
    const f = this.measure();
    this.resize(f.cols, f.rows);
  };

  // ---- output parsing ---------------------------------------------------------------------

  P.write = function (text) {
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      const code = text.charCodeAt(i);
      switch (this._state) {
        case 'ground':
          if (code < 0x20 || code === 0x7f) this._control(code);
          else this._print(c);
          break;
        case 'esc':
          this._esc(c);
          break;
        case 'csi':
          if (code >= 0x40 && code <= 0x7e) {
            this._state = 'ground';
            this._csi(this._params, c);
          } else if (code === 0x18 || code === 0x1a) {
            this._state = 'ground';
          } else if (code === 0x1b) {
            this._state = 'esc';
          } else if (code < 0x20) {
            this._control(code);
          } else {
            this._params += c;
          }
          break;
        case 'osc':
          if (code === 0x07) this._endOsc();
          else if (code === 0x1b) this._state = 'osc-esc';
          else this._osc += c;
          break;
        case 'osc-esc':
          this._endOsc();
          if (c !== '\\') this._esc(c);
          break;
        case 'charset':
          this.charsets[this._charsetSlot] = c;
          this._state = 'ground';
          break;
        case 'hash':
          if (c === '8') this._fillE();
          this._state = 'ground';
          break;
        default:
          this._state = 'ground';
      }
    }
    this._schedule();
  };

  P._endOsc = function () {
    const m = /^([0-2]);(.*)$/s.exec(this._osc);
    if (m) this.title = m[2];
    this._osc = '';
    this._state = 'ground';
  };

  P._fillE = function () {
    for (const row of this.screen) for (const cell of row) { cell[0] = 'E'; cell[1] = DEFAULT_ATTR; }
    this._dirty = true;
  };

  P._control = function (code) {
    switch (code) {
      case 0x07: break; // BEL
      case 0x08: // BS
        if (this.x > 0) this.x--;
        this.wrapPending = false;
        break;
      case 0x09: this._tab(1); break;
      case 0x0a: case 0x0b: case 0x0c:
        this._lineFeed();
        if (this.modes.newline) this.x = 0;
        break;
      case 0x0d: this.x = 0; this.wrapPending = false; break;
      case 0x0e: this.gl = 1; break; // SO
      case 0x0f: this.gl = 0; break; // SI
      case 0x1b: this._state = 'esc'; break;
      default: break;
    }
  };

  P._tab = function (n) {
    while (n-- > 0) {
      let x = this.x + 1;
      while (x < this.cols - 1 && !this.tabs.has(x)) x++;
      this.x = Math.min(x, this.cols - 1);
    }
    this.wrapPending = false;
  };

  P._print = function (c) {
    if (this.charsets[this.gl] === '0' && DEC_GRAPHICS[c]) c = DEC_GRAPHICS[c];
    if (this.wrapPending) {
      this.wrapPending = false;
      if (this.modes.autowrap) {
        this.x = 0;
        this._lineFeed();
      }
    }
    const row = this.screen[this.y];
    if (this.modes.insert) {
      row.splice(this.x, 0, [c, this.attr]);
      row.length = this.cols;
    } else {
      row[this.x] = [c, this.attr];
    }
    this._dirtyRow(this.y);
    if (this.x === this.cols - 1) this.wrapPending = true;
    else this.x++;
  };

  P._dirtyRow = function (y) {
    if (!this._dirtyRows) this._dirtyRows = new Set();
    this._dirtyRows.add(y);
  };

  P._lineFeed = function () {
    this.wrapPending = false;
    if (this.y === this.bottom) this._scrollUp(1);
    else if (this.y < this.rows - 1) this.y++;
  };

  P._reverseIndex = function () {
    if (this.y === this.top) this._scrollDown(1);
    else if (this.y > 0) this.y--;
  };

  P._scrollUp = function (n) {
    n = Math.min(n, this.bottom - this.top + 1);
    const keep = this.screen === this.main && this.top === 0;
    for (let i = 0; i < n; i++) {
      const gone = this.screen.splice(this.top, 1)[0];
      if (keep) this._toHistory(gone);
      this.screen.splice(this.bottom, 0, blankRow(this.cols, this._eraseAttr()));
    }
    this._dirty = true;
  };

  // A row that left the top of the main screen; drawn with the next render.
  P._toHistory = function (row) {
    if (!this.scrollback) return;
    this.history.push(row);
    this._historyPending.push(row);
    if (this.history.length > this.scrollback) this.history.shift();
    if (this._historyPending.length > this.scrollback) this._historyPending.shift();
    this._schedule();
  };

  P.clearHistory = function () {
    this.history = [];
    this._historyPending = [];
    this._historyEl.textContent = '';
  };

  P.historyText = function () {
    return this.history.map((row) => row.map((c) => c[0]).join('').replace(/\s+$/, '')).join('\n');
  };

  P._scrollDown = function (n) {
    n = Math.min(n, this.bottom - this.top + 1);
    for (let i = 0; i < n; i++) {
      this.screen.splice(this.bottom, 1);
      this.screen.splice(this.top, 0, blankRow(this.cols, this._eraseAttr()));
    }
    this._dirty = true;
  };

  // Erased cells keep the current background colour (as xterm does).
  P._eraseAttr = function () {
    return this.attr.bg ? { fg: null, bg: this.attr.bg, flags: 0 } : DEFAULT_ATTR;
  };

  P._esc = function (c) {
    this._state = 'ground';
    switch (c) {
      case '[': this._state = 'csi'; this._params = ''; break;
      case ']': this._state = 'osc'; this._osc = ''; break;
      case '(': this._state = 'charset'; this._charsetSlot = 0; break;
      case ')': this._state = 'charset'; this._charsetSlot = 1; break;
      case '*': case '+': this._state = 'charset'; this._charsetSlot = 1; break;
      case '#': this._state = 'hash'; break;
      case '7': this._saveCursor(); break;
      case '8': this._restoreCursor(); break;
      case 'D': this._lineFeed(); break;
      case 'E': this.x = 0; this._lineFeed(); break;
      case 'M': this._reverseIndex(); break;
      case 'H': this.tabs.add(this.x); break;
      case 'c': this.reset(); break;
      case '=': this.modes.appKeypad = true; break;
      case '>': this.modes.appKeypad = false; break;
      default: break; // unsupported: ignored
    }
  };

  P._saveCursor = function () {
    this.saved = { x: this.x, y: this.y, attr: this.attr, charsets: this.charsets.slice(), gl: this.gl, origin: this.modes.origin, wrapPending: this.wrapPending };
  };

  P._restoreCursor = function () {
    const s = this.saved || { x: 0, y: 0, attr: DEFAULT_ATTR, charsets: ['B', 'B'], gl: 0, origin: false, wrapPending: false };
    this.x = Math.min(s.x, this.cols - 1);
    this.y = Math.min(s.y, this.rows - 1);
    this.attr = s.attr;
    this.charsets = s.charsets.slice();
    this.gl = s.gl;
    this.modes.origin = s.origin;
    this.wrapPending = s.wrapPending;
  };

  P._moveTo = function (x, y) {
    const minY = this.modes.origin ? this.top : 0;
    const maxY = this.modes.origin ? this.bottom : this.rows - 1;
    this.x = Math.max(0, Math.min(this.cols - 1, x));
    this.y = Math.max(minY, Math.min(maxY, y + (this.modes.origin ? this.top : 0)));
    this.wrapPending = false;
  };

  P._erase = function (y, from, to) {
    const row = this.screen[y];
    const a = this._eraseAttr();
    for (let x = Math.max(0, from); x < Math.min(this.cols, to); x++) row[x] = [' ', a];
    this._dirtyRow(y);
  };

  P._csi = function (raw, final) {
    let prefix = '';
    if (/^[?>=!]/.test(raw)) { prefix = raw[0]; raw = raw.slice(1); }
    const inter = raw.replace(/[0-9;:]/g, '');
    const params = raw.replace(/[^0-9;:]/g, '').split(';').map((p) => (p === '' ? NaN : parseInt(p, 10)));
    const p = (i, def) => (Number.isNaN(params[i]) || params[i] === undefined ? def : params[i]);
    const n = Math.max(1, p(0, 1));
    if (inter === '$' || inter === '"' || inter === "'") return; // DECRQM, DECSCA...: ignored
    if (prefix === '?' && (final === 'h' || final === 'l')) return this._decMode(params, final === 'h');
    if (prefix === '>' || prefix === '=') {
      if (final === 'c') this.ondata('\x1b[>0;10;0c');
      return;
    }
    switch (final) {
      case 'A': this._moveTo(this.x, this.y - n - (this.modes.origin ? this.top : 0)); break;
      case 'B': case 'e': this._moveTo(this.x, this.y + n - (this.modes.origin ? this.top : 0)); break;
      case 'C': case 'a': this._moveTo(this.x + n, this.y - (this.modes.origin ? this.top : 0)); break;
      case 'D': this._moveTo(this.x - n, this.y - (this.modes.origin ? this.top : 0)); break;
      case 'E': this._moveTo(0, this.y + n - (this.modes.origin ? this.top : 0)); break;
      case 'F': this._moveTo(0, this.y - n - (this.modes.origin ? this.top : 0)); break;
      case 'G': case '`': this._moveTo(n - 1, this.y - (this.modes.origin ? this.top : 0)); break;
      case 'd': this._moveTo(this.x, n - 1); break;
      case 'H': case 'f': this._moveTo(Math.max(1, p(1, 1)) - 1, n - 1); break;
      case 'I': this._tab(n); break;
      case 'Z': for (let k = 0; k < n; k++) { let x = this.x - 1; while (x > 0 && !this.tabs.has(x)) x--; this.x = Math.max(0, x); } break;
      case 'J': {
        const mode = p(0, 0);
        if (mode === 0) {
          this._erase(this.y, this.x, this.cols);
          for (let y = this.y + 1; y < this.rows; y++) this._erase(y, 0, this.cols);
        } else if (mode === 1) {
          for (let y = 0; y < this.y; y++) this._erase(y, 0, this.cols);
          this._erase(this.y, 0, this.x + 1);
        } else if (mode === 3) {
          this.clearHistory();
        } else {
          for (let y = 0; y < this.rows; y++) this._erase(y, 0, this.cols);
        }
        this.wrapPending = false;
        break;
      }
      case 'K': {
        const mode = p(0, 0);
        if (mode === 0) this._erase(this.y, this.x, this.cols);
        else if (mode === 1) this._erase(this.y, 0, this.x + 1);
        else this._erase(this.y, 0, this.cols);
        this.wrapPending = false;
        break;
      }
      case 'X': this._erase(this.y, this.x, this.x + n); break;
      case '@': {
        const row = this.screen[this.y];
        for (let k = 0; k < n; k++) row.splice(this.x, 0, [' ', this._eraseAttr()]);
        row.length = this.cols;
        this._dirtyRow(this.y);
        break;
      }
      case 'P': {
        const row = this.screen[this.y];
        row.splice(this.x, Math.min(n, this.cols - this.x));
        while (row.length < this.cols) row.push([' ', this._eraseAttr()]);
        this._dirtyRow(this.y);
        break;
      }
      case 'L': case 'M': {
        if (this.y < this.top || this.y > this.bottom) break;
        const saveTop = this.top;
        this.top = this.y;
        if (final === 'L') this._scrollDown(n);
        else this._scrollUp(n);
        this.top = saveTop;
        this.x = 0;
        break;
      }
      case 'S': this._scrollUp(n); break;
      case 'T': if (params.length <= 1) this._scrollDown(n); break;
      case 'b': break; // REP: rarely used; ignored
      case 'c': if (p(0, 0) === 0) this.ondata('\x1b[?1;2c'); break; // VT100 with AVO
      case 'g': if (p(0, 0) === 3) this.tabs.clear(); else this.tabs.delete(this.x); break;
      case 'h': case 'l': {
        for (const m of params) {
          if (m === 4) this.modes.insert = final === 'h';
          if (m === 20) this.modes.newline = final === 'h';
        }
        break;
      }
      case 'm': this._sgr(raw); break;
      case 'n':
        if (p(0, 0) === 5) this.ondata('\x1b[0n');
        else if (p(0, 0) === 6) this.ondata('\x1b[' + (this.y - (this.modes.origin ? this.top : 0) + 1) + ';' + (this.x + 1) + 'R');
        break;
      case 'r': {
        const t = Math.max(1, p(0, 1)) - 1, b = Math.min(this.rows, p(1, this.rows)) - 1;
        if (t < b) {
          this.top = t;
          this.bottom = b;
          this._moveTo(0, 0);
        }
        break;
      }
      case 's': this._saveCursor(); break;
      case 'u': this._restoreCursor(); break;
      case 't': break; // window manipulation: ignored
      default: break;
    }
  };

  P._decMode = function (params, on) {
    for (const m of params) {
      switch (m) {
        case 1: this.modes.appCursor = on; break;
        case 6: this.modes.origin = on; this._moveTo(0, 0); break;
        case 7: this.modes.autowrap = on; break;
        case 25: this.modes.cursor = on; this._dirty = true; break;
        case 47: case 1047: this._altScreen(on, false); break;
        case 1048: if (on) this._saveCursor(); else this._restoreCursor(); break;
        case 1049: this._altScreen(on, true); break;
        default: break;
      }
    }
  };

  P._altScreen = function (on, saveCursor) {
    if (on && this.screen !== this.alt) {
      if (saveCursor) this._saveCursor();
      this.alt = this._blankScreen();
      this.screen = this.alt;
    } else if (!on && this.screen === this.alt) {
      this.screen = this.main;
      this.alt = null;
      if (saveCursor) this._restoreCursor();
    }
    this._dirty = true;
  };

  P._sgr = function (raw) {
    const ps = raw === '' ? [0] : raw.split(';').map((x) => (x === '' ? 0 : parseInt(x, 10)));
    let { fg, bg, flags } = this.attr;
    for (let i = 0; i < ps.length; i++) {
      const v = ps[i];
      if (v === 0) { fg = null; bg = null; flags = 0; }
      else if (v === 1) flags |= BOLD;
      else if (v === 2) flags |= DIM;
      else if (v === 3) flags |= ITALIC;
      else if (v === 4) flags |= UNDERLINE;
      else if (v === 5 || v === 6) flags |= BLINK;
      else if (v === 7) flags |= REVERSE;
      else if (v === 8) flags |= INVISIBLE;
      else if (v === 21 || v === 22) flags &= ~(BOLD | DIM);
      else if (v === 23) flags &= ~ITALIC;
      else if (v === 24) flags &= ~UNDERLINE;
      else if (v === 25) flags &= ~BLINK;
      else if (v === 27) flags &= ~REVERSE;
      else if (v === 28) flags &= ~INVISIBLE;
      else if (v >= 30 && v <= 37) fg = BASE16[v - 30];
      else if (v === 39) fg = null;
      else if (v >= 40 && v <= 47) bg = BASE16[v - 40];
      else if (v === 49) bg = null;
      else if (v >= 90 && v <= 97) fg = BASE16[v - 90 + 8];
      else if (v >= 100 && v <= 107) bg = BASE16[v - 100 + 8];
      else if (v === 38 || v === 48) {
        let col = null;
        if (ps[i + 1] === 5) { col = colour256(ps[i + 2] & 255); i += 2; }
        else if (ps[i + 1] === 2) { col = 'rgb(' + (ps[i + 2] & 255) + ',' + (ps[i + 3] & 255) + ',' + (ps[i + 4] & 255) + ')'; i += 4; }
        if (v === 38) fg = col; else bg = col;
      }
    }
    this.attr = { fg, bg, flags };
  };

  // ---- rendering --------------------------------------------------------------------------

  P._schedule = function () {
    if (this._raf) return;
    const run = () => { this._raf = null; this.render(); };
    this._raf = typeof requestAnimationFrame === 'function' ? requestAnimationFrame(run) : setTimeout(run, 16);
  };

  P._style = function (attr, cursor) {
    let fg = attr.fg, bg = attr.bg;
    let reverse = !!(attr.flags & REVERSE);
    if (cursor) reverse = !reverse;
    if (reverse) {
      const f = fg || 'var(--vt-fg)', b = bg || 'var(--vt-bg)';
      fg = b;
      bg = f;
    }
    if ((attr.flags & BOLD) && fg && BASE16.indexOf(fg) >= 0 && BASE16.indexOf(fg) < 8) fg = BASE16[BASE16.indexOf(fg) + 8];
    let s = '';
    if (fg) s += 'color:' + fg + ';';
    if (bg) s += 'background:' + bg + ';';
    if (attr.flags & BOLD) s += 'font-weight:bold;';
    if (attr.flags & DIM) s += 'opacity:.7;';
    if (attr.flags & ITALIC) s += 'font-style:italic;';
    if (attr.flags & UNDERLINE) s += 'text-decoration:underline;';
    if (attr.flags & INVISIBLE) s += 'visibility:hidden;';
    return s;
  };

  P.render = function () {
    this._renderHistory();
    const rowsEl = this._screenEl;
    if (this._dirty || rowsEl.children.length !== this.rows) {
      rowsEl.textContent = '';
      for (let y = 0; y < this.rows; y++) {
        const d = document.createElement('div');
        d.className = 'vt-row';
        rowsEl.appendChild(d);
      }
      this._dirty = false;
      this._dirtyRows = null;
      for (let y = 0; y < this.rows; y++) this._renderRow(y);
    } else {
      const rows = this._dirtyRows || new Set();
      if (this._cursorRow !== undefined) rows.add(this._cursorRow);
      rows.add(this.y);
      this._dirtyRows = null;
      for (const y of rows) if (y < this.rows) this._renderRow(y);
    }
    this._cursorRow = this.y;
  };

  // Appends the rows that scrolled off since the last render (each drawn once: history
  // does not change), trims to the limit, and follows the output if the view was at the
  // bottom.
  P._renderHistory = function () {
    if (!this._historyPending.length) return;
    const el = this.el;
    const atBottom = el.scrollTop + el.clientHeight >= el.scrollHeight - 2;
    const frag = document.createDocumentFragment();
    for (const row of this._historyPending) {
      const d = document.createElement('div');
      d.className = 'vt-row';
      d.appendChild(this._rowFragment(row, -1));
      frag.appendChild(d);
    }
    this._historyPending = [];
    this._historyEl.appendChild(frag);
    while (this._historyEl.children.length > this.history.length) this._historyEl.removeChild(this._historyEl.firstChild);
    if (atBottom) el.scrollTop = el.scrollHeight;
  };

  P.scrollToBottom = function () {
    this.el.scrollTop = this.el.scrollHeight;
  };

  P._renderRow = function (y) {
    const rowEl = this._screenEl.children[y];
    const cursorX = this.modes.cursor && y === this.y ? this.x : -1;
    const frag = this._rowFragment(this.screen[y], cursorX);
    rowEl.textContent = '';
    rowEl.appendChild(frag);
  };

  P._rowFragment = function (row, cursorX) {
    const frag = document.createDocumentFragment();
    let run = '', runAttr = null, runCursor = false;
    const flush = () => {
      if (!run) return;
      const style = this._style(runAttr, runCursor);
      if (style || runCursor) {
        const span = document.createElement('span');
        if (style) span.style.cssText = style;
        if (runCursor) span.className = 'vt-cursor';
        span.textContent = run;
        frag.appendChild(span);
      } else {
        frag.appendChild(document.createTextNode(run));
      }
      run = '';
    };
    for (let x = 0; x < row.length; x++) {
      const [ch, attr] = row[x];
      const isCursor = x === cursorX;
      if (attr !== runAttr || isCursor !== runCursor) {
        flush();
        runAttr = attr;
        runCursor = isCursor;
      }
      run += ch;
    }
    flush();
    return frag;
  };

  // The visible screen as text, one line per row, trailing blanks removed.
  P.text = function () {
    return this.screen.map((row) => row.map((c) => c[0]).join('').replace(/\s+$/, '')).join('\n');
  };

  // ---- keyboard ---------------------------------------------------------------------------

  P._bindKeys = function () {
    this.el.addEventListener('keydown', (e) => {
      // Shift+PageUp/PageDown page through the scroll-back (as in xterm); not sent.
      if (e.shiftKey && !e.ctrlKey && !e.altKey && (e.key === 'PageUp' || e.key === 'PageDown')) {
        e.preventDefault();
        const page = Math.max(1, this.el.clientHeight - 32);
        this.el.scrollTop += e.key === 'PageUp' ? -page : page;
        return;
      }
      const s = this.keySequence(e);
      if (s !== null) {
        e.preventDefault();
        this.scrollToBottom();
        this.ondata(s);
      }
    });
    this.el.addEventListener('paste', (e) => {
      const t = (e.clipboardData || window.clipboardData).getData('text');
      e.preventDefault();
      if (t) this.ondata(t.replace(/\r?\n/g, '\r'));
    });
  };

  P.keySequence = function (e) {
    const app = this.modes.appCursor;
    const mod = (e.shiftKey ? 1 : 0) + (e.altKey ? 2 : 0) + (e.ctrlKey ? 4 : 0);
    const arrow = (c) => (mod ? '\x1b[1;' + (mod + 1) + c : (app ? '\x1bO' : '\x1b[') + c);
    const tilde = (n) => '\x1b[' + n + (mod ? ';' + (mod + 1) : '') + '~';
    switch (e.key) {
      case 'Enter': return this.modes.newline ? '\r\n' : '\r';
      case 'Backspace': return e.ctrlKey ? '\x08' : '\x7f';
      case 'Tab': return e.shiftKey ? '\x1b[Z' : '\t';
      case 'Escape': return '\x1b';
      case 'ArrowUp': return arrow('A');
      case 'ArrowDown': return arrow('B');
      case 'ArrowRight': return arrow('C');
      case 'ArrowLeft': return arrow('D');
      case 'Home': return arrow('H');
      case 'End': return arrow('F');
      case 'Insert': return tilde(2);
      case 'Delete': return tilde(3);
      case 'PageUp': return tilde(5);
      case 'PageDown': return tilde(6);
      case 'F1': return '\x1bOP';
      case 'F2': return '\x1bOQ';
      case 'F3': return '\x1bOR';
      case 'F4': return '\x1bOS';
      case 'F5': return tilde(15);
      case 'F6': return tilde(17);
      case 'F7': return tilde(18);
      case 'F8': return tilde(19);
      case 'F9': return tilde(20);
      case 'F10': return tilde(21);
      case 'F11': return tilde(23);
      case 'F12': return tilde(24);
      default: break;
    }
    if (e.key.length !== 1 || e.metaKey) return null;
    if (e.ctrlKey && !e.altKey) {
      const k = e.key.toLowerCase();
      if (k >= 'a' && k <= 'z') return String.fromCharCode(k.charCodeAt(0) - 96);
      const special = { ' ': '\x00', '@': '\x00', '2': '\x00', '[': '\x1b', '3': '\x1b', '\\': '\x1c', '4': '\x1c', ']': '\x1d', '5': '\x1d', '^': '\x1e', '6': '\x1e', '_': '\x1f', '7': '\x1f', '/': '\x1f', '8': '\x7f', '?': '\x7f' };
      if (k in special) return special[k];
      return null;
    }
    if (e.ctrlKey && e.altKey) return e.key; // AltGr (reported as Ctrl+Alt): the typed character
    return (e.altKey ? '\x1b' : '') + e.key;
  };

  root.VTerminal = VTerminal;
})(typeof globalThis !== 'undefined' ? globalThis : this);
