#!/usr/bin/env node
// An aether event store in Node.js, served over aether-store/1 (JSON lines on stdin/stdout;
// see docs/process-protocol.md), standard library only:
//
//   AETHER_STORE_COMMAND="node reference_store/node/store.js" \
//       aether-conformance run aether_conformance.process_store:from_environment
//
// It is the Go seed's design in JavaScript: events per actor in memory, a save at or below the
// latest version is a conflict whose message is Go's text (%q quoting), snapshots with the highest
// version winning (first on ties).  Node serves one request at a time, so it is atomic.
//
// Two things JavaScript does not do for you, and every store in it must:
//  * Versions are int64.  JSON.parse turns 9223372036854775807 into 9223372036854776000, so this
//    file parses JSON itself (parseJSON): integers become BigInt, exactly, and are written back
//    digit for digit (toJSON).
//  * Go's %q keeps printable characters and escapes the rest (goQuote); \p{...} classes of the
//    Unicode version Node ships decide what is printable, as Go's unicode tables do.
'use strict';

const readline = require('node:readline');

// -- JSON with exact integers ------------------------------------------------------------------

function parseJSON(text) {
  let at = 0;
  const fail = (why) => { throw new SyntaxError(`${why} at offset ${at}`); };
  const space = () => { while (' \t\n\r'.includes(text[at]) && at < text.length) at++; };
  const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
  function value() {
    space();
    const ch = text[at];
    if (ch === '{') {
      at++;
      const object = Object.create(null); // a key "__proto__" is data, not a prototype
      space();
      if (text[at] === '}') { at++; return object; }
      for (;;) {
        space();
        if (text[at] !== '"') fail('expected a key');
        const key = string();
        space();
        if (text[at++] !== ':') fail('expected ":"');
        object[key] = value();
        space();
        const next = text[at++];
        if (next === '}') return object;
        if (next !== ',') fail('expected "," or "}"');
      }
    }
    if (ch === '[') {
      at++;
      const array = [];
      space();
      if (text[at] === ']') { at++; return array; }
      for (;;) {
        array.push(value());
        space();
        const next = text[at++];
        if (next === ']') return array;
        if (next !== ',') fail('expected "," or "]"');
      }
    }
    if (ch === '"') return string();
    for (const [word, result] of [['true', true], ['false', false], ['null', null]]) {
      if (text.startsWith(word, at)) { at += word.length; return result; }
    }
    NUMBER.lastIndex = at;
    const match = NUMBER.exec(text);
    if (!match) fail('expected a JSON value');
    at = NUMBER.lastIndex;
    return match[1] === undefined && match[2] === undefined ? BigInt(match[0]) : Number(match[0]);
  }
  function string() {
    // From the opening quote to the closing one; JSON.parse decodes a lone string exactly.
    const start = at++;
    while (text[at] !== '"') {
      if (at >= text.length) fail('unterminated string');
      at += text[at] === '\\' ? 2 : 1;
    }
    at++;
    return JSON.parse(text.slice(start, at));
  }
  const result = value();
  space();
  if (at !== text.length) fail('trailing text');
  return result;
}

function toJSON(value) {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'bigint': return value.toString();
    case 'number': return JSON.stringify(value);
    case 'boolean': return value ? 'true' : 'false';
    case 'string': return JSON.stringify(value); // lone surrogates come out as \udXXX escapes
  }
  if (Array.isArray(value)) return '[' + value.map(toJSON).join(',') + ']';
  return '{' + Object.keys(value).map((key) => JSON.stringify(key) + ':' + toJSON(value[key])).join(',') + '}';
}

// -- Go's %q ------------------------------------------------------------------------------------

const GO_ESCAPES = { '\x07': '\\a', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t',
                     '\v': '\\v', '\\': '\\\\', '"': '\\"' };
// Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space.
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;
const hex = (n, width) => n.toString(16).padStart(width, '0');

function goQuote(text) {
  let out = '"';
  for (let i = 0; i < text.length;) {
    const cp = text.codePointAt(i);
    const ch = String.fromCodePoint(cp);
    i += ch.length;
    if (ch in GO_ESCAPES) out += GO_ESCAPES[ch];
    else if (cp >= 0xd800 && cp <= 0xdfff) {
      // A lone surrogate: the \x escapes of its (WTF-8) bytes, as the kit's oracle writes them.
      out += [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)].map((b) => '\\x' + hex(b, 2)).join('');
    } else if (PRINTABLE.test(ch)) out += ch;
    else if (cp < 0x20 || cp === 0x7f) out += '\\x' + hex(cp, 2);
    else if (cp < 0x10000) out += '\\u' + hex(cp, 4);
    else out += '\\U' + hex(cp, 8);
  }
  return out + '"';
}

// -- the store ----------------------------------------------------------------------------------

class ConflictError extends Error {
  constructor(actorId, attemptedVersion, currentVersion) {
    super(`version conflict: actor ${goQuote(actorId)} has version ${currentVersion}, cannot save version ${attemptedVersion}`);
    this.conflict = { actorId, attemptedVersion, currentVersion, message: this.message };
  }
}

class InvalidArgument extends Error {}

class InMemoryEventStore {
  constructor() {
    this.events = new Map();
    this.snapshots = new Map();
  }

  latest(actorId) {
    const events = this.events.get(actorId);
    return events && events.length ? events[events.length - 1].version : 0n;
  }

  saveEvent(event) {
    const current = this.latest(event.actorId);
    if (event.version <= current) throw new ConflictError(event.actorId, event.version, current);
    if (!this.events.has(event.actorId)) this.events.set(event.actorId, []);
    this.events.get(event.actorId).push(event);
  }

  getEvents(actorId, fromVersion) {
    return (this.events.get(actorId) || []).filter((event) => event.version >= fromVersion);
  }

  saveSnapshot(snapshot) {
    if (!this.snapshots.has(snapshot.actorId)) this.snapshots.set(snapshot.actorId, []);
    this.snapshots.get(snapshot.actorId).push(snapshot);
  }

  getLatestSnapshot(actorId) {
    let best = null;
    for (const snapshot of this.snapshots.get(actorId) || []) {
      if (best === null || snapshot.version > best.version) best = snapshot;
    }
    return best;
  }
}

function record(params, field) {
  const value = params[field];
  if (value === null || typeof value !== 'object' || typeof value.actorId !== 'string' || typeof value.version !== 'bigint') {
    throw new InvalidArgument(`params.${field}: an object with a string actorId and an integer version is required`);
  }
  return value;
}

function actorId(params) {
  if (typeof params.actorId !== 'string') throw new InvalidArgument('params.actorId: a string is required');
  return params.actorId;
}

function serve(store, method, params) {
  switch (method) {
    case 'save_event': store.saveEvent(record(params, 'event')); return null;
    case 'get_events': {
      const from = params.fromVersion;
      if (typeof from !== 'bigint') throw new InvalidArgument('params.fromVersion: an integer is required');
      return store.getEvents(actorId(params), from);
    }
    case 'get_latest_version': return store.latest(actorId(params));
    case 'save_snapshot': store.saveSnapshot(record(params, 'snapshot')); return null;
    case 'get_latest_snapshot': return store.getLatestSnapshot(actorId(params));
    default: throw new InvalidArgument(`unknown method ${method}`);
  }
}

function respond(store, line) {
  const request = parseJSON(line);
  const id = request.id;
  try {
    return { id, result: serve(store, request.method, request.params || {}) };
  } catch (error) {
    if (error instanceof ConflictError) return { id, error: { kind: 'version_conflict', conflict: error.conflict } };
    if (error instanceof InvalidArgument) return { id, error: { kind: 'invalid_argument', message: error.message } };
    return { id, error: { kind: 'internal', message: String(error && error.stack || error) } };
  }
}

function main() {
  const store = new InMemoryEventStore();
  // Pipes are written synchronously on Linux, so lines never interleave or pile up unbounded.
  const write = (message) => process.stdout.write(toJSON(message) + '\n');
  write({ protocol: 'aether-store/1', snapshots: true, name: 'reference_store/node', version: '0.1.0' });
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on('line', (line) => {
    if (line.trim() === '') return;
    let response;
    try {
      response = respond(store, line);
    } catch (error) { // not even an id to answer: the kit would only wait, so say why and stop
      process.stderr.write(`bad request: ${error.message}\n`);
      process.exit(2);
    }
    write(response);
  });
  lines.on('close', () => process.exit(0));
}

module.exports = { parseJSON, toJSON, goQuote };

if (require.main === module) main();
