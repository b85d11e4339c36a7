#!/usr/bin/env node
/*
 * s3_latency_proxy: an HTTP proxy in front of s3rver that adds a fixed delay
 * to every request, like a real S3 round trip (s3rver on loopback answers in
 * well under a millisecond).
 *
 *   node bench/s3_latency_proxy.js --upstream http://127.0.0.1:PORT
 *        --delay-ms 50 [--port N] [--port-file PATH] [--stats-file PATH]
 *
 * Binds 127.0.0.1 (port 0 unless --port), writes the port to --port-file
 * through a temporary + rename.  Every request waits --delay-ms, then is
 * forwarded with its method, path and headers unchanged (Host included, so
 * SigV4 signatures still verify) over keep-alive upstream connections;
 * request and response bodies are streamed both ways, never buffered.
 * Requests are handled concurrently (one event loop, no queueing).
 * --stats-file: {"requests", "inflight", "max_inflight", "errors"}, written
 * after every answer and on SIGTERM/SIGINT, which stop it.
 */
'use strict';
const http = require('http');
const { writeAtomic, serve } = require('./node_serve.js');

function parseArgs(argv) {
  const o = { upstream: null, delayMs: 0, port: 0, portFile: null, statsFile: null };
  for (let i = 2; i < argv.length; i++) {
    const f = argv[i], v = argv[i + 1];
    if (v === undefined) usage();
    i++;
    if (f === '--upstream') o.upstream = new URL(v);
    else if (f === '--delay-ms') o.delayMs = Number(v);
    else if (f === '--port') o.port = Number(v);
    else if (f === '--port-file') o.portFile = v;
    else if (f === '--stats-file') o.statsFile = v;
    else usage();
  }
  if (!o.upstream || !(o.delayMs >= 0)) usage();
  return o;
}

function usage() {
  process.stderr.write('usage: s3_latency_proxy.js --upstream http://127.0.0.1:PORT ' +
    '--delay-ms MS [--port N] [--port-file PATH] [--stats-file PATH]\n');
  process.exit(2);
}

const o = parseArgs(process.argv);
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
const stats = { requests: 0, inflight: 0, max_inflight: 0, errors: 0 };

function flushStats() {
  if (o.statsFile) writeAtomic(o.statsFile, JSON.stringify(stats) + '\n');
}

const server = http.createServer((req, res) => {
  stats.requests++;
  stats.inflight++;
  if (stats.inflight > stats.max_inflight) stats.max_inflight = stats.inflight;
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    stats.inflight--;
    flushStats();
  };
  res.on('finish', finish);
  res.on('close', finish);
  setTimeout(() => {
    const up = http.request({
      host: o.upstream.hostname,
      port: o.upstream.port,
      method: req.method,
      path: req.url,
      headers: req.headers,
      agent,
    }, (ur) => {
      res.writeHead(ur.statusCode, ur.statusMessage, ur.headers);
      ur.pipe(res);
    });
    up.on('error', (e) => {
      stats.errors++;
      if (!res.headersSent) {
        res.writeHead(502, { 'Content-Type': 'text/plain' });
        res.end(`proxy: upstream error: ${e.message}\n`);
      } else {
        res.destroy();
      }
    });
    req.pipe(up);
  }, o.delayMs);
});
serve(server, o.port, o.portFile, flushStats,
  (port) => `s3_latency_proxy: 127.0.0.1:${port} -> ${o.upstream.host}, +${o.delayMs} ms per request`);
