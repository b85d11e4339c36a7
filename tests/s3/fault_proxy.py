#!/usr/bin/python3
"""fault_proxy: a fault-injecting HTTP proxy for S3 tests (stdlib only).

Put it in front of sigv4_proxy.py (or s3rver) and point the client at it:

    client --> fault_proxy --> sigv4_proxy --> s3rver

Requests are forwarded unchanged (the Host header too, so SigV4 signatures
made for the fault proxy's address still verify upstream), except when a
rule matches; then the rule's action is taken instead of, or before,
forwarding.

Run:  fault_proxy.py --upstream HOST:PORT [--port N]
Prints "PORT <n>" on stdout once listening on 127.0.0.1.  SIGTERM/SIGINT
stop it.

Rules (first match wins; a rule whose `times` is used up no longer matches)
---------------------------------------------------------------------------
{"method": "PUT",              # optional, exact
 "path_contains": "/x/",       # optional substring of the path
 "query_contains": "partNumber=2&",   # optional substring of the raw query
 "skip": 0,                    # let the first K matching requests through
 "times": 3,                   # apply to N requests; null/absent: always
 "delay_s": 0.5,               # wait first (ends early if the proxy stops)
 "action": ...}
Actions:
  {"kind": "status", "status": 503, "code": "SlowDown",
   "message": "...", "headers": {"Retry-After": "0"}}
      the request's body is read, then an S3 <Error> answer (code defaults:
      500 InternalError, 503 SlowDown, others "Injected"); the upstream
      never sees the request
  {"kind": "reset", "after_bytes": 1000}   or   {"kind": "reset",
   "after_fraction": 0.5}
      read that much of the request body (default: none), then close the
      connection with RST; the upstream never sees the request
  {"kind": "delay"}            only delay_s, then forward
  {"kind": "body", "status": 200, "body": "<xml...>",
   "content_type": "application/xml"}
      answer with this body without forwarding
  {"kind": "fill", "status": 200, "prefix": "...", "unit": "...",
   "repeat": N, "suffix": "..."}
      answer with prefix + unit * N + suffix, streamed (Content-Length
      set), without forwarding: an enormous answer in constant memory
  {"kind": "hold"}
      read the request, then send nothing until the client hangs up or
      the proxy stops (a server that never answers)
  {"kind": "trickle", "bytes_per_s": 50, "after_bytes": 0}
      forward, then send the upstream's answer slowly: the headers (with
      its Content-Length) and the first after_bytes bytes at once, the
      rest at bytes_per_s (in steps of max(1, bytes_per_s / 10) bytes);
      ends when the client hangs up (client_gone in the log)

Control (unsigned, never forwarded), under /__fault__/:
  POST   /__fault__/rules   a rule or a list of rules (appended)
  DELETE /__fault__/rules   remove every rule
  GET    /__fault__/log     JSON list of {"n", "method", "path", "query",
                            "rule", "action", "status", "body_bytes",
                            "client_gone"} for every proxied request
  DELETE /__fault__/log     clear the log
  GET    /__fault__/status  {"requests", "inflight", "active": [entries of
                            the requests in flight, as in the log]}
"""

import argparse
import http.client
import http.server
import json
import select
import signal
import socket
import struct
import sys
import threading
import time
from xml.sax.saxutils import escape

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate",
              "proxy-authorization", "te", "trailer", "transfer-encoding",
              "upgrade", "expect"}
DEFAULT_CODES = {500: "InternalError", 503: "SlowDown", 400: "BadRequest",
                 403: "AccessDenied", 404: "NoSuchKey"}


class State:
    def __init__(self, upstream):
        self.upstream = upstream
        self.lock = threading.Lock()
        self.rules = []
        self.log = []
        self.n = 0
        self.inflight = 0
        self.active = {}          # n -> log entry, while in flight
        self.stop = threading.Event()

    def pick(self, method, path, query):
        """(index, rule copy) of the first matching rule, or (None, None);
        counts the use."""
        with self.lock:
            for i, r in enumerate(self.rules):
                if r.get("method") not in (None, method):
                    continue
                if r.get("path_contains", "") not in path:
                    continue
                if r.get("query_contains", "") not in query:
                    continue
                if r.get("_skipped", 0) < int(r.get("skip", 0) or 0):
                    r["_skipped"] = r.get("_skipped", 0) + 1
                    continue
                t = r.get("times")
                if t is not None:
                    if t <= 0:
                        continue
                    r["times"] = t - 1
                return i, dict(r)
        return None, None


def error_xml(code, message):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
            '<Message>%s</Message><RequestId>FAULTPROXY</RequestId>'
            '</Error>' % (escape(code), escape(message))).encode()


class ClientGone(Exception):
    pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fault-proxy"
    state = None

    def log_message(self, fmt, *args):
        pass

    def handle_expect_100(self):
        # Answered in serve(), once we know whether to read the body.
        return True

    def do_GET(self):
        try:
            self.serve()
        except ClientGone:
            self.close_connection = True

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    # -- helpers -----------------------------------------------------
    def reply(self, status, body=b"", headers=(), ctype=None):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if ctype:
            self.send_header("Content-Type", ctype)
        if not any(k.lower() == "content-length" for k, _ in headers):
            self.send_header("Content-Length",
                             str(0 if self.command == "HEAD" else len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def send_continue(self):
        if (self.headers.get("Expect") or "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
            self.wfile.flush()

    def read_body(self, limit=None):
        n = int(self.headers.get("Content-Length") or 0)
        if limit is not None:
            n = min(n, limit)
        chunks, left = [], n
        while left > 0:
            c = self.rfile.read(min(left, 1 << 16))
            if not c:
                raise ClientGone("client closed mid-body")
            chunks.append(c)
            left -= len(c)
        return b"".join(chunks)

    def rst(self):
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True

    def wait(self, seconds):
        """Wait up to ${seconds}; True if the client hung up first."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.state.stop.is_set():
                return False
            r, _, _ = select.select([self.connection], [], [],
                                    min(left, 0.05))
            if r:
                try:
                    if self.connection.recv(1, socket.MSG_PEEK) == b"":
                        return True
                except OSError:
                    return True
                time.sleep(min(left, 0.05))

    # -- control -----------------------------------------------------
    def control(self, path):
        st = self.state
        body = self.read_body()
        if path == "/__fault__/rules" and self.command == "POST":
            rules = json.loads(body or b"[]")
            with st.lock:
                st.rules.extend(rules if isinstance(rules, list)
                                else [rules])
            return self.reply(204)
        if path == "/__fault__/rules" and self.command == "DELETE":
            with st.lock:
                st.rules.clear()
            return self.reply(204)
        if path == "/__fault__/log" and self.command == "GET":
            with st.lock:
                data = json.dumps(st.log).encode()
            return self.reply(200, data, ctype="application/json")
        if path == "/__fault__/log" and self.command == "DELETE":
            with st.lock:
                st.log.clear()
            return self.reply(204)
        if path == "/__fault__/status" and self.command == "GET":
            with st.lock:
                data = json.dumps({"requests": st.n,
                                   "inflight": st.inflight,
                                   "active": list(st.active.values())}
                                  ).encode()
            return self.reply(200, data, ctype="application/json")
        return self.reply(404)

    # -- proxying ----------------------------------------------------
    def serve(self):
        st = self.state
        path, _, query = self.path.partition("?")
        if path.startswith("/__fault__/"):
            return self.control(path)
        with st.lock:
            st.n += 1
            st.inflight += 1
            entry = {"n": st.n, "method": self.command, "path": path,
                     "query": query, "rule": None, "action": "forward",
                     "status": None, "body_bytes": 0, "client_gone": False,
                     "error": None}
            st.active[entry["n"]] = entry
        try:
            self._serve(entry, path, query)
        except ClientGone:
            entry["client_gone"] = True
            raise
        except (ConnectionError, OSError):
            entry["client_gone"] = True
            self.close_connection = True
        finally:
            with st.lock:
                st.inflight -= 1
                st.active.pop(entry["n"], None)
                st.log.append(entry)

    def _serve(self, entry, path, query):
        st = self.state
        idx, rule = st.pick(self.command, path, query)
        act = (rule or {}).get("action") or {"kind": "forward"}
        kind = act.get("kind", "forward")
        entry["rule"] = idx
        if rule is not None:
            entry["action"] = kind
        if rule is not None and rule.get("delay_s"):
            if self.wait(float(rule["delay_s"])):
                raise ClientGone("hang-up during the delay")
        if kind == "reset":
            total = int(self.headers.get("Content-Length") or 0)
            if "after_fraction" in act:
                n = int(total * float(act["after_fraction"]))
            else:
                n = int(act.get("after_bytes", 0))
            if n > 0:
                self.send_continue()
                entry["body_bytes"] = len(self.read_body(n))
            entry["status"] = "reset"
            self.rst()
            return
        if kind in ("status", "body", "fill", "hold"):
            self.send_continue()
            entry["body_bytes"] = len(self.read_body())
        if kind == "status":
            code = int(act.get("status", 500))
            s3code = act.get("code") or DEFAULT_CODES.get(code, "Injected")
            entry["status"] = code
            hdrs = list((act.get("headers") or {}).items())
            return self.reply(code, error_xml(s3code, act.get(
                "message", "injected by fault_proxy")), hdrs,
                "application/xml")
        if kind == "body":
            body = act.get("body", "")
            body = body.encode() if isinstance(body, str) else bytes(body)
            entry["status"] = int(act.get("status", 200))
            return self.reply(entry["status"], body, (), act.get(
                "content_type", "application/xml"))
        if kind == "fill":
            return self.fill(entry, act)
        if kind == "hold":
            entry["status"] = "hold"
            while not self.wait(3600):
                if st.stop.is_set():
                    break
            self.close_connection = True
            return
        self.forward(entry, trickle=act if kind == "trickle" else None)

    def fill(self, entry, act):
        pre = act.get("prefix", "").encode()
        unit = act.get("unit", "").encode()
        rep = int(act.get("repeat", 0))
        suf = act.get("suffix", "").encode()
        entry["status"] = int(act.get("status", 200))
        self.send_response(entry["status"])
        self.send_header("Content-Type", act.get("content_type",
                                                 "application/xml"))
        self.send_header("Content-Length",
                         str(len(pre) + len(unit) * rep + len(suf)))
        self.end_headers()
        try:
            self.wfile.write(pre)
            batch = max(1, (1 << 16) // max(1, len(unit)))
            block = unit * batch
            sent = 0
            while sent < rep:
                k = min(batch, rep - sent)
                self.wfile.write(block if k == batch else unit * k)
                sent += k
            self.wfile.write(suf)
        except (ConnectionError, OSError):
            raise ClientGone("client hung up during the fill")

    def trickle_reply(self, status, body, headers, act):
        """The answer ${status}/${headers}/${body}, its body paced as the
        trickle action ${act} says."""
        rate = float(act.get("bytes_per_s", 50))
        cut = min(len(body), int(act.get("after_bytes", 0)))
        step = max(1, int(rate / 10))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            pos, t0 = cut, time.monotonic()
            while pos < len(body):
                due = t0 + (pos - cut + step) / rate
                if self.wait(max(0.0, due - time.monotonic())):
                    raise ClientGone("hang-up during the trickle")
                if self.state.stop.is_set():
                    break
                self.wfile.write(body[pos:pos + step])
                self.wfile.flush()
                pos += step
        except (ConnectionError, OSError):
            raise ClientGone("client hung up during the trickle")
        self.close_connection = True

    def forward(self, entry, trickle=None):
        self.send_continue()
        body = self.read_body()
        entry["body_bytes"] = len(body)
        host, port = self.state.upstream.rsplit(":", 1)
        up = http.client.HTTPConnection(host, int(port), timeout=120)
        try:
            up.putrequest(self.command, self.path, skip_host=True,
                          skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                    continue
                up.putheader(k, v)
            if body or self.command in ("PUT", "POST"):
                up.putheader("Content-Length", str(len(body)))
            up.endheaders()
            if body:
                up.send(body)
            resp = up.getresponse()
            data = resp.read()
            headers = [(k, v) for k, v in resp.getheaders()
                       if k.lower() not in HOP_BY_HOP
                       and k.lower() != "content-length"]
            if self.command == "HEAD":
                cl = resp.getheader("Content-Length")
                if cl is not None:
                    headers.append(("Content-Length", cl))
            entry["status"] = resp.status
            if resp.getheader("Connection", "").lower() == "close":
                self.close_connection = True
        except (ConnectionError, OSError, http.client.HTTPException) as e:
            entry["status"] = "upstream_error"
            entry["error"] = repr(e)
            data = error_xml("InternalError", "fault_proxy: upstream: %r"
                             % (e,))
            headers = [("Content-Type", "application/xml")]
            self.close_connection = True
            self.reply(502, data, headers)
            return
        finally:
            up.close()
        if trickle is not None:
            return self.trickle_reply(resp.status, data, headers, trickle)
        self.reply(resp.status, data, headers)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, ClientGone,
                            OSError)):
            return
        sys.stderr.write("fault_proxy: error handling a request: %r\n"
                         % (exc,))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True, help="HOST:PORT")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    Handler.state = State(args.upstream)
    srv = Server(("127.0.0.1", args.port), Handler)

    def on_signal(signum, frame):
        Handler.state.stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t = threading.Thread(target=srv.serve_forever,
                         kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    print("PORT %d" % srv.server_address[1], flush=True)
    while not Handler.state.stop.wait(0.5):
        pass
    srv.shutdown()
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
