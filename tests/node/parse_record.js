#!/usr/bin/env node
// Loads a websockify session recording the way noVNC's player (tests/playback.js) does:
// the file is JavaScript defining VNC_frame_data (and VNC_frame_encoding for base64);
// each entry is '{<ms>{<data>' (to the client) or '}<ms>}<data>' (from the client), the
// data a Latin-1 string (one char per byte), or base64 text in base64 sessions; 'EOF' ends.
// Prints one JSON line: frame counts, byte counts and SHA-256 per direction, and whether
// the timestamps never go backwards.
'use strict';
const fs = require('fs');
const vm = require('vm');
const crypto = require('crypto');

const text = fs.readFileSync(process.argv[2], 'latin1');
const context = {};
vm.runInNewContext(text, context);
const frames = context.VNC_frame_data;
const encoding = context.VNC_frame_encoding || 'binary';
const out = { encoding, toClient: [], fromClient: [] };
let last = 0;
let monotonic = true;
let eof = false;
for (const frame of frames) {
  if (frame === 'EOF') { eof = true; break; }
  const mark = frame[0];
  const start = frame.indexOf(mark, 1) + 1;
  const ms = parseInt(frame.slice(1, start - 1), 10);
  if (ms < last) monotonic = false;
  last = ms;
  const data = frame.slice(start);
  const bytes = encoding === 'base64' ? Buffer.from(data, 'base64') : Buffer.from(data, 'latin1');
  (mark === '{' ? out.toClient : out.fromClient).push(bytes);
}
const summary = (list) => {
  const all = Buffer.concat(list);
  return { frames: list.length, bytes: all.length, sha256: crypto.createHash('sha256').update(all).digest('hex') };
};
console.log(JSON.stringify({ encoding, eof, monotonic, toClient: summary(out.toClient), fromClient: summary(out.fromClient) }));
