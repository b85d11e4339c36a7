#!/usr/bin/env node
/*
 * s3_list_server: a stand-in for S3's ListObjectsV2, answering from a key
 * set held in memory, so that a benchmark of planning measures amp2s3 and
 * not the server.  (s3rver walks and stats its bucket directory for every
 * list request, up to the last key it returns: a year's listing costs it
 * 2-3.5 s of CPU.)  Bench only: it lists, nothing else.
 *
 *   node bench/s3_list_server.js --keys-file PATH --bucket NAME
 *        [--delay-ms MS] [--port N] [--port-file PATH] [--stats-file PATH]
 *
 * --keys-file: one object per line, "<key>\t<size>[\t<etag>]" (keys
 * ASCII; the ETag, 32 hex digits, is the MD5 of the object's bytes for
 * a client to prove them with; without it, zeros).  Binds
 * 127.0.0.1 (port 0 unless --port) and writes the port to --port-file
 * through a temporary + rename.  Path-style GET /<bucket>?list-type=2 with
 * prefix, continuation-token, start-after and max-keys (1 to 1000; S3
 * caps larger values at 1000 too) is answered like S3: keys in byte
 * order, NextContinuationToken while truncated, 400 InvalidArgument for a
 * token it did not issue.  Every other request gets a 501 NotImplemented
 * (a 404 NoSuchBucket for another bucket), so nothing passes unnoticed;
 * each refusal counts as an error.
 * Signatures are not checked.  --delay-ms waits that long before each
 * answer (a round trip).  --stats-file: {"requests", "pages", "keys",
 * "errors", "cpu_s"}, written before every answer is sent (a client
 * holding its answer finds it counted) and on SIGTERM/SIGINT, which stop
 * it.
 */
'use strict';
const http = require('http');
const fs = require('fs');
const { writeAtomic, serve } = require('./node_serve.js');

function usage() {
  process.stderr.write('usage: s3_list_server.js --keys-file PATH --bucket NAME ' +
    '[--delay-ms MS] [--port N] [--port-file PATH] [--stats-file PATH]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { keysFile: null, bucket: null, delayMs: 0, port: 0, portFile: null,
    statsFile: null };
  for (let i = 2; i < argv.length; i += 2) {
    const f = argv[i], v = argv[i + 1];
    if (v === undefined) usage();
    if (f === '--keys-file') o.keysFile = v;
    else if (f === '--bucket') o.bucket = v;
    else if (f === '--delay-ms') o.delayMs = Number(v);
    else if (f === '--port') o.port = Number(v);
    else if (f === '--port-file') o.portFile = v;
    else if (f === '--stats-file') o.statsFile = v;
    else usage();
  }
  if (!o.keysFile || !o.bucket || !(o.delayMs >= 0)) usage();
  return o;
}

function xmlEscape(s) {
  return s.replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;',
  }[c]));
}

const o = parseArgs(process.argv);
const objects = [];
for (const line of fs.readFileSync(o.keysFile, 'utf8').split('\n')) {
  if (line === '') continue;
  let rest = line, etag = '0'.repeat(32);
  const m = /\t([0-9a-f]{32})$/.exec(line);
  if (m) {
    etag = m[1];
    rest = line.slice(0, m.index);
  }
  const tab = rest.lastIndexOf('\t');
  const key = rest.slice(0, tab), size = Number(rest.slice(tab + 1));
  if (tab <= 0 || !Number.isSafeInteger(size) || size < 0 || /[^\x20-\x7e]/.test(key)) {
    process.stderr.write(`s3_list_server: bad line in ${o.keysFile}: ${line}\n`);
    process.exit(2);
  }
  objects.push({ key, size, etag });
}
// ASCII keys: JavaScript's comparison is S3's byte order.
objects.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
// Each entry's XML once, so that a page is a join.
const MODIFIED = '2024-01-01T00:00:00.000Z';
for (const ob of objects) {
  ob.xml = `<Contents><Key>${xmlEscape(ob.key)}</Key>` +
    `<LastModified>${MODIFIED}</LastModified>` +
    `<ETag>&quot;${ob.etag}&quot;</ETag>` +
    `<Size>${ob.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`;
}

/* Index of the first key > ${k} (or >= with ${inclusive}). */
function bound(k, inclusive) {
  let lo = 0, hi = objects.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (objects[mid].key < k || (!inclusive && objects[mid].key === k)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const stats = { requests: 0, pages: 0, keys: 0, errors: 0, cpu_s: 0 };

function flushStats() {
  const u = process.cpuUsage();
  stats.cpu_s = (u.user + u.system) / 1e6;
  if (o.statsFile) writeAtomic(o.statsFile, JSON.stringify(stats) + '\n');
}

function s3error(status, code, message) {
  stats.errors++;
  return [status, '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error>`];
}

function list(url) {
  const q = url.searchParams;
  for (const k of q.keys()) {
    if (!['list-type', 'prefix', 'continuation-token', 'start-after',
      'max-keys'].includes(k)) {
      return s3error(501, 'NotImplemented', `parameter ${k} is not supported`);
    }
  }
  const prefix = q.get('prefix') || '';
  let maxKeys = 1000;
  if (q.has('max-keys')) {
    maxKeys = Number(q.get('max-keys'));
    if (!Number.isInteger(maxKeys) || maxKeys < 1) {
      return s3error(400, 'InvalidArgument', 'max-keys');
    }
    maxKeys = Math.min(maxKeys, 1000);
  }
  let i = bound(prefix, true);
  const token = q.get('continuation-token');
  if (token !== null) {
    const after = Buffer.from(token, 'base64').toString('utf8');
    if (token === '' || Buffer.from(after, 'utf8').toString('base64') !== token) {
      return s3error(400, 'InvalidArgument', 'The continuation token provided is incorrect');
    }
    i = Math.max(i, bound(after, false));
  } else if (q.has('start-after')) {
    i = Math.max(i, bound(q.get('start-after'), false));
  }
  const page = [];
  while (i < objects.length && objects[i].key.startsWith(prefix) &&
    page.length < maxKeys) {
    page.push(objects[i++]);
  }
  const truncated = i < objects.length && objects[i].key.startsWith(prefix);
  stats.pages++;
  stats.keys += page.length;
  let body = '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
    `<Name>${xmlEscape(o.bucket)}</Name><Prefix>${xmlEscape(prefix)}</Prefix>` +
    `<KeyCount>${page.length}</KeyCount><MaxKeys>${maxKeys}</MaxKeys>` +
    `<IsTruncated>${truncated}</IsTruncated>`;
  if (token !== null) body += `<ContinuationToken>${xmlEscape(token)}</ContinuationToken>`;
  if (truncated) {
    const next = Buffer.from(page[page.length - 1].key, 'utf8').toString('base64');
    body += `<NextContinuationToken>${next}</NextContinuationToken>`;
  }
  body += page.map((ob) => ob.xml).join('') + '</ListBucketResult>';
  return [200, body];
}

const server = http.createServer((req, res) => {
  stats.requests++;
  req.resume();
  req.on('end', () => setTimeout(() => {
    const url = new URL(req.url, 'http://127.0.0.1');
    let status, body;
    if (req.method !== 'GET' || url.searchParams.get('list-type') !== '2') {
      [status, body] = s3error(501, 'NotImplemented',
        'this stand-in answers ListObjectsV2 only');
    } else if (url.pathname !== `/${o.bucket}` && url.pathname !== `/${o.bucket}/`) {
      [status, body] = s3error(404, 'NoSuchBucket', 'The specified bucket does not exist');
    } else {
      [status, body] = list(url);
    }
    // Counted before the answer leaves: a client that has its answer
    // finds it in the stats file.
    flushStats();
    res.writeHead(status, { 'Content-Type': 'application/xml',
      'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }, o.delayMs));
});
serve(server, o.port, o.portFile, flushStats,
  (port) => `s3_list_server: 127.0.0.1:${port}, ${objects.length} objects ` +
  `in bucket ${o.bucket}, +${o.delayMs} ms per request`);
