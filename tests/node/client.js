#!/usr/bin/env node
// Independent WebSocket test client built on the Node `ws` library.
//
// Usage: node client.js URL SCENARIO [--protocols LIST] [--bytes N] [--seed S]
//                       [--timeout SECS] [--text STR] [--message-size N]
//                       [--cafile PEM] [--insecure]
//
// Prints exactly one JSON object line on stdout; see tests/peers/README.md.
// Exit codes: 0 scenario ran (even if the handshake was rejected with an HTTP
// status), 1 client-side failure, 2 usage error, 3 overall timeout.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const WebSocket = require('ws');

const SCENARIOS = ['handshake', 'echo', 'read-until-close', 'send-text', 'close-after-send'];
const MIB = 1 << 20;
const HIGH_WATER = 4 * MIB; // bufferedAmount above which we wait for the socket to drain

let emitted = false;
function finish(obj, code) {
  if (emitted) return;
  emitted = true;
  process.stdout.write(JSON.stringify(obj) + '\n', () => process.exit(code));
}

function usage(msg) {
  finish({ error: 'usage: ' + msg }, 2);
  throw new Error('usage'); // stop argument processing; finish() exits
}

function parseArgs(argv) {
  const a = {
    protocols: null, bytes: null, seed: 1, timeout: 60, text: 'hello',
    messageSize: null, cafile: null, insecure: false,
  };
  const pos = [];
  const intOpt = (name, v) => {
    if (v === undefined || !/^-?\d+$/.test(v)) usage(`${name} needs an integer`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    switch (arg) {
      case '--protocols': a.protocols = argv[++i]; if (a.protocols === undefined) usage('--protocols needs a value'); break;
      case '--bytes': a.bytes = intOpt(arg, argv[++i]); if (a.bytes < 0) usage('--bytes must be >= 0'); break;
      case '--seed': a.seed = intOpt(arg, argv[++i]); break;
      case '--timeout': a.timeout = Number(argv[++i]); if (!(a.timeout > 0)) usage('--timeout needs a positive number'); break;
      case '--text': a.text = argv[++i]; if (a.text === undefined) usage('--text needs a value'); break;
      case '--message-size': a.messageSize = intOpt(arg, argv[++i]); if (a.messageSize < 1) usage('--message-size must be >= 1'); break;
      case '--cafile': a.cafile = argv[++i]; if (a.cafile === undefined) usage('--cafile needs a value'); break;
      case '--insecure': a.insecure = true; break;
      default:
        if (arg.startsWith('--')) usage('unknown option ' + arg);
        pos.push(arg);
    }
  }
  if (pos.length !== 2) usage('client URL SCENARIO [options]');
  [a.url, a.scenario] = pos;
  if (!SCENARIOS.includes(a.scenario)) usage('unknown scenario ' + a.scenario);
  return a;
}

// Deterministic PRNG: xorshift128 seeded through splitmix32.
class Source {
  constructor(seed, total) {
    let s = (seed >>> 0) ^ 0x9e3779b9;
    const sm = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.st = new Uint32Array([sm(), sm(), sm(), sm() | 1]);
    this.remaining = total;
    this.produced = 0;
    this.sha = crypto.createHash('sha256');
  }

  take(n) {
    n = Math.min(n, this.remaining);
    const words = new Uint32Array(Math.ceil(n / 4));
    const st = this.st;
    let x = st[0], y = st[1], z = st[2], w = st[3];
    for (let i = 0; i < words.length; i++) {
      const t = x ^ (x << 11);
      x = y; y = z; z = w;
      w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
      words[i] = w;
    }
    st[0] = x; st[1] = y; st[2] = z; st[3] = w;
    const buf = Buffer.from(words.buffer, 0, n);
    this.remaining -= n;
    this.produced += n;
    this.sha.update(buf);
    return buf;
  }
}

// Message sizes: frame-length boundaries first, then a seeded mix of 1 B .. 1 MiB.
function* messageSizes(seed, fixed, cap) {
  if (fixed !== null) for (;;) yield fixed;
  for (const s of [1, 125, 126, 127, 65535, 65536, 65537, MIB]) yield Math.min(s, cap);
  let st = ((seed * 7919 + 17) >>> 0) || 1;
  const rnd = () => { // xorshift32 -> [0, 1)
    st ^= st << 13; st >>>= 0; st ^= st >>> 17; st ^= st << 5; st >>>= 0;
    return st / 4294967296;
  };
  const randint = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));
  for (;;) {
    const r = rnd();
    let s;
    if (r < 0.15) s = randint(1, 200);
    else if (r < 0.75) s = randint(1, 65536);
    else if (r < 0.95) s = randint(65537, MIB);
    else s = MIB;
    yield Math.min(s, cap);
  }
}

class Sink {
  constructor(b64) {
    this.b64 = b64;
    this.received = 0;
    this.sha = crypto.createHash('sha256');
    this.textMessages = 0;
    this.binaryMessages = 0;
    this.head = [];
    this.headLen = 0;
  }

  add(data, isBinary) {
    let bytes = data;
    if (isBinary) this.binaryMessages++;
    else {
      this.textMessages++;
      if (this.b64) bytes = Buffer.from(data.toString('latin1'), 'base64');
    }
    this.received += bytes.length;
    this.sha.update(bytes);
    if (this.headLen < 4096) {
      const part = bytes.subarray(0, 4096 - this.headLen);
      this.head.push(Buffer.from(part));
      this.headLen += part.length;
    }
  }
}

function sendAsync(ws, data, binary) {
  return new Promise((resolve, reject) => {
    ws.send(data, { binary }, (err) => (err ? reject(err) : resolve()));
  });
}

// Send the whole source as messages with back-pressure; stop quietly if the
// connection leaves the OPEN state.
async function sendStream(ws, src, sizes, b64) {
  for (const size of sizes) {
    if (src.remaining === 0) break;
    if (ws.readyState !== WebSocket.OPEN) return false;
    const chunk = src.take(size);
    const p = b64 ? sendAsync(ws, chunk.toString('base64'), false) : sendAsync(ws, chunk, true);
    p.catch(() => {});
    if (ws.bufferedAmount > HIGH_WATER) {
      try { await p; } catch (e) { return false; }
    }
  }
  return true;
}

function run(a) {
  const opts = { perMessageDeflate: false, maxPayload: 0, closeTimeout: a.timeout * 1000 };
  if (a.url.startsWith('wss://')) {
    if (a.cafile) opts.ca = fs.readFileSync(a.cafile);
    if (a.insecure) opts.rejectUnauthorized = false;
  }
  let protocols;
  if (a.protocols !== null) protocols = a.protocols.split(',').map((p) => p.trim()).filter((p) => p);
  const ws = new WebSocket(a.url, protocols, opts);

  let opened = false;
  let socketError = null; // first error after the handshake, reported if any
  let closed = null; // {code, reason} once the 'close' event fired
  let onClose = null;
  const closedP = new Promise((resolve) => { onClose = resolve; });
  let sink = null;
  let stopAt = null; // close(1000) once this many bytes arrived
  let onEnough = null;
  const enoughP = new Promise((resolve) => { onEnough = resolve; });

  ws.on('unexpected-response', (req, res) => {
    const chunks = [];
    res.on('data', (c) => chunks.push(c));
    res.on('end', () => {
      finish({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }, 0);
      req.destroy();
    });
    res.on('error', (e) => finish({ error: 'reading rejection body: ' + e.message }, 1));
  });
  ws.on('error', (e) => {
    if (!opened) finish({ error: 'connect: ' + e.message }, 1);
    // After the handshake, errors are followed by 'close' (code 1006 -> null).
    else if (socketError === null) socketError = `${e.code || e.name}: ${e.message}`;
  });
  ws.on('message', (data, isBinary) => {
    if (!sink) return;
    sink.add(data, isBinary);
    if (stopAt !== null && sink.received >= stopAt) onEnough();
  });
  ws.on('close', (code, reason) => {
    // ws reports 1006 when no close frame arrived (it never appears on the wire).
    closed = code === 1006 ? { code: null, reason: null } : { code, reason: reason.toString('utf8') };
    onEnough();
    onClose(closed);
  });

  ws.on('open', async () => {
    opened = true;
    try {
      const proto = ws.protocol || null;
      const b64 = proto === 'base64';
      const cap = b64 ? (3 * MIB) / 4 : MIB; // keep every message <= 1 MiB on the wire
      const sizes = messageSizes(a.seed, a.messageSize, a.messageSize === null ? cap : a.messageSize);
      const result = { status: 101, protocol: proto };
      sink = new Sink(b64);

      switch (a.scenario) {
        case 'handshake': {
          ws.close(1000);
          const c = await closedP;
          Object.assign(result, { close_code: c.code, close_reason: c.reason });
          break;
        }
        case 'echo': {
          const n = a.bytes === null ? MIB : a.bytes;
          const src = new Source(a.seed, n);
          stopAt = n;
          if (n === 0) onEnough();
          await sendStream(ws, src, sizes, b64);
          await enoughP;
          ws.close(1000);
          const c = await closedP;
          const shaS = src.sha.digest('hex');
          const shaR = sink.sha.digest('hex');
          Object.assign(result, {
            sent: src.produced, received: sink.received,
            sha256_sent: shaS, sha256_received: shaR,
            match: src.produced === n && sink.received === n && shaS === shaR,
            close_code: c.code, close_reason: c.reason,
            text_messages_received: sink.textMessages,
            binary_messages_received: sink.binaryMessages,
          });
          break;
        }
        case 'read-until-close': {
          const src = new Source(a.seed, a.bytes || 0);
          await sendStream(ws, src, sizes, b64);
          const c = await closedP;
          Object.assign(result, {
            sent: src.produced, received: sink.received,
            sha256_received: sink.sha.digest('hex'),
            close_code: c.code, close_reason: c.reason,
          });
          break;
        }
        case 'send-text': {
          if (a.bytes) stopAt = a.bytes;
          const text = a.text;
          try { await sendAsync(ws, text, false); } catch (e) { /* closed meanwhile */ }
          await enoughP;
          ws.close(1000); // no-op if already closed
          const c = await closedP;
          Object.assign(result, {
            sent: Buffer.byteLength(text, 'utf8'), received: sink.received,
            sha256_received: sink.sha.digest('hex'),
            received_text: Buffer.concat(sink.head).toString('utf8'),
            close_code: c.code, close_reason: c.reason,
          });
          break;
        }
        case 'close-after-send': {
          const src = new Source(a.seed, a.bytes || 0);
          await sendStream(ws, src, sizes, b64);
          ws.close(1000, 'bye'); // queued behind the data; keep reading the echo
          const c = await closedP;
          Object.assign(result, {
            sent: src.produced, received: sink.received,
            sha256_sent: src.sha.digest('hex'),
            sha256_received: sink.sha.digest('hex'),
            close_code: c.code, close_reason: c.reason,
          });
          break;
        }
      }
      if (socketError !== null) result.socket_error = socketError;
      finish(result, 0);
    } catch (e) {
      finish({ error: `${e.name}: ${e.message}` }, 1);
    }
  });
}

function main() {
  let a;
  try {
    a = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (emitted) return; // usage error already reported
    throw e;
  }
  setTimeout(() => finish({ error: 'timeout' }, 3), a.timeout * 1000);
  run(a);
}

process.on('uncaughtException', (e) => finish({ error: `${e.name}: ${e.message}` }, 1));
main();
