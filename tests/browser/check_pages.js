#!/usr/bin/env node
// Headless-Chromium end-to-end check of the proxy's web server and WebSocket relay.
//
//   node check_pages.js --base URL [--base URL2 ...] [--spki HASH ...] [--cert PEM ...]
//                       [--ws-path /websockify] [--data-path /sub/data.bin]
//                       [--ws-bytes 100000] [--ws-chunk 16384] [--timeout MS]
//                       [--chromium /usr/bin/chromium]
//
// For each base (http://127.0.0.1:P or https://localhost:P) it prints ONE JSON line with
// what the browser saw: the page at BASE/, a Range fetch, repeated plain fetches (with
// the wire status of each request from CDP, so that a 304 revalidation shows even though
// fetch() reports 200), and a WebSocket echo through the proxy to the TCP target.
// It asserts nothing: exit 0 when the driver ran (whatever the results), non-zero when
// the driver itself failed (bad arguments, Chromium did not start, ...).
//
// For https with a self-signed test certificate, Chromium is told to trust exactly that
// key: --ignore-certificate-errors-spki-list=<base64 sha256 of the SPKI>, given with
// --spki or computed here from --cert PEM. The certificate must be valid for the host
// name in the URL (use https://localhost:P with a certificate for DNS:localhost).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
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
  if (msg) process.stderr.write(`check_pages.js: ${msg}\n`);
  process.stderr.write(
    'usage: node check_pages.js --base URL [--base URL ...] [--spki HASH] [--cert PEM]\n' +
      '       [--ws-path P] [--data-path P] [--ws-bytes N] [--ws-chunk N] [--timeout MS]\n' +
      '       [--chromium PATH]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    bases: [], spki: [], certs: [],
    wsPath: '/websockify', dataPath: '/sub/data.bin',
    wsBytes: 100000, wsChunk: 16384, timeout: 20000,
    chromium: '/usr/bin/chromium',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    let key = a, val;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) { key = a.slice(0, eq); val = a.slice(eq + 1); }
    const next = () => {
      if (val !== undefined) return val;
      if (i + 1 >= argv.length) usage(`${key} needs a value`);
      return argv[++i];
    };
    const num = () => {
      const n = Number(next());
      if (!Number.isInteger(n) || n <= 0) usage(`${key} needs a positive integer`);
      return n;
    };
    switch (key) {
      case '--base': o.bases.push(next().replace(/\/+$/, '')); break;
      case '--spki': o.spki.push(...next().split(',').filter(Boolean)); break;
      case '--cert': o.certs.push(next()); break;
      case '--ws-path': o.wsPath = next(); break;
      case '--data-path': o.dataPath = next(); break;
      case '--ws-bytes': o.wsBytes = num(); break;
      case '--ws-chunk': o.wsChunk = num(); break;
      case '--timeout': o.timeout = num(); break;
      case '--chromium': o.chromium = next(); break;
      case '-h': case '--help': usage(); break;
      default: usage(`unknown argument ${a}`);
    }
  }
  if (o.bases.length === 0) usage('at least one --base is needed');
  for (const b of o.bases) {
    let u;
    try { u = new URL(b); } catch (e) { usage(`bad --base ${b}`); }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') usage(`--base must be http or https: ${b}`);
  }
  return o;
}

// base64(sha256(DER SubjectPublicKeyInfo)) of the first certificate in a PEM file.
function spkiHashOfPem(file) {
  const pem = fs.readFileSync(file, 'utf8');
  const cert = new crypto.X509Certificate(pem);
  const der = cert.publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(der).digest('base64');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const errText = (e) => String((e && e.message) || e).split('\n')[0];

function pickHeaders(h, names) {
  const lower = {};
  for (const [k, v] of Object.entries(h || {})) lower[k.toLowerCase()] = v;
  const out = {};
  for (const n of names) if (lower[n] !== undefined) out[n] = lower[n];
  return out;
}

const RESP_HEADERS = ['content-type', 'content-length', 'content-range', 'accept-ranges', 'etag',
  'last-modified', 'cache-control', 'connection', 'keep-alive', 'location', 'server', 'date'];
const REQ_HEADERS = ['range', 'if-none-match', 'if-modified-since', 'if-range', 'cache-control', 'pragma'];

// Records CDP Network events for HTTP requests and WebSockets of one page.
class NetLog {
  constructor(cdp) {
    this.reqs = new Map(); // requestId -> entry, in insertion order
    this.ws = new Map();
    const entry = (id) => {
      if (!this.reqs.has(id)) this.reqs.set(id, { requestId: id });
      return this.reqs.get(id);
    };
    cdp.on('Network.requestWillBeSent', (e) => {
      const r = entry(e.requestId);
      if (e.redirectResponse) {
        (r.redirects = r.redirects || []).push({ url: r.url, status: e.redirectResponse.status });
      }
      r.url = e.request.url; r.method = e.request.method; r.type = e.type;
      r.requestHeaders = pickHeaders(e.request.headers, REQ_HEADERS);
    });
    cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
      entry(e.requestId).wireRequestHeaders = pickHeaders(e.headers, REQ_HEADERS);
    });
    cdp.on('Network.requestServedFromCache', (e) => { entry(e.requestId).servedFromCache = true; });
    cdp.on('Network.responseReceived', (e) => {
      const r = entry(e.requestId);
      r.status = e.response.status; // CDP's view: 304 for a revalidated cache entry
      r.statusText = e.response.statusText;
      r.fromDiskCache = !!e.response.fromDiskCache;
      r.protocol = e.response.protocol;
      r.responseHeaders = pickHeaders(e.response.headers, RESP_HEADERS);
    });
    cdp.on('Network.responseReceivedExtraInfo', (e) => {
      const r = entry(e.requestId);
      r.wireStatus = e.statusCode; // the status line that really came off the socket
      r.wireResponseHeaders = pickHeaders(e.headers, RESP_HEADERS);
    });
    cdp.on('Network.loadingFinished', (e) => {
      const r = entry(e.requestId);
      r.finished = true; r.encodedDataLength = e.encodedDataLength;
    });
    cdp.on('Network.loadingFailed', (e) => {
      const r = entry(e.requestId);
      r.finished = true; r.failed = e.errorText; r.canceled = !!e.canceled;
    });
    const wsEntry = (id) => {
      if (!this.ws.has(id)) this.ws.set(id, { requestId: id, framesSent: 0, framesReceived: 0, frameOpcodes: {} });
      return this.ws.get(id);
    };
    cdp.on('Network.webSocketCreated', (e) => { wsEntry(e.requestId).url = e.url; });
    cdp.on('Network.webSocketWillSendHandshakeRequest', (e) => {
      wsEntry(e.requestId).handshakeRequestHeaders = pickHeaders(e.request.headers,
        ['sec-websocket-protocol', 'sec-websocket-extensions', 'sec-websocket-version', 'origin']);
    });
    cdp.on('Network.webSocketHandshakeResponseReceived', (e) => {
      const w = wsEntry(e.requestId);
      w.handshakeStatus = e.response.status;
      w.handshakeStatusText = e.response.statusText;
      w.handshakeResponseHeaders = pickHeaders(e.response.headers,
        ['upgrade', 'connection', 'sec-websocket-accept', 'sec-websocket-protocol',
          'sec-websocket-extensions', 'server']);
    });
    cdp.on('Network.webSocketFrameSent', () => { /* counted in the page */ });
    cdp.on('Network.webSocketFrameReceived', (e) => {
      const w = wsEntry(e.requestId);
      w.framesReceived++;
      const op = String(e.response.opcode);
      w.frameOpcodes[op] = (w.frameOpcodes[op] || 0) + 1;
    });
    cdp.on('Network.webSocketFrameError', (e) => {
      (wsEntry(e.requestId).frameErrors = wsEntry(e.requestId).frameErrors || []).push(e.errorMessage);
    });
    cdp.on('Network.webSocketClosed', (e) => { wsEntry(e.requestId).closedSeen = true; });
  }

  idsFor(url) {
    return [...this.reqs.values()].filter((r) => r.url === url).map((r) => r.requestId);
  }

  // Waits until the requests with these ids finished and their wire info (if any) arrived.
  async settle(ids, ms = 3000) {
    const t0 = Date.now();
    for (;;) {
      const rs = ids.map((id) => this.reqs.get(id));
      const done = rs.every((r) => r && r.finished &&
        (r.servedFromCache || r.failed || r.wireStatus !== undefined || r.status === undefined));
      if (done || Date.now() - t0 > ms) break;
      await sleep(20);
    }
    await sleep(30);
    return ids.map((id) => this.summary(id));
  }

  summary(id) {
    const r = this.reqs.get(id);
    if (!r) return null;
    const out = {
      status: r.status, // CDP Network.responseReceived
      wireStatus: r.wireStatus, // CDP Network.responseReceivedExtraInfo (absent when no socket was used)
      statusText: r.statusText,
      fromDiskCache: r.fromDiskCache,
      servedFromCache: !!r.servedFromCache,
      requestHeaders: r.wireRequestHeaders || r.requestHeaders,
      responseHeaders: r.wireResponseHeaders || r.responseHeaders,
      encodedDataLength: r.encodedDataLength,
    };
    if (r.protocol) out.protocol = r.protocol;
    if (r.redirects) out.redirects = r.redirects;
    if (r.failed) out.failed = r.failed;
    return out;
  }
}

// Runs in the page: fetch and return status, selected headers and the body as hex.
async function pageFetch([url, init, maxHex]) {
  try {
    const r = await fetch(url, init);
    const buf = new Uint8Array(await r.arrayBuffer());
    const hex = Array.from(buf.subarray(0, maxHex), (b) => b.toString(16).padStart(2, '0')).join('');
    const h = (n) => r.headers.get(n);
    let sha256 = null;
    if (globalThis.crypto && crypto.subtle) {
      const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
      sha256 = Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
    }
    return {
      status: r.status,
      contentRange: h('content-range'),
      contentLength: h('content-length'),
      etag: h('etag'),
      lastModified: h('last-modified'),
      cacheControl: h('cache-control'),
      bytes: buf.length,
      sha256,
      hex,
    };
  } catch (e) {
    return { error: String(e) };
  }
}

// Runs in the page: WebSocket echo of `total` patterned bytes sent in `chunk`-sized messages.
function pageWebSocket([url, total, chunk, timeoutMs]) {
  return new Promise((resolve) => {
    const pattern = (i) => (i * 31 + (i >> 8) + 7) & 0xff;
    const data = new Uint8Array(total);
    for (let i = 0; i < total; i++) data[i] = pattern(i);
    const got = new Uint8Array(total);
    const res = {
      url, ok: false, sent: 0, messagesSent: 0, received: 0, messagesReceived: 0,
      nonBinaryMessages: 0, mismatchAt: null, protocol: null, extensions: null,
      opened: false, errorEvent: false, closeCode: null, closeReason: null, wasClean: null,
      closeInitiatedByPage: false, timedOut: false, ms: 0,
    };
    const t0 = performance.now();
    let ws;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      res.ms = Math.round(performance.now() - t0);
      resolve(res);
    };
    const timer = setTimeout(() => {
      res.timedOut = true;
      try { ws.close(1000, 'timeout'); } catch (e) { /* ignore */ }
      setTimeout(finish, 1000);
    }, timeoutMs);
    try {
      ws = new WebSocket(url);
    } catch (e) {
      res.exception = String(e);
      finish();
      return;
    }
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      res.opened = true;
      res.protocol = ws.protocol;
      res.extensions = ws.extensions;
      for (let off = 0; off < total; off += chunk) {
        const part = data.subarray(off, Math.min(total, off + chunk));
        ws.send(part);
        res.sent += part.length;
        res.messagesSent++;
      }
    };
    ws.onmessage = (ev) => {
      if (!(ev.data instanceof ArrayBuffer)) {
        res.nonBinaryMessages++;
        return;
      }
      const m = new Uint8Array(ev.data);
      res.messagesReceived++;
      const room = Math.max(0, total - res.received);
      got.set(m.subarray(0, room), res.received);
      res.received += m.length;
      if (res.received >= total && !res.closeInitiatedByPage) {
        res.mismatchAt = null;
        for (let i = 0; i < total; i++) {
          if (got[i] !== data[i]) { res.mismatchAt = i; break; }
        }
        res.ok = res.mismatchAt === null && res.received === total && res.nonBinaryMessages === 0;
        res.closeInitiatedByPage = true;
        ws.close(1000, 'done');
      }
    };
    ws.onerror = () => { res.errorEvent = true; };
    ws.onclose = (ev) => {
      res.closeCode = ev.code;
      res.closeReason = ev.reason;
      res.wasClean = ev.wasClean;
      if (res.received >= total && res.mismatchAt === null) {
        res.ok = res.ok && res.received === total;
      }
      finish();
    };
  });
}

async function checkBase(context, base, opts) {
  const t0 = Date.now();
  const out = { base };
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const net = new NetLog(cdp);
  const pwResponses = []; // Playwright's page.on('response') view
  page.on('response', (r) => {
    pwResponses.push({ url: r.url(), status: r.status(), fromServiceWorker: r.fromServiceWorker() });
  });
  const dataUrl = base + opts.dataPath;
  const pwFor = (from) => pwResponses.slice(from).filter((r) => r.url === dataUrl).map((r) => r.status);

  // 1. the index page
  try {
    const resp = await page.goto(base + '/', { waitUntil: 'load', timeout: opts.timeout });
    out.page = {
      url: page.url(),
      status: resp ? resp.status() : null,
      headers: resp ? pickHeaders(await resp.allHeaders(), RESP_HEADERS) : null,
      title: await page.title(),
      body: (await page.evaluate(() => (document.body ? document.body.innerText : ''))).trim(),
    };
    const redirects = resp && resp.request().redirectedFrom();
    if (redirects) out.page.redirectedFrom = redirects.url();
  } catch (e) {
    out.page = { error: errText(e) };
    out.skipped = 'page did not load; later steps need a page on this origin';
    out.ms = Date.now() - t0;
    await page.close().catch(() => {});
    return out;
  }

  // 2. a Range request
  try {
    const before = net.idsFor(dataUrl).length;
    const pwFrom = pwResponses.length;
    const r = await page.evaluate(pageFetch, [dataUrl, { headers: { Range: 'bytes=10-19' } }, 64]);
    const ids = net.idsFor(dataUrl).slice(before);
    r.wire = await net.settle(ids);
    r.playwrightStatus = pwFor(pwFrom);
    out.range = r;
  } catch (e) {
    out.range = { error: errText(e) };
  }

  // 3. the same resource without Range: twice as the page would (cache mode 'default':
  //    the browser revalidates if the response says so), then once with cache: 'no-cache'
  //    (always a conditional request when the cache holds a validator).
  out.fetches = [];
  for (const mode of ['default', 'default', 'no-cache']) {
    try {
      const before = net.idsFor(dataUrl).length;
      const pwFrom = pwResponses.length;
      const r = await page.evaluate(pageFetch, [dataUrl, { cache: mode }, 0]);
      delete r.hex;
      r.cacheMode = mode;
      const ids = net.idsFor(dataUrl).slice(before);
      r.wire = await net.settle(ids);
      r.playwrightStatus = pwFor(pwFrom);
      out.fetches.push(r);
    } catch (e) {
      out.fetches.push({ cacheMode: mode, error: errText(e) });
    }
  }

  // 3b. a reload of the page: a plain conditional GET (no Range involved) for the document,
  //     which the server should answer with 304.
  try {
    const pageUrl = base + '/';
    const before = net.idsFor(pageUrl).length;
    const resp = await page.reload({ waitUntil: 'load', timeout: opts.timeout });
    const ids = net.idsFor(pageUrl).slice(before);
    out.reload = {
      status: resp ? resp.status() : null,
      title: await page.title(),
      wire: await net.settle(ids),
    };
  } catch (e) {
    out.reload = { error: errText(e) };
  }

  // 4. a WebSocket echo through the proxy
  try {
    const u = new URL(base);
    const wsUrl = (u.protocol === 'https:' ? 'wss://' : 'ws://') + u.host + opts.wsPath;
    const wsBefore = new Set(net.ws.keys());
    const r = await page.evaluate(pageWebSocket, [wsUrl, opts.wsBytes, opts.wsChunk, opts.timeout]);
    await sleep(100);
    const cd = [...net.ws.values()].find((w) => !wsBefore.has(w.requestId) && w.url === wsUrl);
    if (cd) {
      r.cdp = {
        handshakeStatus: cd.handshakeStatus,
        handshakeStatusText: cd.handshakeStatusText,
        handshakeRequestHeaders: cd.handshakeRequestHeaders,
        handshakeResponseHeaders: cd.handshakeResponseHeaders,
        framesReceived: cd.framesReceived,
        frameOpcodes: cd.frameOpcodes,
      };
      if (cd.frameErrors) r.cdp.frameErrors = cd.frameErrors;
    }
    out.websocket = r;
  } catch (e) {
    out.websocket = { error: errText(e) };
  }

  out.ms = Date.now() - t0;
  await page.close().catch(() => {});
  return out;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const spki = [...opts.spki];
  for (const c of opts.certs) {
    try {
      spki.push(spkiHashOfPem(c));
    } catch (e) {
      usage(`cannot read certificate ${c}: ${errText(e)}`);
    }
  }
  if (!fs.existsSync(opts.chromium)) {
    process.stderr.write(`check_pages.js: ${opts.chromium} is missing (scripts/peers.sh browser)\n`);
    process.exit(3);
  }
  const args = [...CHROMIUM_FLAGS];
  if (spki.length) args.push(`--ignore-certificate-errors-spki-list=${[...new Set(spki)].join(',')}`);

  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'check-pages-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: opts.chromium,
      headless: true,
      args,
      timeout: 60000,
    });
    const version = context.browser() ? context.browser().version() : undefined;
    for (const p of context.pages()) await p.close().catch(() => {});
    for (const base of opts.bases) {
      const res = await checkBase(context, base, opts);
      if (version) res.chromium = version;
      if (spki.length && base.startsWith('https:')) res.spki = [...new Set(spki)];
      process.stdout.write(JSON.stringify(res) + '\n');
    }
  } finally {
    if (context) await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`check_pages.js: driver failure: ${(e && e.stack) || e}\n`);
    process.exit(1);
  });
