/*
 * node_serve: what the bench's node servers (s3_latency_proxy.js,
 * s3_list_server.js) share: the atomic file write, listening on
 * 127.0.0.1 with the port written to a file, and stopping on a signal.
 */
'use strict';
const fs = require('fs');

/* Write ${text} to ${path} through a temporary + rename. */
function writeAtomic(path, text) {
  const tmp = `${path}.tmp.${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, path);
}

/*
 * Listen on 127.0.0.1:${port} (0: any), then flushStats(), write the port
 * to ${portFile} (if set) and print banner(port) on stderr; SIGTERM and
 * SIGINT flush the stats and exit 0.
 */
function serve(server, port, portFile, flushStats, banner) {
  server.keepAliveTimeout = 60000;
  server.headersTimeout = 65000;
  server.listen(port, '127.0.0.1', () => {
    const p = server.address().port;
    flushStats();
    if (portFile) writeAtomic(portFile, `${p}\n`);
    process.stderr.write(`${banner(p)}\n`);
  });
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => {
      flushStats();
      process.exit(0);
    });
  }
}

module.exports = { writeAtomic, serve };
