/*
 * wstelnet.js: a telnet client over websock.js, rendering into vt.js. Written for this
 * project. Used by wstelnet.html; exposes `window.wstelnet` (state, for tests and debugging).
 *
 * Telnet (RFC 854) with option negotiation: ECHO (RFC 857) and SUPPRESS-GO-AHEAD (RFC 858)
 * accepted from the server, TERMINAL-TYPE (RFC 1091) answered with "XTERM", NAWS (RFC 1073)
 * sent with the terminal's real size (and again on resize); other options refused. IAC in
 * data is doubled on send and undoubled on receive; CR is sent as CR NUL.
 */
(function () {
  'use strict';

  const IAC = 255, DONT = 254, DO = 253, WONT = 252, WILL = 251, SB = 250, SE = 240;
  const ECHO = 1, SGA = 3, TTYPE = 24, NAWS = 31;
  const OPT_NAMES = { 1: 'ECHO', 3: 'SGA', 24: 'TTYPE', 31: 'NAWS', 32: 'TSPEED', 33: 'LFLOW', 34: 'LINEMODE', 35: 'XDISPLOC', 36: 'ENVIRON', 39: 'NEW-ENVIRON', 5: 'STATUS', 37: 'AUTH', 38: 'ENCRYPT' };
  const CMD_NAMES = { 251: 'WILL', 252: 'WONT', 253: 'DO', 254: 'DONT' };
  const TERMINAL_TYPE = 'XTERM';

  const state = { connected: false, negotiated: [], terminal: null, sock: null };
  window.wstelnet = state;

  const $ = (id) => document.getElementById(id);
  const statusEl = $('status');
  const setStatus = (text) => { statusEl.textContent = text; };

  const term = new VTerminal($('terminal'));
  state.terminal = term;
  let sock = null;
  let decoder = null;
  let nawsOn = false;
  // Parser state for the server's byte stream.
  let tState = 'data', tCmd = 0, sbBuf = [];

  function log(dir, cmd, opt) {
    state.negotiated.push(dir + ' ' + (CMD_NAMES[cmd] || cmd) + ' ' + (OPT_NAMES[opt] || opt));
  }

  function sendCmd(cmd, opt) {
    log('sent', cmd, opt);
    sock.send([IAC, cmd, opt]);
  }

  function sendNaws() {
    if (!nawsOn || !sock) return;
    const w = term.cols, h = term.rows;
    const bytes = [IAC, SB, NAWS];
    for (const b of [(w >> 8) & 255, w & 255, (h >> 8) & 255, h & 255]) {
      bytes.push(b);
      if (b === IAC) bytes.push(IAC);
    }
    bytes.push(IAC, SE);
    sock.send(bytes);
    state.naws = [w, h];
  }

  // Option states (RFC 1143 in its simple form): answer only when a state changes, so
  // that a server repeating itself cannot start a negotiation loop.
  let remote = {}, local = {};

  function handleOption(cmd, opt) {
    log('got', cmd, opt);
    switch (cmd) {
      case WILL: { // the server offers to do something
        const ok = opt === ECHO || opt === SGA;
        if (ok && !remote[opt]) { remote[opt] = true; sendCmd(DO, opt); }
        else if (!ok) sendCmd(DONT, opt);
        break;
      }
      case WONT:
        if (remote[opt] !== false) { remote[opt] = false; sendCmd(DONT, opt); }
        break;
      case DO: { // the server asks us to do something
        const ok = opt === TTYPE || opt === SGA || opt === NAWS;
        if (ok && !local[opt]) { local[opt] = true; sendCmd(WILL, opt); }
        else if (!ok) sendCmd(WONT, opt);
        if (opt === NAWS) { nawsOn = true; sendNaws(); }
        break;
      }
      case DONT:
        if (opt === NAWS) nawsOn = false;
        if (local[opt] !== false) { local[opt] = false; sendCmd(WONT, opt); }
        break;
      default:
        break;
    }
  }

  function handleSub(buf) {
    if (buf[0] === TTYPE && buf[1] === 1) { // SEND
      const bytes = [IAC, SB, TTYPE, 0];
      for (const c of TERMINAL_TYPE) bytes.push(c.charCodeAt(0));
      bytes.push(IAC, SE);
      sock.send(bytes);
      state.negotiated.push('sent TTYPE IS ' + TERMINAL_TYPE);
    }
  }

  // Splits telnet commands out of the received bytes; returns the data bytes.
  function filter(bytes) {
    const data = [];
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      switch (tState) {
        case 'data':
          if (b === IAC) tState = 'iac';
          else data.push(b);
          break;
        case 'iac':
          if (b === IAC) { data.push(IAC); tState = 'data'; }
          else if (b >= WILL && b <= DONT) { tCmd = b; tState = 'opt'; }
          else if (b === SB) { sbBuf = []; tState = 'sb'; }
          else tState = 'data'; // NOP, GA, DM, ...: nothing to do
          break;
        case 'opt':
          handleOption(tCmd, b);
          tState = 'data';
          break;
        case 'sb':
          if (b === IAC) tState = 'sb-iac';
          else sbBuf.push(b);
          break;
        case 'sb-iac':
          if (b === SE) { handleSub(sbBuf); tState = 'data'; }
          else { sbBuf.push(b); tState = 'sb'; }
          break;
        default:
          tState = 'data';
      }
    }
    return data;
  }

  // Text typed by the user -> UTF-8 bytes, IAC doubled, CR as CR NUL.
  function sendText(text) {
    if (!sock || !state.connected) return;
    const utf8 = new TextEncoder().encode(text);
    const out = [];
    for (let i = 0; i < utf8.length; i++) {
      const b = utf8[i];
      out.push(b);
      if (b === IAC) out.push(IAC);
      else if (b === 13 && utf8[i + 1] !== 10) out.push(0);
    }
    sock.send(out);
  }

  term.ondata = sendText;
  term.onresize = () => sendNaws();
  window.addEventListener('resize', () => term.fit());

  function connect(host, port, tls, path) {
    if (sock) sock.close();
    tState = 'data';
    nawsOn = false;
    remote = {};
    local = {};
    state.negotiated = [];
    decoder = new TextDecoder('utf-8');
    term.reset();
    const url = (tls ? 'wss://' : 'ws://') + host + ':' + port + '/' + (path || 'websockify');
    sock = new Websock();
    state.sock = sock;
    sock.on('open', () => {
      state.connected = true;
      setStatus('Connected to ' + url + ' (' + sock.mode + ')');
      $('connect').textContent = 'Disconnect';
      term.el.focus();
    });
    sock.on('message', () => {
      const data = filter(sock.rQshiftBytes());
      if (data.length) term.write(decoder.decode(new Uint8Array(data), { stream: true }));
    });
    sock.on('close', (e) => {
      state.connected = false;
      setStatus('Disconnected' + (e && e.code ? ' (code ' + e.code + (e.reason ? ': ' + e.reason : '') + ')' : ''));
      $('connect').textContent = 'Connect';
    });
    sock.on('error', (e) => setStatus('Error: ' + (e && e.message ? e.message : e)));
    setStatus('Connecting to ' + url + ' ...');
    try {
      sock.open(url);
    } catch (e) {
      setStatus('Error: ' + e.message);
    }
  }

  // Prefill from ?host=&port=&tls=&path=, defaulting to the page's own origin.
  const q = new URLSearchParams(location.search);
  $('host').value = q.get('host') || location.hostname;
  $('port').value = q.get('port') || location.port || (location.protocol === 'https:' ? '443' : '80');
  $('tls').checked = q.has('tls') ? q.get('tls') === '1' || q.get('tls') === 'true' : location.protocol === 'https:';
  $('path').value = q.get('path') || 'websockify';

  $('form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (state.connected) {
      sock.close();
      return;
    }
    connect($('host').value.trim(), $('port').value.trim(), $('tls').checked, $('path').value.trim().replace(/^\/+/, ''));
  });
  if (q.get('autoconnect') === '1') $('form').requestSubmit();
})();
