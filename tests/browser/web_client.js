#!/usr/bin/env node
// Headless-Chromium tests of the browser side (web/ in this repository, and Debian's noVNC),
// driven through a running proxy. One scenario per run; prints ONE JSON line with what the
// browser saw. websockify/tests/web_client.rs starts the proxy and the real servers and
// checks the JSON.
//
//   node web_client.js websock --base http://127.0.0.1:P [--bytes N]
//   node web_client.js novnc   --base URL [--page vnc_lite.html] [--path websockify?token=T]
//                              [--cert PEM] [--shot FILE]
//   node web_client.js novnc-ended --base URL [--shots DIR]
//                              (steps on stdin/stdout: see runNovncEnded)
//   node web_client.js telnet  --base URL --host H --port P --command CMD --expect REGEX [--shot FILE]
//   node web_client.js irc     --base URL --host H --port P --nick N --channel C
//                              --say TEXT --expect TEXT
//
// Exit status: 0 the driver ran (results in the JSON), 2 bad arguments, 3 no Chromium,
// 1 any other driver failure.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function usage(msg) {
  if (msg) process.stderr.write(`web_client.js: ${msg}\n`);
  process.stderr.write('usage: node web_client.js websock|novnc|novnc-ended|telnet|irc --base URL [options]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { scenario: argv[0], timeout: 30000, chromium: '/usr/bin/chromium', certs: [], bytes: 10 * 1024 * 1024 };
  if (!['websock', 'novnc', 'novnc-ended', 'telnet', 'irc'].includes(o.scenario)) usage(`unknown scenario ${argv[0]}`);
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) usage(`unexpected ${a}`);
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    const v = argv[++i];
    const key = a.slice(2).replace(/-(.)/g, (_, c) => c.toUpperCase());
    if (key === 'cert') o.certs.push(v);
    else if (['timeout', 'bytes'].includes(key)) o[key] = Number(v);
    else o[key] = v;
  }
  if (!o.base) usage('--base is needed');
  o.base = o.base.replace(/\/+$/, '');
  return o;
}

function spkiHashOfPem(file) {
  const cert = new crypto.X509Certificate(fs.readFileSync(file, 'utf8'));
  const der = cert.publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(der).digest('base64');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const errText = (e) => String((e && e.message) || e).split('\n')[0];

async function shot(page, file, out) {
  if (!file) return;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await page.screenshot({ path: file });
  out.screenshot = path.resolve(file);
}

// ---- websock.js API ---------------------------------------------------------------------

// Runs in the page. `W` is the Websock constructor (classic or module); `mode` the
// subprotocol to offer; `total` bytes to echo through the proxy.
async function pageWebsockSuite(args) {
  const { mode, total, loader } = args;
  const W = loader === 'module' ? (await import('/websock.mjs')).Websock : window.Websock;
  const wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/websockify';
  const res = { loader, mode, checks: {} };
  const check = (name, cond, detail) => { res.checks[name] = cond ? true : (detail === undefined ? false : String(detail)); };
  const openSock = (opts, protos) => new Promise((resolve, reject) => {
    const s = new W(opts);
    s.on('open', () => resolve(s));
    s.on('error', (e) => reject(e));
    s.on('close', (e) => reject(new Error('closed before open: ' + e.code)));
    s.open(wsUrl, protos);
  });

  // 1. Receive-queue API on a small exchange.
  {
    const s = await openSock({}, [mode]);
    check('negotiated', s.mode === mode && s.protocol === mode, s.mode + '/' + s.protocol);
    const got = new Promise((resolve) => s.on('message', () => { if (s.rQlen() >= 19) resolve(); }));
    s.send([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    s.send(new Uint8Array([0xfe, 0xff]).buffer);
    s.send_string('ab\u00ff');
    s.sendString('xyzzz');
    await got;
    check('rQlen', s.rQlen() === 19, s.rQlen());
    check('rQpeek8', s.rQpeek8() === 1);
    check('rQshift8', s.rQshift8() === 1);
    check('rQshift16', s.rQshift16() === 0x0203);
    check('rQshift32', s.rQshift32() === 0x04050607);
    s.rQunshift8(7);
    check('rQunshift8', s.rQshift8() === 7);
    check('rQslice', Array.from(s.rQslice(0, 2)).join() === '8,9');
    check('rQwait-short', s.rQwait('test', 100, 2) === true && s.rQshift8() === 6);
    const i = s.get_rQi();
    check('get_rQ', s.get_rQ()[i] === 7);
    s.set_rQi(i + 1);
    check('rQshiftBytes', Array.from(s.rQshiftBytes(4)).join() === '8,9,254,255');
    check('rQwait-ok', s.rQwait('test', 8) === false);
    check('rQshiftStr', s.rQshiftStr(3) === 'ab\u00ff');
    check('rQpeekBytes', Array.from(s.rQpeekBytes(2)).join() === '120,121');
    s.rQskipBytes(2);
    check('rQshiftStr-rest', s.rQshiftStr() === 'zzz');
    let err = null;
    try { s.rQshift8(); } catch (e) { err = e; }
    check('underflow-error', err instanceof RangeError && /needs 1 bytes/.test(err.message), err && err.message);
    err = null;
    try { s.send([1, 300]); } catch (e) { err = e; }
    check('bad-byte-error', err instanceof TypeError && /0\.\.255/.test(err.message), err && err.message);
    check('get_sQ-empty', s.get_sQ().length === 0);
    const closed = new Promise((resolve) => s.on('close', (e) => resolve(e.code)));
    s.close();
    const code = await closed;
    check('close', typeof code === 'number', code);
    check('readyState-closed', s.readyState === 'closed', s.readyState);
  }

  // 2. Bulk echo with back-pressure: `total` patterned bytes sent in one go, the reader
  //    drains the queue on every message and checks every byte.
  {
    const s = await openSock({ maxBufferedAmount: 256 * 1024 }, [mode]);
    const data = new Uint8Array(total);
    for (let k = 0; k < total; k++) data[k] = (k * 7 + (k >>> 11)) & 0xff;
    let pos = 0, bad = -1, maxQueue = 0, drains = 0, maxBuffered = 0;
    const t0 = performance.now();
    const done = new Promise((resolve, reject) => {
      s.on('message', () => {
        maxQueue = Math.max(maxQueue, s._rQ.length);
        const chunk = s.rQshiftBytes();
        for (let k = 0; k < chunk.length; k++) {
          if (bad < 0 && chunk[k] !== data[pos + k]) bad = pos + k;
        }
        pos += chunk.length;
        if (pos >= total) resolve();
      });
      s.on('close', (e) => reject(new Error('closed at ' + pos + ': ' + e.code)));
      s.on('drain', () => { drains++; });
    });
    const sentAll = s.send(data);
    maxBuffered = s.bufferedAmount;
    await done;
    res.bulk = {
      bytes: pos, firstBad: bad, ms: Math.round(performance.now() - t0), sentAllAtOnce: sentAll,
      deferred: s.stats.deferred, drains, bufferedAfterSend: maxBuffered, maxReceiveQueue: maxQueue,
      sentMessages: s.stats.sentMessages, recvMessages: s.stats.recvMessages,
    };
    s.close();
  }

  // 3. Errors are reported, not thrown away: a bad subprotocol name, a refused connection.
  {
    let err = null;
    try { new W().open(wsUrl, ['chat']); } catch (e) { err = e; }
    check('bad-protocol-error', err && /unsupported subprotocol/.test(err.message), err && err.message);
    const events = [];
    const r = new W();
    const refused = new Promise((resolve) => {
      r.on('error', (e) => events.push('refused-error:' + /WebSocket error/.test(e.message)));
      r.on('close', (e) => { events.push('refused-close:' + e.code); resolve(); });
    });
    r.open('ws://127.0.0.1:9/', [mode]);
    await refused;
    res.errorEvents = events;
    check('refused', events.includes('refused-error:true') && events.includes('refused-close:1006'), events.join(' '));
  }
  return res;
}

async function runWebsock(o, page) {
  const out = { scenario: 'websock', base: o.base, runs: [] };
  const resp = await page.goto(o.base + '/', { timeout: o.timeout });
  out.indexStatus = resp.status();
  out.indexTitle = await page.title();
  out.indexLinks = await page.$$eval('a', (as) => as.map((a) => a.getAttribute('href')));
  await page.addScriptTag({ url: '/websock.js' });
  out.classicGlobal = await page.evaluate(() => typeof window.Websock);
  for (const [loader, mode] of [['classic', 'binary'], ['module', 'base64'], ['classic', 'base64'], ['module', 'binary']]) {
    const t0 = Date.now();
    try {
      const r = await page.evaluate(pageWebsockSuite, { mode, total: o.bytes, loader });
      r.wallMs = Date.now() - t0;
      out.runs.push(r);
    } catch (e) {
      out.runs.push({ loader, mode, error: errText(e) });
    }
  }
  return out;
}

// ---- noVNC ------------------------------------------------------------------------------

async function runNovnc(o, page) {
  const out = { scenario: 'novnc', base: o.base };
  const pageName = o.page || 'vnc_lite.html';
  const u = new URL(o.base);
  const q = new URLSearchParams({ host: u.hostname, port: u.port || (u.protocol === 'https:' ? '443' : '80') });
  if (o.path) q.set('path', o.path);
  if (pageName === 'vnc.html') q.set('autoconnect', 'true');
  const url = `${o.base}/${pageName}?${q}`;
  out.url = url;
  await page.goto(url, { timeout: o.timeout });
  const t0 = Date.now();
  try {
    if (pageName === 'vnc.html') {
      await page.waitForFunction(() => document.documentElement.classList.contains('noVNC_connected'), null, { timeout: o.timeout });
    } else {
      await page.waitForFunction(() => /Connected/.test(document.getElementById('status').textContent), null, { timeout: o.timeout });
    }
    out.connected = true;
  } catch (e) {
    out.connected = false;
    out.error = errText(e);
  }
  out.connectMs = Date.now() - t0;
  out.status = await page.evaluate(() => (document.getElementById('status') || document.body).textContent.trim().slice(0, 200));
  if (out.connected) {
    // Wait until the framebuffer has arrived (the canvas is not uniformly one colour).
    const sample = () => page.evaluate(() => {
      const c = document.querySelector('canvas');
      if (!c || !c.width) return null;
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const colours = new Set();
      let nonBlack = 0;
      for (let i = 0; i < d.length; i += 4 * 7) {
        colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        if (d[i] | d[i + 1] | d[i + 2]) nonBlack++;
      }
      return { width: c.width, height: c.height, colours: colours.size, nonBlackSamples: nonBlack };
    });
    let s = null;
    for (let k = 0; k < 100; k++) {
      s = await sample();
      if (s && s.colours > 2) break;
      await sleep(100);
    }
    out.canvas = s;
    if (o.rgbOut) {
      // Full RGB dump of the canvas for an exact comparison with the X screen.
      const b64 = await page.evaluate(() => {
        const c = document.querySelector('canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const rgb = new Uint8Array((d.length / 4) * 3);
        for (let i = 0, j = 0; i < d.length; i += 4) { rgb[j++] = d[i]; rgb[j++] = d[i + 1]; rgb[j++] = d[i + 2]; }
        let s = '';
        for (let i = 0; i < rgb.length; i += 0x8000) s += String.fromCharCode.apply(null, rgb.subarray(i, i + 0x8000));
        return btoa(s);
      });
      fs.writeFileSync(o.rgbOut, Buffer.from(b64, 'base64'));
      out.rgb = o.rgbOut;
    }
  }
  await shot(page, o.shot, out);
  return out;
}

// ---- noVNC, sessions ended by the proxy's admin API --------------------------------------
//
// Two noVNC pages on one desktop: A is vnc.html with noVNC's debug log on (?logging=debug),
// B is vnc_lite.html. The test ends their sessions with the admin API in turn; the steps
// are one JSON line out, one command line in:
//   out {"step":"connected","page":"a"}                  in "next"      (test: GET /sessions)
//   out {"step":"connected","page":"b"}                  in "ended a"   (test: DELETE A)
//   out {"step":"a-ended","a":STATE,"b":STATE}           in "ended b"   (test: B untouched, DELETE B)
//   out the result line: {"scenario","a","b","aLog","bLog",...}
// STATE is what the page shows (see novncState) plus `closes`: every CloseEvent of the
// page's WebSockets, seen by a listener added to the very WebSocket object noVNC uses, and
// `closedAt` (ms since the epoch) of the last.
// While B is still up the driver moves the mouse over its canvas (noVNC sends pointer
// events: bytes to the target that the test sees grow in GET /sessions).

// Runs in the page before its scripts: records the CloseEvents of every WebSocket. The
// constructor returns the browser's own WebSocket (noVNC checks its prototype's properties).
function recordWebSocketCloses() {
  window.__wsCloses = [];
  const Native = window.WebSocket;
  const Recording = function WebSocket(...args) {
    const ws = new Native(...args);
    ws.addEventListener('close', (e) => {
      window.__wsCloses.push({ code: e.code, reason: e.reason, wasClean: e.wasClean });
      window.__wsClosedAt = Date.now(); // noVNC's own close handler runs in the same dispatch
    });
    return ws;
  };
  Recording.prototype = Native.prototype;
  for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) Recording[k] = Native[k];
  window.WebSocket = Recording;
}

// Runs in the page: what noVNC shows now (vnc.html or vnc_lite.html).
function novncState() {
  const html = document.documentElement.classList;
  const full = document.getElementById('noVNC_status');
  const status = full || document.getElementById('status');
  const dlg = document.getElementById('noVNC_connect_dlg');
  return {
    connected: full ? html.contains('noVNC_connected') : /^Connected/.test(status.textContent),
    disconnecting: html.contains('noVNC_disconnecting') || html.contains('noVNC_reconnecting'),
    status: status.textContent.trim(),
    // vnc.html: a status bar that slides in (noVNC_open) for 1.5 s, in one of three styles.
    statusShown: full ? full.classList.contains('noVNC_open') : null,
    statusType: full ? (Array.from(full.classList).find((c) => c.startsWith('noVNC_status_')) || '').slice(13) : null,
    connectPanel: dlg ? dlg.classList.contains('noVNC_open') : null,
    text: document.body.innerText,
    closes: window.__wsCloses.slice(),
    closedAt: window.__wsClosedAt || null,
  };
}

// The next command line from the test on stdin.
function commands(o) {
  const rl = require('readline').createInterface({ input: process.stdin });
  const queue = [];
  let waiting = null;
  rl.on('line', (l) => (waiting ? (waiting.resolve(l.trim()), (waiting = null)) : queue.push(l.trim())));
  rl.on('close', () => waiting && waiting.reject(new Error('stdin closed')));
  const next = async (want) => {
    const got = queue.length ? queue.shift() : await new Promise((resolve, reject) => {
      waiting = { resolve, reject };
      setTimeout(() => reject(new Error(`no "${want}" from the test in ${o.timeout} ms`)), o.timeout).unref();
    });
    if (got !== want) throw new Error(`expected "${want}" from the test, got "${got}"`);
  };
  return { next, close: () => rl.close() };
}

async function runNovncEnded(o, pageA) {
  const out = { scenario: 'novnc-ended', base: o.base };
  const step = (line) => process.stdout.write(JSON.stringify(line) + '\n');
  const cmd = commands(o);
  const u = new URL(o.base);
  const hostPort = { host: u.hostname, port: u.port || (u.protocol === 'https:' ? '443' : '80') };
  const pageB = await pageA.context().newPage();
  const logs = { a: [], b: [] };
  for (const [name, page] of [['a', pageA], ['b', pageB]]) {
    page.on('console', (m) => { if (logs[name].length < 5000) logs[name].push(m.text().slice(0, 300)); });
    await page.addInitScript(recordWebSocketCloses);
  }
  const open = async (name, page, pageName, extra) => {
    const url = `${o.base}/${pageName}?${new URLSearchParams({ ...hostPort, ...extra })}`;
    out[`${name}Url`] = url;
    await page.goto(url, { timeout: o.timeout });
    await page.waitForFunction(`(() => { try { return (${novncState})().connected; } catch (e) { return false; } })()`,
      null, { timeout: o.timeout });
    step({ step: 'connected', page: name });
  };
  // Waits for the page's WebSocket to close and noVNC to settle; the state at that moment
  // (vnc.html hides its status bar 1.5 s later).
  const ended = async (page) => {
    const h = await page.waitForFunction(
      `(() => { const s = (${novncState})(); return s.closes.length && !s.connected && !s.disconnecting && s; })()`,
      null, { timeout: o.timeout });
    return h.jsonValue();
  };
  const shotOf = async (page, file) => {
    if (!o.shots) return;
    fs.mkdirSync(o.shots, { recursive: true });
    // vnc.html slides its status bar and connect panel in: show them where they end up.
    await page.screenshot({ path: path.join(o.shots, file), animations: 'disabled' });
  };
  try {
    await open('a', pageA, 'vnc.html', { autoconnect: 'true', logging: 'debug' });
    await cmd.next('next');
    await open('b', pageB, 'vnc_lite.html', {});
    await cmd.next('ended a');
    out.a = await ended(pageA);
    await shotOf(pageA, 'novnc-ended-vnc-html.png');
    out.bWhileA = await pageB.evaluate(novncState);
    const box = await pageB.locator('canvas').boundingBox();
    out.bMouseMoves = 20;
    for (let k = 0; k < out.bMouseMoves; k++) await pageB.mouse.move(box.x + 20 + k * 17, box.y + 20 + k * 11);
    await sleep(300);
    step({ step: 'a-ended', a: out.a, b: out.bWhileA });
    await cmd.next('ended b');
    out.b = await ended(pageB);
    await shotOf(pageB, 'novnc-ended-vnc-lite.png');
  } catch (e) {
    out.error = errText(e);
  } finally {
    cmd.close();
  }
  // noVNC's own log (vnc.html at debug level; vnc_lite.html logs at its default, warn):
  // the lines about the close, and whether any line carries the close reason.
  for (const name of ['a', 'b']) {
    const reasons = ((out[name] && out[name].closes) || []).map((c) => c.reason).filter(Boolean);
    out[`${name}Log`] = logs[name].filter((l) => /close|New state|disconnect/i.test(l));
    out[`${name}LogLines`] = logs[name].length;
    out[`${name}ReasonInLog`] = logs[name].some((l) => reasons.some((r) => l.includes(r)));
  }
  if (o.shots) out.screenshots = path.resolve(o.shots);
  return out;
}

// ---- wstelnet ---------------------------------------------------------------------------

async function runTelnet(o, page) {
  const out = { scenario: 'telnet', base: o.base };
  await page.goto(`${o.base}/wstelnet.html`, { timeout: o.timeout });
  await page.getByLabel('Host').fill(o.host);
  await page.getByLabel('Port').fill(o.port);
  await page.getByRole('button', { name: 'Connect' }).click();
  const screenText = () => page.evaluate(() => window.wstelnet.terminal.text());
  const t0 = Date.now();
  // Wait for the shell prompt (anything on screen), then type the command like a user.
  try {
    await page.waitForFunction(() => window.wstelnet && window.wstelnet.connected && /\$ ?$/m.test(window.wstelnet.terminal.text()), null, { timeout: o.timeout });
    out.prompt = true;
  } catch (e) {
    out.prompt = false;
    out.error = errText(e);
  }
  await page.locator('#terminal').click();
  await page.keyboard.type(o.command);
  await page.keyboard.press('Enter');
  // A whole screen line must match --expect (a regular expression): the command's output,
  // not its echo.
  try {
    await page.waitForFunction((re) => window.wstelnet.terminal.text().split('\n').some((l) => new RegExp(re).test(l.trim())), o.expect, { timeout: o.timeout });
    out.found = true;
  } catch (e) {
    out.found = false;
    out.error = errText(e);
  }
  out.matched = await page.evaluate((re) => window.wstelnet.terminal.text().split('\n').map((l) => l.trim()).filter((l) => new RegExp(re).test(l)), o.expect);
  // The terminal size the server got by NAWS, and the terminal type, as the shell sees them.
  await page.keyboard.type('echo "size=$(stty size) term=$TERM"');
  await page.keyboard.press('Enter');
  try {
    await page.waitForFunction(() => /^size=\d+ \d+ term=\S+$/m.test(window.wstelnet.terminal.text()), null, { timeout: o.timeout });
  } catch (e) {
    out.error = out.error || errText(e);
  }
  out.sttyLine = await page.evaluate(() => (/^size=\d+ \d+ term=\S+$/m.exec(window.wstelnet.terminal.text()) || [null])[0]);
  out.termSize = await page.evaluate(() => [window.wstelnet.terminal.rows, window.wstelnet.terminal.cols]);
  out.ms = Date.now() - t0;
  // Scroll-back: 300 numbered lines scroll most of themselves off the screen; the history
  // keeps them, the view follows the output, Shift+PageUp scrolls back, typing returns.
  await page.keyboard.type('seq 1 300');
  await page.keyboard.press('Enter');
  const sb = {};
  try {
    await page.waitForFunction(() => /^300$/m.test(window.wstelnet.terminal.text()) && /\$ ?$/m.test(window.wstelnet.terminal.text()), null, { timeout: o.timeout });
    await page.waitForTimeout(100); // one animation frame draws the pending history
    Object.assign(sb, await page.evaluate(() => {
      const t = window.wstelnet.terminal, el = document.getElementById('terminal');
      const all = (t.historyText() + '\n' + t.text()).split('\n').map((l) => l.trim());
      const first = all.indexOf('1');
      const run = first >= 0 ? all.slice(first, first + 300) : [];
      return {
        historyLines: t.history.length,
        drawnRows: el.querySelectorAll('.vt-history .vt-row').length,
        contiguous: run.length === 300 && run.every((l, i) => l === String(i + 1)),
        atBottom: el.scrollTop + el.clientHeight >= el.scrollHeight - 2,
        scrollable: el.scrollHeight > el.clientHeight,
      };
    }));
    await page.keyboard.press('Shift+PageUp');
    sb.afterPageUp = await page.evaluate(() => { const el = document.getElementById('terminal'); return el.scrollTop + el.clientHeight < el.scrollHeight - 2; });
    await page.keyboard.type('#');
    sb.afterTyping = await page.evaluate(() => { const el = document.getElementById('terminal'); return el.scrollTop + el.clientHeight >= el.scrollHeight - 2; });
    await page.keyboard.press('Backspace');
  } catch (e) {
    out.error = out.error || errText(e);
  }
  out.scrollback = sb;
  out.screen = await screenText();
  out.negotiation = await page.evaluate(() => window.wstelnet.negotiated);
  await shot(page, o.shot, out);
  return out;
}

// ---- wsirc ------------------------------------------------------------------------------

async function runIrc(o, page) {
  const out = { scenario: 'irc', base: o.base };
  await page.goto(`${o.base}/wsirc.html`, { timeout: o.timeout });
  await page.getByLabel('Host').fill(o.host);
  await page.getByLabel('Port').fill(o.port);
  await page.getByLabel('Nick').fill(o.nick);
  await page.getByLabel('Channel').fill(o.channel);
  await page.getByRole('button', { name: 'Connect' }).click();
  const t0 = Date.now();
  try {
    await page.waitForFunction((c) => window.wsirc && window.wsirc.joined === c, o.channel, { timeout: o.timeout });
    out.joined = true;
    // The names list (353) follows the JOIN: give it a moment, then record it.
    await page.waitForFunction(() => document.querySelectorAll('#users li').length >= 2, null, { timeout: 5000 }).catch(() => {});
    out.usersAtJoin = await page.evaluate(() => Array.from(document.querySelectorAll('#users li')).map((li) => li.textContent));
    await page.getByLabel('Message', { exact: true }).fill(o.say);
    await page.getByLabel('Message', { exact: true }).press('Enter');
    await page.waitForFunction((t) => document.getElementById('messages').textContent.includes(t), o.expect, { timeout: o.timeout });
    out.received = true;
  } catch (e) {
    out.error = errText(e);
  }
  out.ms = Date.now() - t0;
  out.messages = await page.evaluate(() => document.getElementById('messages').innerText);
  out.users = await page.evaluate(() => Array.from(document.querySelectorAll('#users li')).map((li) => li.textContent));
  await shot(page, o.shot, out);
  return out;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(o.chromium)) {
    process.stderr.write(`web_client.js: no Chromium at ${o.chromium}: run scripts/peers.sh browser\n`);
    process.exit(3);
  }
  const flags = CHROMIUM_FLAGS.slice();
  const spki = o.certs.map(spkiHashOfPem);
  if (spki.length) flags.push(`--ignore-certificate-errors-spki-list=${spki.join(',')}`);
  const browser = await chromium.launch({ executablePath: o.chromium, args: flags, timeout: o.timeout });
  let out;
  try {
    const context = await browser.newContext({ viewport: { width: 1024, height: 700 } });
    const page = await context.newPage();
    const consoleLines = [];
    page.on('console', (m) => { if (consoleLines.length < 50) consoleLines.push(`${m.type()}: ${m.text()}`.slice(0, 300)); });
    page.on('pageerror', (e) => consoleLines.push('pageerror: ' + errText(e)));
    const run = { websock: runWebsock, novnc: runNovnc, 'novnc-ended': runNovncEnded, telnet: runTelnet, irc: runIrc }[o.scenario];
    out = await run(o, page);
    out.console = consoleLines;
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`web_client.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
