#!/usr/bin/python3
"""credsrv: loopback stand-ins for the AWS credential endpoints.

Stdlib only; run with /usr/bin/python3.  One process per endpoint:

    credsrv.py --mode imds|container|sts --port-file F --registry R
               [--request-log L] [--lifetime S] [--token-length N]
               imds:      [--role NAME]
               container: [--path /v2/credentials/abc]
                          [--auth-token T | --auth-token-file F]
               sts:       --web-identity-token-file F [--role-arn ARN]

Binds 127.0.0.1 on an ephemeral port and writes the port (decimal, "\\n")
to --port-file through a temporary + rename, so a reader that sees the file
sees all of it.  SIGTERM / SIGINT stop it.

Every issue of credentials mints a fresh set (access key "ASIA" + 16
characters, a 40-character secret, a --token-length session token) valid
for --lifetime seconds (a float), and appends one JSON line to --registry:

    {"access_key", "secret_key", "token", "expires" (epoch float),
     "source" ("imds" | "container" | "sts")}

Several stand-ins and tests/s3/sigv4_proxy.py --credentials-file share that
file: the proxy accepts exactly the keys registered there, until they
expire.  Each line is written with one write(2) on an O_APPEND descriptor.
The Expiration the client sees is the expiry rounded *down* to the second
("YYYY-MM-DDTHH:MM:SSZ", as AWS writes it), so a client that honours it
never sends a key the proxy considers expired.

Protocols, as AWS speaks them
-----------------------------
imds (IMDSv2 only):
  PUT /latest/api/token, X-aws-ec2-metadata-token-ttl-seconds 1..21600
      -> 200 text token (else 400; 405 for GET: no IMDSv1 token)
  GET /latest/meta-data/iam/security-credentials/
      -> 200 the role name; needs X-aws-ec2-metadata-token = a token that
         has not expired, else 401 (so IMDSv1 is refused)
  GET /latest/meta-data/iam/security-credentials/<role>
      -> 200 {"Code": "Success", "LastUpdated", "Type": "AWS-HMAC",
              "AccessKeyId", "SecretAccessKey", "Token", "Expiration"}
         (401 without a token, 404 for another role)
container (ECS / EKS Pod Identity):
  GET <--path> with "Authorization: <token>": the token must equal
      --auth-token, or the *current* content of --auth-token-file (re-read
      at every request, one trailing newline ignored); missing -> 401,
      wrong -> 403.  200 {"AccessKeyId", "SecretAccessKey", "Token",
      "Expiration", "RoleArn"}; other paths 404.
sts (AssumeRoleWithWebIdentity, an unsigned request):
  POST / with a form body, or GET /?query: Action=AssumeRoleWithWebIdentity,
      Version=2011-06-15, RoleArn, RoleSessionName, WebIdentityToken.  The
      token must equal the *current* content of --web-identity-token-file
      (re-read at every request) else 400 InvalidIdentityToken; a RoleArn
      other than --role-arn 403 AccessDenied; missing parameters 400
      ValidationError / MissingParameter.  200 is the real
      AssumeRoleWithWebIdentityResponse XML.

Request log (--request-log, JSON lines, one per request, control requests
excluded; each line is written before the answer is sent): {"n", "method", "path", "status", "mode", and what matters:
"imds_token" (the request carried X-aws-ec2-metadata-token), "ttl" (the TTL
header), "authorization" ("none" | "ok" | "wrong"), "token_sha" (first 12
hex of the SHA-256 of the token presented: Authorization or
WebIdentityToken), "file_sha" (the same for the token file's content as
read for this request), "issued" (the access key issued, or null),
"action", "role_arn", "session_name"}.  Secrets are never logged.

Control (unsigned, not logged), under /__ctl__/:
  POST /__ctl__/fail      {"count": N, "status": 500[, "delay_s": S]}
                          the next N requests fail with that status
                          (after S seconds)
  POST /__ctl__/delay     {"count": N, "seconds": S}  the next N requests
                          wait S seconds first (a slow endpoint)
  POST /__ctl__/lifetime  {"seconds": S}  lifetime of the next issues
  GET  /__ctl__/stats     {"requests", "issued"}
"""

import argparse
import datetime
import hashlib
import http.server
import json
import os
import secrets
import signal
import socket
import string
import sys
import threading
import time
import urllib.parse
from xml.sax.saxutils import escape

IMDS_TOKEN_PATH = "/latest/api/token"
IMDS_CREDS_PATH = "/latest/meta-data/iam/security-credentials/"
ALNUM_UP = string.ascii_uppercase + string.digits
B64ISH = string.ascii_letters + string.digits + "+/"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


def sha12(s):
    if s is None:
        return None
    if isinstance(s, str):
        s = s.encode("utf-8", "surrogateescape")
    return hashlib.sha256(s).hexdigest()[:12]


def iso8601(epoch):
    """The expiry as AWS writes it, rounded down to the second."""
    return datetime.datetime.fromtimestamp(
        int(epoch), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_token_file(path):
    """The file's content, one trailing newline dropped; None if absent."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    text = data.decode("utf-8", "replace")
    if text.endswith("\n"):
        text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
    return text


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.lifetime = float(args.lifetime)
        self.fail = []        # [{"count", "status", "delay_s"}]
        self.delays = []      # [{"count", "seconds"}]
        self.requests = 0
        self.issued = 0
        self.imds_tokens = {}  # token -> expiry (monotonic)
        self.stop = threading.Event()
        self.log = None
        if args.request_log:
            self.log = open(args.request_log, "a", encoding="utf-8")
        self.reg_fd = os.open(args.registry,
                              os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def mint(self, source):
        """A fresh set of credentials, registered before it is served."""
        with self.lock:
            lifetime = self.lifetime
        creds = {
            "access_key": "ASIA" + "".join(secrets.choice(ALNUM_UP)
                                           for _ in range(16)),
            "secret_key": "".join(secrets.choice(B64ISH)
                                  for _ in range(40)),
            "token": "".join(secrets.choice(B64ISH)
                             for _ in range(self.args.token_length)),
            "expires": time.time() + lifetime,
            "source": source,
        }
        line = (json.dumps(creds, sort_keys=True) + "\n").encode()
        os.write(self.reg_fd, line)  # one write, O_APPEND: a whole line
        with self.lock:
            self.issued += 1
        return creds

    def next_fault(self):
        """(fail rule or None, delay seconds) for the request starting."""
        with self.lock:
            self.requests += 1
            delay = 0.0
            if self.delays:
                d = self.delays[0]
                delay = float(d["seconds"])
                d["count"] -= 1
                if d["count"] <= 0:
                    self.delays.pop(0)
            rule = None
            if self.fail:
                rule = dict(self.fail[0])
                self.fail[0]["count"] -= 1
                if self.fail[0]["count"] <= 0:
                    self.fail.pop(0)
            return rule, delay

    def record(self, entry):
        if self.log is None:
            return
        with self.lock:
            entry["n"] = self.requests
            self.log.write(json.dumps(entry, sort_keys=True) + "\n")
            self.log.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "credsrv"
    state = None

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self.serve()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def log_entry(self):
        """Write this request's log line (once), before its answer goes
        out, so that a client that has the answer finds the line."""
        entry, self._entry = getattr(self, "_entry", None), None
        if entry is not None:
            self.state.record(entry)

    def reply(self, status, body=b"", ctype="text/plain"):
        if isinstance(body, str):
            body = body.encode()
        self.log_entry()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def control(self, path):
        st = self.state
        data = self.body()
        req = json.loads(data) if data else {}
        if path == "/__ctl__/fail" and self.command == "POST":
            with st.lock:
                st.fail.append({"count": int(req.get("count", 1)),
                                "status": int(req.get("status", 500)),
                                "delay_s": float(req.get("delay_s", 0))})
            return self.reply(204)
        if path == "/__ctl__/delay" and self.command == "POST":
            with st.lock:
                st.delays.append({"count": int(req.get("count", 1)),
                                  "seconds": float(req["seconds"])})
            return self.reply(204)
        if path == "/__ctl__/lifetime" and self.command == "POST":
            with st.lock:
                st.lifetime = float(req["seconds"])
            return self.reply(204)
        if path == "/__ctl__/stats" and self.command == "GET":
            with st.lock:
                out = {"requests": st.requests, "issued": st.issued}
            return self.reply(200, json.dumps(out), "application/json")
        return self.reply(404, "no such control")

    def wait(self, seconds):
        self.state.stop.wait(seconds)

    def serve(self):
        st = self.state
        path, _, query = self.path.partition("?")
        if path.startswith("/__ctl__/"):
            return self.control(path)
        entry = {"method": self.command, "path": path, "mode": st.args.mode,
                 "status": None, "issued": None}
        self._entry = entry
        rule, delay = st.next_fault()
        try:
            if delay:
                self.wait(delay)
            if rule is not None:
                if rule.get("delay_s"):
                    self.wait(rule["delay_s"])
                self.body()
                entry["status"] = rule["status"]
                entry["injected"] = True
                return self.reply(rule["status"], "injected failure\n")
            getattr(self, "serve_" + st.args.mode)(entry, path, query)
        finally:
            self.log_entry()

    # -- IMDSv2 ---------------------------------------------------------
    def imds_token_ok(self):
        tok = self.headers.get("X-aws-ec2-metadata-token")
        if tok is None:
            return False
        st = self.state
        with st.lock:
            exp = st.imds_tokens.get(tok)
        return exp is not None and exp > time.monotonic()

    def serve_imds(self, entry, path, query):
        st = self.state
        entry["imds_token"] = \
            self.headers.get("X-aws-ec2-metadata-token") is not None
        entry["ttl"] = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        self.body()
        if path == IMDS_TOKEN_PATH:
            if self.command != "PUT":
                entry["status"] = 405
                return self.reply(405, "method not allowed\n")
            if self.headers.get("X-Forwarded-For") is not None:
                entry["status"] = 403  # IMDS refuses proxied token requests
                return self.reply(403, "forbidden\n")
            try:
                ttl = int(entry["ttl"])
            except (TypeError, ValueError):
                ttl = 0
            if not 1 <= ttl <= 21600:
                entry["status"] = 400
                return self.reply(400, "bad ttl\n")
            tok = "AQAEA" + secrets.token_urlsafe(40)
            with st.lock:
                st.imds_tokens[tok] = time.monotonic() + ttl
            entry["status"] = 200
            self.log_entry()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))
            self.send_header("Content-Length", str(len(tok)))
            self.end_headers()
            self.wfile.write(tok.encode())
            return
        if not path.startswith(IMDS_CREDS_PATH):
            entry["status"] = 404
            return self.reply(404, "not found\n")
        if self.command != "GET":
            entry["status"] = 405
            return self.reply(405, "method not allowed\n")
        if not self.imds_token_ok():
            entry["status"] = 401  # IMDSv1, or a stale token
            return self.reply(401, "unauthorized\n")
        role = path[len(IMDS_CREDS_PATH):]
        if role == "":
            entry["status"] = 200
            return self.reply(200, st.args.role)
        if role != st.args.role:
            entry["status"] = 404
            return self.reply(404, "not found\n")
        c = st.mint("imds")
        entry["issued"] = c["access_key"]
        doc = {"Code": "Success",
               "LastUpdated": iso8601(time.time()),
               "Type": "AWS-HMAC",
               "AccessKeyId": c["access_key"],
               "SecretAccessKey": c["secret_key"],
               "Token": c["token"],
               "Expiration": iso8601(c["expires"])}
        entry["status"] = 200
        self.reply(200, json.dumps(doc, indent=2), "text/plain")

    # -- container credentials -------------------------------------------
    def serve_container(self, entry, path, query):
        st = self.state
        self.body()
        if self.command != "GET" or path != st.args.path:
            entry["status"] = 404
            return self.reply(404, "not found\n")
        want = st.args.auth_token
        if st.args.auth_token_file:
            want = read_token_file(st.args.auth_token_file)
            entry["file_sha"] = sha12(want)
        got = self.headers.get("Authorization")
        entry["token_sha"] = sha12(got)
        if want is not None and got is None:
            entry["authorization"] = "none"
            entry["status"] = 401
            return self.reply(401, json.dumps(
                {"code": "Unauthorized", "message": "no token"}),
                "application/json")
        if want is not None and got != want:
            entry["authorization"] = "wrong"
            entry["status"] = 403
            return self.reply(403, json.dumps(
                {"code": "AccessDenied", "message": "bad token"}),
                "application/json")
        entry["authorization"] = "ok" if want is not None else "none"
        c = st.mint("container")
        entry["issued"] = c["access_key"]
        doc = {"AccessKeyId": c["access_key"],
               "SecretAccessKey": c["secret_key"],
               "Token": c["token"],
               "Expiration": iso8601(c["expires"]),
               "RoleArn": "arn:aws:iam::123456789012:role/amp2s3-task"}
        entry["status"] = 200
        self.reply(200, json.dumps(doc), "application/json")

    # -- STS ------------------------------------------------------------
    def sts_error(self, entry, status, code, message, typ="Sender"):
        entry["status"] = status
        entry["error"] = code
        body = ('<ErrorResponse xmlns="%s">\n  <Error>\n    <Type>%s</Type>'
                '\n    <Code>%s</Code>\n    <Message>%s</Message>\n'
                '  </Error>\n  <RequestId>%s</RequestId>\n'
                '</ErrorResponse>\n' % (STS_NS, typ, escape(code),
                                        escape(message),
                                        secrets.token_hex(8)))
        self.reply(status, body, "text/xml")

    def serve_sts(self, entry, path, query):
        st = self.state
        raw = self.body()
        if self.command == "POST":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0]
            if ctype.strip().lower() != "application/x-www-form-urlencoded":
                return self.sts_error(entry, 400, "InvalidAction",
                                      "form body expected")
            params = urllib.parse.parse_qs(raw.decode("utf-8", "replace"),
                                           keep_blank_values=True)
        elif self.command == "GET":
            params = urllib.parse.parse_qs(query, keep_blank_values=True)
        else:
            return self.sts_error(entry, 405, "InvalidAction",
                                  "unsupported method")
        p = {k: v[0] for k, v in params.items()}
        entry["action"] = p.get("Action")
        entry["role_arn"] = p.get("RoleArn")
        entry["session_name"] = p.get("RoleSessionName")
        if p.get("Action") != "AssumeRoleWithWebIdentity":
            return self.sts_error(entry, 400, "InvalidAction",
                                  "Could not find operation %s"
                                  % p.get("Action"))
        if p.get("Version") != "2011-06-15":
            return self.sts_error(entry, 400, "InvalidAction",
                                  "unsupported version")
        for name in ("RoleArn", "RoleSessionName", "WebIdentityToken"):
            if not p.get(name):
                return self.sts_error(entry, 400, "MissingParameter",
                                      "The request must contain the "
                                      "parameter %s" % name)
        sn = p["RoleSessionName"]
        if not (2 <= len(sn) <= 64) or any(
                ch not in string.ascii_letters + string.digits + "+=,.@-_"
                for ch in sn):
            return self.sts_error(entry, 400, "ValidationError",
                                  "1 validation error detected: Value at "
                                  "'roleSessionName' failed to satisfy "
                                  "constraint")
        want = read_token_file(st.args.web_identity_token_file)
        entry["file_sha"] = sha12(want)
        entry["token_sha"] = sha12(p["WebIdentityToken"])
        if want is None or p["WebIdentityToken"] != want:
            return self.sts_error(entry, 400, "InvalidIdentityToken",
                                  "Couldn't retrieve verification key from "
                                  "your identity provider, please reference "
                                  "AssumeRoleWithWebIdentity documentation "
                                  "for requirements")
        if st.args.role_arn and p["RoleArn"] != st.args.role_arn:
            return self.sts_error(entry, 403, "AccessDenied",
                                  "Not authorized to perform "
                                  "sts:AssumeRoleWithWebIdentity")
        c = st.mint("sts")
        entry["issued"] = c["access_key"]
        role = p["RoleArn"].rsplit("/", 1)[-1]
        body = (
            '<AssumeRoleWithWebIdentityResponse xmlns="%s">\n'
            '  <AssumeRoleWithWebIdentityResult>\n'
            '    <SubjectFromWebIdentityToken>system:serviceaccount:amp:'
            'amp2s3</SubjectFromWebIdentityToken>\n'
            '    <Audience>sts.amazonaws.com</Audience>\n'
            '    <AssumedRoleUser>\n'
            '      <Arn>arn:aws:sts::123456789012:assumed-role/%s/%s</Arn>\n'
            '      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:%s</AssumedRoleId>\n'
            '    </AssumedRoleUser>\n'
            '    <Credentials>\n'
            '      <SessionToken>%s</SessionToken>\n'
            '      <SecretAccessKey>%s</SecretAccessKey>\n'
            '      <Expiration>%s</Expiration>\n'
            '      <AccessKeyId>%s</AccessKeyId>\n'
            '    </Credentials>\n'
            '    <Provider>oidc.eks.eu-west-2.amazonaws.com</Provider>\n'
            '  </AssumeRoleWithWebIdentityResult>\n'
            '  <ResponseMetadata>\n'
            '    <RequestId>%s</RequestId>\n'
            '  </ResponseMetadata>\n'
            '</AssumeRoleWithWebIdentityResponse>\n' % (
                STS_NS, escape(role), escape(sn), escape(sn),
                escape(c["token"]), escape(c["secret_key"]),
                iso8601(c["expires"]), c["access_key"],
                secrets.token_hex(8)))
        entry["status"] = 200
        self.reply(200, body, "text/xml")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout)):
            return
        sys.stderr.write("credsrv: error handling a request: %r\n" % (exc,))


def write_port_file(path, port):
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, ".%s.tmp-%d" % (os.path.basename(path),
                                          os.getpid()))
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", required=True,
                    choices=("imds", "container", "sts"))
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--request-log")
    ap.add_argument("--lifetime", type=float, default=3600.0)
    ap.add_argument("--token-length", type=int, default=600)
    ap.add_argument("--role", default="amp2s3-instance-role")
    ap.add_argument("--path", default="/v2/credentials/amp2s3")
    ap.add_argument("--auth-token")
    ap.add_argument("--auth-token-file")
    ap.add_argument("--web-identity-token-file")
    ap.add_argument("--role-arn")
    args = ap.parse_args(argv)
    if args.mode == "sts" and not args.web_identity_token_file:
        ap.error("--mode sts needs --web-identity-token-file")

    state = State(args)
    Handler.state = state
    srv = Server(("127.0.0.1", 0), Handler)
    write_port_file(args.port_file, srv.server_address[1])

    def on_signal(signum, frame):
        state.stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t = threading.Thread(target=srv.serve_forever,
                         kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    while not state.stop.wait(0.5):
        pass
    srv.shutdown()
    srv.server_close()
    if state.log is not None:
        with state.lock:
            state.log.close()
    os.close(state.reg_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
