/*
 * websock.js: a byte-stream socket for the browser on top of WebSocket, for use with
 * websockify (the Rust one in this repository, or any other implementation).
 *
 * Written for this project (MIT-style usage as the rest of the repository); no
 * dependencies. Loads three ways:
 *
 *   classic script:  <script src="websock.js"></script>   -> window.Websock
 *   ES module:       import { Websock } from './websock.mjs'   (websock.mjs re-exports)
 *   CommonJS:        const { Websock } = require('./websock.js')
 *
 * The file itself contains no `export` statement, so it is valid as a classic script and
 * as a module (it is strict-mode clean and defines `globalThis.Websock`).
 *
 * API (the seed's names; noVNC-era camelCase names are aliases):
 *
 *   const ws = new Websock(opts?)        // or Websock(opts?) without `new`
 *   ws.on('open'|'message'|'close'|'error'|'drain', fn)
 *   ws.open(uri, protocols?)             // protocols default ['binary', 'base64']
 *   ws.send(bytes)                       // Array of numbers, Uint8Array, ArrayBuffer, view
 *   ws.send_string(str) / sendString     // each char code & 0xff is one byte
 *   ws.flush()                           // push queued bytes (deferred under back-pressure)
 *   ws.close(code?, reason?)
 *   receive queue: rQlen rQpeek8 rQshift8 rQunshift8 rQshift16 rQshift32 rQshiftStr
 *     rQshiftBytes rQslice rQwait get_rQ get_rQi set_rQi, and rQpeekBytes rQskipBytes
 *     rQskip8 rQshiftTo
 *   send queue: get_sQ, sQpush8 sQpush16 sQpush32 sQpushString sQpushBytes (then flush())
 *   properties: mode ('binary'|'base64'), protocol, readyState, bufferedAmount,
 *     maxBufferedAmount (bytes; default 200 KiB), stats {deferred, sentBytes, recvBytes}
 *
 * The 'message' event carries no data: it tells that the receive queue has grown; read it
 * with the rQ* methods. The receive queue is one Uint8Array that is compacted in place
 * (consumed bytes are dropped before it grows) and never holds more than
 * `maxReceiveQueue` unread bytes (default 64 MiB; beyond that: 'error' and close).
 */
(function (root, factory) {
  'use strict';
  const Websock = factory();
  if (typeof module === 'object' && module && typeof module.exports === 'object') {
    module.exports = Websock;
    module.exports.Websock = Websock;
  }
  root.Websock = Websock;
})(typeof globalThis !== 'undefined' ? globalThis : typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  const DEFAULTS = {
    maxBufferedAmount: 200 * 1024, // defer sending while the WebSocket has this much queued
    flushDelay: 50, // ms between deferred flush attempts
    sendChunk: 64 * 1024, // bytes per WebSocket message when flushing
    maxReceiveQueue: 64 * 1024 * 1024, // unread bytes allowed in the receive queue
    initialQueue: 64 * 1024,
  };

  const EVENTS = ['open', 'message', 'close', 'error', 'drain'];

  function WebsockError(message) {
    const e = new Error('Websock: ' + message);
    e.name = 'WebsockError';
    return e;
  }

  // Any byte source -> Uint8Array (no copy for typed arrays / ArrayBuffers).
  function toBytes(data) {
    if (data instanceof Uint8Array) return data;
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (Array.isArray(data)) {
      const out = new Uint8Array(data.length);
      for (let i = 0; i < data.length; i++) {
        const v = data[i];
        if (typeof v !== 'number' || !(v >= 0 && v <= 255) || (v | 0) !== v) {
          throw new TypeError('Websock: byte ' + i + ' is not an integer 0..255: ' + v);
        }
        out[i] = v;
      }
      return out;
    }
    throw new TypeError('Websock: send() takes an Array of bytes, a Uint8Array or an ArrayBuffer, not ' +
      Object.prototype.toString.call(data));
  }

  // Uint8Array -> base64 text, in chunks (no per-byte string concatenation).
  function encodeBase64(bytes) {
    const parts = [];
    const CH = 0x8000;
    for (let i = 0; i < bytes.length; i += CH) {
      parts.push(String.fromCharCode.apply(null, bytes.subarray(i, i + CH)));
    }
    return btoa(parts.join(''));
  }

  function decodeBase64(text) {
    let bin;
    try {
      bin = atob(text);
    } catch (e) {
      throw WebsockError('bad base64 data from the server (' + text.length + ' chars)');
    }
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function Websock(opts) {
    if (!(this instanceof Websock)) return new Websock(opts);
    const o = Object.assign({}, DEFAULTS, opts || {});
    this.maxBufferedAmount = o.maxBufferedAmount;
    this.flushDelay = o.flushDelay;
    this.sendChunk = o.sendChunk;
    this.maxReceiveQueue = o.maxReceiveQueue;
    this._ws = null;
    this.mode = 'binary';
    this._rQ = new Uint8Array(o.initialQueue);
    this._rQi = 0; // read index
    this._rQlen = 0; // end of valid data
    this._sQ = new Uint8Array(o.initialQueue);
    this._sQi = 0;
    this._sQlen = 0;
    this._flushTimer = null;
    this._handlers = {};
    for (const ev of EVENTS) this._handlers[ev] = [];
    this.stats = { deferred: 0, sentBytes: 0, recvBytes: 0, sentMessages: 0, recvMessages: 0 };
  }

  const P = Websock.prototype;

  // ---- events -----------------------------------------------------------------------------

  P.on = function (evt, fn) {
    if (EVENTS.indexOf(evt) < 0) throw WebsockError('unknown event "' + evt + '" (one of ' + EVENTS.join(', ') + ')');
    if (typeof fn !== 'function') throw new TypeError('Websock: on(' + evt + ') needs a function');
    this._handlers[evt].push(fn);
    return this;
  };

  P.off = function (evt, fn) {
    const list = this._handlers[evt] || [];
    const i = list.indexOf(fn);
    if (i >= 0) list.splice(i, 1);
    return this;
  };

  P._emit = function (evt, arg) {
    for (const fn of this._handlers[evt].slice()) {
      try {
        fn.call(this, arg);
      } catch (e) {
        if (evt !== 'error') this._emit('error', e);
        else if (typeof console !== 'undefined') console.error(e);
      }
    }
  };

  // ---- connection -------------------------------------------------------------------------

  Object.defineProperty(P, 'readyState', {
    get() {
      if (!this._ws) return 'unused';
      return ['connecting', 'open', 'closing', 'closed'][this._ws.readyState];
    },
  });

  Object.defineProperty(P, 'protocol', {
    get() { return this._ws ? this._ws.protocol : ''; },
  });

  // Bytes accepted by send() but not yet handed to the network.
  Object.defineProperty(P, 'bufferedAmount', {
    get() { return this._sQlen - this._sQi + (this._ws ? this._ws.bufferedAmount : 0); },
  });

  P.open = function (uri, protocols) {
    if (this._ws && this._ws.readyState < 2) throw WebsockError('open() while already ' + this.readyState);
    if (protocols === undefined) protocols = ['binary', 'base64'];
    if (typeof protocols === 'string') protocols = [protocols];
    for (const p of protocols) {
      if (p !== 'binary' && p !== 'base64') throw WebsockError('unsupported subprotocol "' + p + '" (binary or base64)');
    }
    let ws;
    try {
      ws = protocols.length ? new WebSocket(uri, protocols) : new WebSocket(uri);
    } catch (e) {
      throw WebsockError('cannot open ' + uri + ': ' + e.message);
    }
    this._attach(ws, protocols);
    return this;
  };

  // Use an already created WebSocket (noVNC's attach()).
  P.attach = function (ws) {
    this._attach(ws, []);
    if (ws.readyState === 1) this._onopen();
    return this;
  };

  P._attach = function (ws, protocols) {
    this._ws = ws;
    this._offered = protocols;
    this._rQi = this._rQlen = 0;
    this._sQi = this._sQlen = 0;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => this._onopen();
    ws.onmessage = (e) => this._onmessage(e);
    ws.onclose = (e) => {
      this._clearFlush();
      this._emit('close', e);
    };
    ws.onerror = () => this._emit('error', WebsockError('WebSocket error on ' + ws.url +
      ' (connection refused, TLS or handshake failure; see the browser console)'));
  };

  P._onopen = function () {
    const p = this._ws.protocol;
    if (p === 'base64') this.mode = 'base64';
    else if (p === 'binary' || p === '') this.mode = 'binary';
    else {
      this._emit('error', WebsockError('server chose unknown subprotocol "' + p + '"'));
      this.close(1002, 'unknown subprotocol');
      return;
    }
    if (p === '' && this._offered.length && this._offered.indexOf('binary') < 0) {
      this._emit('error', WebsockError('server chose no subprotocol; only ' + this._offered.join(',') + ' was offered'));
    }
    this._emit('open');
    if (this._sQlen) this.flush();
  };

  P.close = function (code, reason) {
    this._clearFlush();
    if (this._ws && this._ws.readyState < 2) {
      if (code === undefined) this._ws.close();
      else this._ws.close(code, reason || '');
    }
  };

  // noVNC names
  P.init = function () {
    this._rQi = this._rQlen = 0;
    this._sQi = this._sQlen = 0;
    this._ws = null;
  };

  // ---- receive ----------------------------------------------------------------------------

  P._onmessage = function (e) {
    let bytes;
    try {
      if (typeof e.data === 'string') {
        bytes = this.mode === 'base64' ? decodeBase64(e.data) : new TextEncoder().encode(e.data);
      } else {
        bytes = new Uint8Array(e.data);
      }
    } catch (err) {
      this._emit('error', err);
      return;
    }
    if (!this._push(bytes)) return;
    this.stats.recvBytes += bytes.length;
    this.stats.recvMessages++;
    this._emit('message');
  };

  // Appends to the receive queue: compacts first, grows by doubling only if needed.
  P._push = function (bytes) {
    const unread = this._rQlen - this._rQi;
    const need = unread + bytes.length;
    if (need > this.maxReceiveQueue) {
      this._emit('error', WebsockError('receive queue limit reached: ' + unread + ' unread bytes + ' +
        bytes.length + ' new > maxReceiveQueue ' + this.maxReceiveQueue + '; read the queue or raise the limit'));
      this.close(1009, 'receive queue full');
      return false;
    }
    if (this._rQlen + bytes.length > this._rQ.length) {
      if (need <= this._rQ.length) {
        this._rQ.copyWithin(0, this._rQi, this._rQlen);
      } else {
        let size = this._rQ.length;
        while (size < need) size *= 2;
        const grown = new Uint8Array(size);
        grown.set(this._rQ.subarray(this._rQi, this._rQlen));
        this._rQ = grown;
      }
      this._rQlen = unread;
      this._rQi = 0;
    }
    this._rQ.set(bytes, this._rQlen);
    this._rQlen += bytes.length;
    return true;
  };

  P._need = function (n, what) {
    const have = this._rQlen - this._rQi;
    if (n > have) throw new RangeError('Websock: ' + what + ' needs ' + n + ' bytes, the receive queue has ' + have);
  };

  P.rQlen = function () { return this._rQlen - this._rQi; };
  P.rQpeek8 = function () { this._need(1, 'rQpeek8'); return this._rQ[this._rQi]; };
  P.rQshift8 = function () { this._need(1, 'rQshift8'); return this._rQ[this._rQi++]; };
  P.rQskip8 = function () { this._need(1, 'rQskip8'); this._rQi++; };
  P.rQskipBytes = function (n) { this._need(n, 'rQskipBytes'); this._rQi += n; };
  P.rQunshift8 = function (b) {
    if (this._rQi === 0) {
      const grown = new Uint8Array(Math.max(this._rQ.length, this._rQlen + 1));
      grown.set(this._rQ.subarray(0, this._rQlen), 1);
      this._rQ = grown;
      this._rQlen++;
    } else {
      this._rQi--;
    }
    this._rQ[this._rQi] = b;
  };
  P.rQshift16 = function () {
    this._need(2, 'rQshift16');
    const q = this._rQ, i = this._rQi;
    this._rQi += 2;
    return (q[i] << 8) | q[i + 1];
  };
  P.rQshift32 = function () {
    this._need(4, 'rQshift32');
    const q = this._rQ, i = this._rQi;
    this._rQi += 4;
    return ((q[i] << 24) | (q[i + 1] << 16) | (q[i + 2] << 8) | q[i + 3]) >>> 0;
  };
  // Bytes as a string of char codes 0..255 (the seed's semantics; not UTF-8 decoding).
  P.rQshiftStr = function (len) {
    if (len === undefined) len = this.rQlen();
    const bytes = this.rQshiftBytes(len);
    const parts = [];
    for (let i = 0; i < bytes.length; i += 0x8000) {
      parts.push(String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000)));
    }
    return parts.join('');
  };
  // A copy (safe to keep: the queue is reused).
  P.rQshiftBytes = function (len) {
    if (len === undefined) len = this.rQlen();
    this._need(len, 'rQshiftBytes');
    const out = this._rQ.slice(this._rQi, this._rQi + len);
    this._rQi += len;
    return out;
  };
  P.rQpeekBytes = function (len) {
    if (len === undefined) len = this.rQlen();
    this._need(len, 'rQpeekBytes');
    return this._rQ.slice(this._rQi, this._rQi + len);
  };
  P.rQshiftTo = function (target, len) {
    if (len === undefined) len = this.rQlen();
    this._need(len, 'rQshiftTo');
    target.set(this._rQ.subarray(this._rQi, this._rQi + len));
    this._rQi += len;
  };
  // Unread bytes [start, end) counted from the read position, as a copy.
  P.rQslice = function (start, end) {
    const len = this.rQlen();
    if (end === undefined || end > len) end = len;
    return this._rQ.slice(this._rQi + start, this._rQi + end);
  };
  // true when fewer than `num` bytes are queued (then the caller waits for more); `goback`
  // first puts back that many already shifted bytes.
  P.rQwait = function (msg, num, goback) {
    if (this.rQlen() < num) {
      if (goback) {
        if (this._rQi < goback) throw RangeError('Websock: rQwait cannot go back ' + goback + ' bytes (' + (msg || '') + ')');
        this._rQi -= goback;
      }
      return true;
    }
    return false;
  };
  // The queue's buffer (a view up to the end of the data) and the read index into it.
  P.get_rQ = function () { return this._rQ.subarray(0, this._rQlen); };
  P.get_rQi = function () { return this._rQi; };
  P.set_rQi = function (i) {
    if (!(i >= 0 && i <= this._rQlen)) throw new RangeError('Websock: set_rQi(' + i + ') outside 0..' + this._rQlen);
    this._rQi = i;
  };

  // ---- send -------------------------------------------------------------------------------

  // The send queue holds bytes [_sQi, _sQlen); compacted before it grows.
  P._sQreserve = function (n) {
    if (this._sQlen + n > this._sQ.length) {
      const pending = this._sQlen - this._sQi;
      if (pending + n <= this._sQ.length) {
        this._sQ.copyWithin(0, this._sQi, this._sQlen);
      } else {
        let size = this._sQ.length;
        while (size < pending + n) size *= 2;
        const grown = new Uint8Array(size);
        grown.set(this._sQ.subarray(this._sQi, this._sQlen));
        this._sQ = grown;
      }
      this._sQi = 0;
      this._sQlen = pending;
    }
  };
  P.sQpushBytes = function (data) {
    const bytes = toBytes(data);
    this._sQreserve(bytes.length);
    this._sQ.set(bytes, this._sQlen);
    this._sQlen += bytes.length;
  };
  P.sQpush8 = function (b) { this._sQreserve(1); this._sQ[this._sQlen++] = b; };
  P.sQpush16 = function (v) { this.sQpushBytes([(v >> 8) & 0xff, v & 0xff]); };
  P.sQpush32 = function (v) { this.sQpushBytes([(v >>> 24) & 0xff, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff]); };
  P.sQpushString = function (str) {
    const bytes = new Uint8Array(str.length);
    for (let i = 0; i < str.length; i++) bytes[i] = str.charCodeAt(i) & 0xff;
    this._sQreserve(bytes.length);
    this._sQ.set(bytes, this._sQlen);
    this._sQlen += bytes.length;
  };
  // The bytes waiting to be sent (a copy).
  P.get_sQ = function () { return this._sQ.slice(this._sQi, this._sQlen); };

  P.send = function (data) {
    this.sQpushBytes(data);
    return this.flush();
  };
  P.send_string = function (str) {
    this.sQpushString(str);
    return this.flush();
  };
  P.sendString = P.send_string;

  P._clearFlush = function () {
    if (this._flushTimer !== null) {
      clearTimeout(this._flushTimer);
      this._flushTimer = null;
    }
  };

  // Hands queued bytes to the WebSocket in `sendChunk` messages while its bufferedAmount is
  // below maxBufferedAmount; the rest waits for a deferred flush. Returns true when the
  // send queue is empty afterwards.
  P.flush = function () {
    const ws = this._ws;
    if (!ws) {
      if (this._sQlen) throw WebsockError('send before open(): ' + (this._sQlen - this._sQi) + ' bytes queued');
      return true;
    }
    if (ws.readyState === 0) return false; // sent on open
    if (ws.readyState > 1) {
      const n = this._sQlen - this._sQi;
      this._sQi = this._sQlen = 0;
      if (n) this._emit('error', WebsockError('send on a ' + this.readyState + ' socket: ' + n + ' bytes dropped'));
      return false;
    }
    let off = this._sQi;
    while (off < this._sQlen && ws.bufferedAmount < this.maxBufferedAmount) {
      const end = Math.min(this._sQlen, off + this.sendChunk);
      const chunk = this._sQ.subarray(off, end);
      if (this.mode === 'base64') ws.send(encodeBase64(chunk));
      else ws.send(chunk.slice());
      this.stats.sentBytes += end - off;
      this.stats.sentMessages++;
      off = end;
    }
    this._sQi = off;
    if (off === this._sQlen) this._sQi = this._sQlen = 0;
    if (this._sQlen > 0) {
      if (this._flushTimer === null) {
        this.stats.deferred++;
        this._flushTimer = setTimeout(() => {
          this._flushTimer = null;
          if (this.flush()) this._emit('drain');
        }, this.flushDelay);
      }
      return false;
    }
    return true;
  };

  Websock.DEFAULTS = DEFAULTS;
  Websock.encodeBase64 = encodeBase64;
  Websock.decodeBase64 = decodeBase64;
  Websock.version = '1.0';
  return Websock;
});
