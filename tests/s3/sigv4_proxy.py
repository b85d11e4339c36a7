#!/usr/bin/python3
"""sigv4_proxy: an HTTP proxy that checks AWS SigV4 like S3 does, in front
of s3rver (which does not).

Every request is verified before it reaches s3rver:

- Authorization "AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/s3/aws4_request,
  SignedHeaders=..., Signature=...": a wrong access key answers 403
  InvalidAccessKeyId, a region other than --region (or a service other than
  s3) 400 AuthorizationHeaderMalformed with <Region>, as AWS does.
- x-amz-date must match the credential date and lie within 15 minutes;
  x-amz-content-sha256 is required; host and every x-amz-* header present
  must be signed.
- The signature is recomputed with botocore's S3SigV4Auth over the request
  as received: method; path decoded and re-encoded the AWS way; query
  parameters decoded, re-encoded and sorted (so an unsorted or unencoded
  query, or "?uploads" without "=", fails here as it fails on AWS); the
  signed headers with the values received.  Mismatch: 403
  SignatureDoesNotMatch with the CanonicalRequest we computed.
- The body's SHA-256 must equal x-amz-content-sha256 (unless
  UNSIGNED-PAYLOAD): 400 XAmzContentSHA256Mismatch; Content-MD5, when
  present, must match: 400 BadDigest.

Temporary credentials (--credentials-file FILE, the registry that
tests/aws/credsrv.py writes: one JSON object per line with access_key,
secret_key, token, expires): besides the static key, every registered
access key is accepted, the file re-read whenever it changed.  A request
with a registered key must carry x-amz-security-token equal to its token
(and signed, like every x-amz-* header), else 403 InvalidToken; once the
key's "expires" (epoch seconds) has passed, 400 ExpiredToken ("The
provided token has expired."), as S3 answers.

Server-side encryption and storage class, as S3 checks them:
- x-amz-server-side-encryption must be AES256, aws:kms or aws:kms:dsse;
  a KMS key id or bucket-key header without aws:kms: 400 InvalidArgument.
- UploadPart (PUT ?partNumber&uploadId) carrying any
  x-amz-server-side-encryption* header (the SSE-C customer-key headers
  aside): 400 InvalidArgument.
- --require-sse AES256|aws:kms (a bucket policy "deny PutObject without
  SSE"): PutObject and CreateMultipartUpload (POST ?uploads) whose
  x-amz-server-side-encryption is not that value: 403 AccessDenied.
- x-amz-storage-class outside S3's list: 400 InvalidStorageClass.  s3rver
  knows fewer classes: the header is dropped before forwarding when
  s3rver would refuse a class that S3 accepts.

Multipart ETags as S3 writes them: s3rver gives an object completed from
parts the MD5 of its bytes; S3 gives it MD5(concatenated part MD5s)-N,
which is no digest of the object.  The proxy remembers each part's MD5
and, once CompleteMultipartUpload succeeds, shows that object's ETag the
S3 way in the Complete answer, HEAD and GET headers and ListObjectsV2
pages (until a single PUT or DELETE replaces the object).

Good requests go to s3rver unchanged (hop-by-hop headers aside; the
credential in Authorization becomes s3rver's own account, which is the
only key s3rver knows).  s3rver
3.7.1 lacks AbortMultipartUpload; with --s3rver-dir the proxy performs it
(DELETE ?uploadId=U removes s3rver's upload directory) so that clients'
cleanup can be tested.

Test hooks, unsigned, under /__proxy__/:
  POST   /__proxy__/faults  JSON rule or list of rules, e.g.
         {"method": "PUT", "query_contains": "partNumber=2", "status": 503,
          "code": "SlowDown", "times": 1}  or  {"action": "reset", ...};
         status 200 with a code makes a 200 whose body is an <Error>;
         "delay_s": N waits N seconds first (alone: then forwards).
         {"action": "trickle", "rate": N[, "direction": "response"]}
         forwards, then sends the answer's body at N bytes/s;
         "direction": "request" reads the request's body at N bytes/s
         (with a small receive buffer) before verifying it.
         {"action": "list_loop", "tokens": ["A", "B"], "keys": [...]}
         answers ListObjectsV2 itself: always truncated, the next token
         cycling A -> B -> A ... (a server that never ends a listing);
         "keys" (default none) are listed on every page.
         {"action": "list_inject", "keys": [...]} forwards the listing,
         then adds these keys (e.g. outside the requested prefix) to the
         page.
  POST   /__proxy__/expire  {"access_key": AK} or {"all": true}: from now
         on that registered key (or every key registered so far) is
         expired (400 ExpiredToken)
  DELETE /__proxy__/faults  clear the rules
  GET    /__proxy__/log     JSON list of the S3 requests seen:
         {"method", "path", "query", "status", "conn", "content_md5",
         "content_sha256", "content_type", "access_key",
         "security_token" (bool: the header was present; never its
         value), "sse", "sse_kms_key_id", "sse_bucket_key",
         "storage_class"} (conn: client connection number, to measure
         connection reuse)
  DELETE /__proxy__/log     clear it

Run: sigv4_proxy.py --upstream HOST:PORT [--region R] [--s3rver-dir DIR]
     [--credentials-file FILE] [--require-sse AES256|aws:kms]
     [--upstream-access-key S3RVER];
credentials from SIGV4_PROXY_ACCESS_KEY / SIGV4_PROXY_SECRET_KEY
(/ SIGV4_PROXY_SESSION_TOKEN).  Listens on 127.0.0.1, an ephemeral port
unless --port; prints "PORT <n>" on stdout once listening.

sigv4_proxy.py --self-test checks the verifier itself without a network:
a botocore-signed request passes and every tampered variant is rejected.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import html
import http.client
import http.server
import itertools
import json
import os
import re
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
import urllib.parse
from xml.sax.saxutils import escape

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

UNSIGNED = "UNSIGNED-PAYLOAD"
SKEW = datetime.timedelta(minutes=15)
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "transfer-encoding", "upgrade", "expect",
}
SPOOL_MEM = 8 << 20
# S3's storage classes (PutObject, CreateMultipartUpload).
STORAGE_CLASSES = {
    "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",
    "INTELLIGENT_TIERING", "GLACIER", "DEEP_ARCHIVE", "OUTPOSTS",
    "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE",
}
# The subset s3rver 3.7.1 accepts (it refuses the others).
S3RVER_CLASSES = {
    "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",
    "INTELLIGENT_TIERING", "GLACIER", "DEEP_ARCHIVE", "OUTPOSTS",
}
SSE_VALUES = {"AES256", "aws:kms", "aws:kms:dsse"}
SSE_HEADERS = ("x-amz-server-side-encryption",
               "x-amz-server-side-encryption-aws-kms-key-id",
               "x-amz-server-side-encryption-context",
               "x-amz-server-side-encryption-bucket-key-enabled")


class Reject(Exception):
    """An S3 error answer: HTTP status, S3 code, message, extra fields."""

    def __init__(self, status, code, message, **extra):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.extra = (
            status, code, message, extra)

    def body(self):
        parts = [f"<Code>{escape(self.code)}</Code>",
                 f"<Message>{escape(self.message)}</Message>"]
        for k, v in self.extra.items():
            parts.append(f"<{k}>{escape(str(v))}</{k}>")
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
                + "".join(parts) + "</Error>").encode()


class _Auth(S3SigV4Auth):
    """botocore's S3 SigV4, restricted to the headers the client signed and
    with the path canonicalised the way S3 does (decode, encode once)."""

    def __init__(self, creds, region, signed):
        super().__init__(creds, "s3", region)
        self._signed = signed

    def headers_to_sign(self, request):
        hm = HTTPHeaders()
        for name in self._signed:
            for v in request.headers.get_all(name) or []:
                hm[name] = v
        return hm

    def _normalize_url_path(self, path):
        return urllib.parse.quote(urllib.parse.unquote_to_bytes(path),
                                  safe="/~")


def split_query(raw):
    """Query parameters, percent-decoded ('+' stays '+', as S3 reads it)."""
    out = []
    if not raw:
        return out
    for pair in raw.split("&"):
        k, _, v = pair.partition("=")
        out.append((urllib.parse.unquote(k), urllib.parse.unquote(v)))
    return out


class Registry:
    """Temporary credentials issued by tests/aws/credsrv.py: one JSON
    object per line (access_key, secret_key, token, expires, source).
    Re-read whenever the file's size or mtime changed; keys can be
    expired early (expire())."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.stamp = None
        self.keys = {}
        self.expired = {}  # access key -> forced expiry (epoch)

    def _load(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        if stamp == self.stamp:
            return
        keys = {}
        with open(self.path, "rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # a line being written: next time
                try:
                    d = json.loads(raw)
                    keys[d["access_key"]] = d
                except (ValueError, KeyError, TypeError):
                    continue
        self.keys, self.stamp = keys, stamp

    def lookup(self, access_key):
        """(secret, token, expires) for a registered key, or None."""
        with self.lock:
            self._load()
            d = self.keys.get(access_key)
            if d is None:
                return None
            exp = float(d["expires"])
            if access_key in self.expired:
                exp = min(exp, self.expired[access_key])
            return d["secret_key"], d["token"], exp

    def expire(self, access_key=None, everything=False):
        """Expire one key, or every key registered so far; returns how
        many."""
        now = time.time()
        with self.lock:
            self._load()
            names = list(self.keys) if everything else \
                [access_key] if access_key in self.keys else []
            for k in names:
                self.expired[k] = now
            return len(names)


class Verifier:
    """Checks one request's SigV4 header signature."""

    def __init__(self, access_key, secret_key, region, token=None,
                 registry=None):
        self.access_key, self.secret_key = access_key, secret_key
        self.region, self.token = region, token
        self.registry = registry

    def credentials_for(self, ak, headers, now_epoch=None):
        """(secret, token) that ${ak} must sign with, or Reject: the
        static key with its optional token, or a registered temporary
        key, whose token must be presented and which must not have
        expired."""
        if ak == self.access_key:
            if self.token is not None and \
                    headers.get("x-amz-security-token") != self.token:
                raise Reject(403, "InvalidToken",
                             "The provided token is malformed or otherwise "
                             "invalid.")
            if self.token is None and headers.get("x-amz-security-token"):
                raise Reject(403, "InvalidToken",
                             "The provided token is malformed or otherwise "
                             "invalid.")
            return self.secret_key, self.token
        found = self.registry.lookup(ak) if self.registry else None
        if found is None:
            raise Reject(403, "InvalidAccessKeyId",
                         "The AWS Access Key Id you provided does not "
                         "exist in our records.")
        secret, token, expires = found
        given = headers.get("x-amz-security-token")
        if given is None or not hmac.compare_digest(given.encode(),
                                                    token.encode()):
            raise Reject(403, "InvalidToken",
                         "The provided token is malformed or otherwise "
                         "invalid.")
        if (now_epoch or time.time()) >= expires:
            raise Reject(400, "ExpiredToken",
                         "The provided token has expired.")
        return secret, token

    def check(self, method, target, headers, now=None):
        """Raise Reject unless the request is signed right.  ${headers}
        is an email.message-like object (get, get_all, keys)."""
        auth = headers.get("Authorization")
        if not auth:
            raise Reject(403, "AccessDenied", "Anonymous access is denied")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            raise Reject(400, "AuthorizationHeaderMalformed",
                         "Unsupported authorization type",
                         Region=self.region)
        fields = {}
        for part in auth[len("AWS4-HMAC-SHA256 "):].split(","):
            k, sep, v = part.strip().partition("=")
            if not sep:
                raise Reject(400, "AuthorizationHeaderMalformed",
                             f"bad component {part.strip()!r}",
                             Region=self.region)
            fields[k] = v
        try:
            cred, signed, sig = (fields["Credential"],
                                 fields["SignedHeaders"], fields["Signature"])
        except KeyError as e:
            raise Reject(400, "AuthorizationHeaderMalformed",
                         f"missing {e.args[0]}", Region=self.region)
        cparts = cred.split("/")
        if len(cparts) != 5 or cparts[4] != "aws4_request":
            raise Reject(400, "AuthorizationHeaderMalformed",
                         "bad Credential scope", Region=self.region)
        ak, date, region, service, _ = cparts
        if ak != self.access_key and (
                self.registry is None or self.registry.lookup(ak) is None):
            raise Reject(403, "InvalidAccessKeyId",
                         "The AWS Access Key Id you provided does not "
                         "exist in our records.")
        if region != self.region:
            raise Reject(400, "AuthorizationHeaderMalformed",
                         f"The authorization header is malformed; the "
                         f"region '{region}' is wrong; expecting "
                         f"'{self.region}'", Region=self.region)
        if service != "s3":
            raise Reject(400, "AuthorizationHeaderMalformed",
                         f"service '{service}' is not s3",
                         Region=self.region)
        amzdate = headers.get("x-amz-date") or ""
        try:
            when = datetime.datetime.strptime(amzdate, "%Y%m%dT%H%M%SZ")
        except ValueError:
            raise Reject(403, "AccessDenied",
                         "AWS authentication requires a valid Date or "
                         "x-amz-date header")
        if amzdate[:8] != date:
            raise Reject(403, "SignatureDoesNotMatch",
                         "credential date does not match x-amz-date")
        now = now or datetime.datetime.utcnow()
        if abs(now - when) > SKEW:
            raise Reject(403, "RequestTimeTooSkewed",
                         "The difference between the request time and the "
                         "current time is too large.")
        if headers.get("x-amz-content-sha256") is None:
            raise Reject(400, "InvalidRequest",
                         "Missing required header for this request: "
                         "x-amz-content-sha256")
        signed_list = signed.split(";")
        if signed_list != sorted(signed_list) or any(
                h != h.lower() for h in signed_list):
            raise Reject(403, "SignatureDoesNotMatch",
                         "SignedHeaders not lowercase and sorted")
        present = {k.lower() for k in headers.keys()}
        unsigned = sorted(h for h in present
                          if (h.startswith("x-amz-") or h == "host")
                          and h not in signed_list)
        if unsigned:
            raise Reject(403, "AccessDenied",
                         "There were headers present in the request which "
                         "were not signed", HeadersNotSigned=",".join(
                             unsigned))
        secret, token = self.credentials_for(ak, headers)
        missing = [h for h in signed_list if h not in present]
        if missing:
            raise Reject(403, "SignatureDoesNotMatch",
                         f"signed headers missing: {','.join(missing)}")

        path, _, query = target.partition("?")
        req_headers = HTTPHeaders()
        for h in signed_list:
            for v in headers.get_all(h) or []:
                req_headers[h] = v
        req = AWSRequest(method=method,
                         url="http://" + headers.get("host", "") + path,
                         headers=req_headers, params=split_query(query))
        req.context["timestamp"] = amzdate
        signer = _Auth(Credentials(ak, secret, token), self.region,
                       signed_list)
        creq = signer.canonical_request(req)
        sts = signer.string_to_sign(req, creq)
        want = signer.signature(sts, req)
        if not hmac.compare_digest(want, sig):
            raise Reject(403, "SignatureDoesNotMatch",
                         "The request signature we calculated does not "
                         "match the signature you provided. Check your key "
                         "and signing method.", StringToSign=sts,
                         CanonicalRequest=creq)


def is_object_path(path, host):
    """The request names an object (not only a bucket), path-style
    (/BUCKET/KEY) or virtual-host (BUCKET.s3.localhost, /KEY)."""
    hostname = (host or "").rsplit(":", 1)[0].lower()
    rest = path.strip("/")
    if hostname.endswith(".s3.localhost"):
        return rest != ""
    return "/" in rest


def check_sse(method, target, headers, require_sse=None):
    """Raise Reject as S3 (and a bucket policy requiring ${require_sse})
    answers the request's server-side-encryption and storage-class
    headers."""
    path, _, query = target.partition("?")
    q = dict(split_query(query))
    if not is_object_path(path, headers.get("host")):
        return
    upload_part = method == "PUT" and "partNumber" in q and "uploadId" in q
    put_object = method == "PUT" and not upload_part and not q
    create_mpu = method == "POST" and "uploads" in q
    present = [h for h in SSE_HEADERS if headers.get(h) is not None]
    if upload_part and present:
        raise Reject(400, "InvalidArgument",
                     "x-amz-server-side-encryption header is not supported "
                     "for this operation.", ArgumentName=present[0])
    if not (put_object or create_mpu):
        return
    sse = headers.get("x-amz-server-side-encryption")
    if sse is not None and sse not in SSE_VALUES:
        raise Reject(400, "InvalidArgument",
                     "The encryption method specified is not supported",
                     ArgumentName="x-amz-server-side-encryption",
                     ArgumentValue=sse)
    if sse is None or not sse.startswith("aws:kms"):
        for h in SSE_HEADERS[1:]:
            if headers.get(h) is not None:
                raise Reject(400, "InvalidArgument",
                             "Server Side Encryption with KMS managed key "
                             "requires HTTP header x-amz-server-side-"
                             "encryption : aws:kms", ArgumentName=h)
    bk = headers.get("x-amz-server-side-encryption-bucket-key-enabled")
    if bk is not None and bk.lower() not in ("true", "false"):
        raise Reject(400, "InvalidArgument", "bucket key flag must be "
                     "true or false", ArgumentName="x-amz-server-side-"
                     "encryption-bucket-key-enabled")
    sc = headers.get("x-amz-storage-class")
    if sc is not None and sc not in STORAGE_CLASSES:
        raise Reject(400, "InvalidStorageClass",
                     "The storage class you specified is not valid",
                     StorageClassRequested=sc)
    if require_sse is not None and sse != require_sse:
        raise Reject(403, "AccessDenied", "Access Denied")


def credential_key(auth):
    """The access key named by an Authorization header, or None."""
    m = re.search(r"Credential=([^/,\s]+)/", auth or "")
    return m.group(1) if m else None


def inject_keys(xml, keys):
    """A ListObjectsV2 page with ${keys} added as zero-byte objects."""
    extra = "".join(
        "<Contents><Key>%s</Key><LastModified>2024-01-01T00:00:00.000Z"
        "</LastModified><ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;"
        "</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass>"
        "</Contents>" % escape(k) for k in keys).encode()
    end = xml.rfind(b"</ListBucketResult>")
    if end < 0:
        return xml
    return xml[:end] + extra + xml[end:]


def check_payload(headers, sha_hex, md5_raw):
    """Raise Reject if the body's digests contradict the headers."""
    claimed = headers.get("x-amz-content-sha256")
    if claimed != UNSIGNED and claimed != sha_hex:
        raise Reject(400, "XAmzContentSHA256Mismatch",
                     "The provided 'x-amz-content-sha256' header does not "
                     "match what was computed.",
                     ClientComputedContentSHA256=claimed,
                     S3ComputedContentSHA256=sha_hex)
    md5 = headers.get("Content-MD5")
    if md5 is not None:
        try:
            given = base64.b64decode(md5, validate=True)
        except ValueError:
            given = b""
        if len(given) != 16:
            raise Reject(400, "InvalidDigest",
                         "The Content-MD5 you specified was invalid.")
        if given != md5_raw:
            raise Reject(400, "BadDigest",
                         "The Content-MD5 you specified did not match what "
                         "we received.")


class State:
    """Shared by all handler threads, under one lock."""

    def __init__(self, args, verifier):
        self.args, self.verifier = args, verifier
        self.lock = threading.Lock()
        self.faults = []
        self.log = []
        self.conns = itertools.count(1)
        self.parts = {}     # uploadId -> {part number: MD5 raw}
        self.mp_etags = {}  # (bucket, key) -> "md5-N" of a multipart object

    def take_fault(self, method, path, query, pre_body=False):
        """The first rule matching the request, its "times" used once.
        ${pre_body}: only the rules acting on the request's body
        (trickle, direction "request"), which the other call skips."""
        with self.lock:
            for rule in self.faults:
                if rule.get("times", 1) <= 0:
                    continue
                body_rule = rule.get("action") == "trickle" and \
                    rule.get("direction") == "request"
                if body_rule != pre_body:
                    continue
                if rule.get("method") not in (None, method):
                    continue
                if rule.get("path_contains", "") not in path:
                    continue
                if rule.get("query_contains", "") not in query:
                    continue
                rule["times"] = rule.get("times", 1) - 1
                return dict(rule)
        return None

    def record(self, entry):
        with self.lock:
            self.log.append(entry)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sigv4-proxy"
    state = None  # set by main()

    def setup(self):
        super().setup()
        self.conn_no = next(self.state.conns)

    def log_message(self, fmt, *args):
        sys.stderr.write("proxy: " + (fmt % args) + "\n")

    # We answer 100 Continue ourselves, once the signature is good.
    def handle_expect_100(self):
        return True

    def do_GET(self):
        self.serve()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def reply(self, status, body=b"", headers=(), close=False):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if not any(k.lower() == "content-length" for k, _ in headers):
            self.send_header("Content-Length",
                             str(0 if self.command == "HEAD" else len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def reject(self, rej, close=False):
        self.reply(rej.status, rej.body(),
                   [("Content-Type", "application/xml")], close=close)

    def control(self, path, body):
        st = self.state
        if path == "/__proxy__/faults" and self.command == "POST":
            rules = json.loads(body or b"[]")
            with st.lock:
                st.faults.extend(rules if isinstance(rules, list)
                                 else [rules])
            return self.reply(204)
        if path == "/__proxy__/faults" and self.command == "DELETE":
            with st.lock:
                st.faults.clear()
            return self.reply(204)
        if path == "/__proxy__/log" and self.command == "GET":
            with st.lock:
                data = json.dumps(st.log).encode()
            return self.reply(200, data,
                              [("Content-Type", "application/json")])
        if path == "/__proxy__/log" and self.command == "DELETE":
            with st.lock:
                st.log.clear()
            return self.reply(204)
        if path == "/__proxy__/expire" and self.command == "POST":
            req = json.loads(body or b"{}")
            if st.verifier.registry is None:
                return self.reply(409, b"no --credentials-file\n")
            n = st.verifier.registry.expire(req.get("access_key"),
                                            bool(req.get("all")))
            data = json.dumps({"expired": n}).encode()
            return self.reply(200, data,
                              [("Content-Type", "application/json")])
        return self.reply(404)

    def read_body(self, rate=None):
        """Spool the body; returns (file, length, sha256 hex, md5 raw).
        ${rate}: read at most that many bytes per second."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or ""):
            raise Reject(411, "MissingContentLength",
                         "You must provide the Content-Length HTTP header.")
        length = int(self.headers.get("Content-Length") or 0)
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEM)
        sha, md5 = hashlib.sha256(), hashlib.md5()
        left = length
        step = 1 << 16
        if rate:
            # A small receive window, so that the client feels the pace.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                       4096)
            step = max(1, int(rate) // 10)
        while left > 0:
            if rate:
                time.sleep(step / float(rate))
            chunk = self.rfile.read(min(left, step))
            if not chunk:
                raise ConnectionError("client closed mid-body")
            sha.update(chunk)
            md5.update(chunk)
            spool.write(chunk)
            left -= len(chunk)
        spool.seek(0)
        return spool, length, sha.hexdigest(), md5.digest()

    def serve(self):
        st = self.state
        target = self.path
        path, _, query = target.partition("?")
        hd = self.headers
        entry = {"method": self.command, "path": path, "query": query,
                 "status": None, "conn": self.conn_no,
                 "content_md5": hd.get("Content-MD5"),
                 "content_sha256": hd.get("x-amz-content-sha256"),
                 "content_type": hd.get("Content-Type"),
                 "access_key": credential_key(hd.get("Authorization")),
                 "security_token": hd.get("x-amz-security-token")
                 is not None,
                 "sse": hd.get("x-amz-server-side-encryption"),
                 "sse_kms_key_id": hd.get(
                     "x-amz-server-side-encryption-aws-kms-key-id"),
                 "sse_bucket_key": hd.get(
                     "x-amz-server-side-encryption-bucket-key-enabled"),
                 "storage_class": hd.get("x-amz-storage-class")}
        if path.startswith("/__proxy__/"):
            n = int(self.headers.get("Content-Length") or 0)
            return self.control(path, self.rfile.read(n) if n else b"")
        st.record(entry)
        expects = (self.headers.get("Expect") or "").lower() == \
            "100-continue"
        try:
            st.verifier.check(self.command, target, self.headers)
            check_sse(self.command, target, self.headers,
                      st.args.require_sse)
        except Reject as rej:
            entry["status"] = rej.status
            # The body was not read: answer and close (S3 does the same
            # for a request refused before its body).
            has_body = int(self.headers.get("Content-Length") or 0) > 0
            return self.reject(rej, close=has_body)
        if expects:
            self.send_response_only(100)
            self.end_headers()
        spool = None
        try:
            slow = st.take_fault(self.command, path, query, pre_body=True)
            if slow is not None:
                entry["fault"] = "trickle-request"
            spool, length, sha, md5 = self.read_body(
                slow and float(slow["rate"]))
            check_payload(self.headers, sha, md5)
            fault = st.take_fault(self.command, path, query)
            if fault is not None and self.inject(fault, entry) is not False:
                return
            if self.command == "DELETE" and "uploadId" in dict(
                    split_query(query)) and st.args.s3rver_dir:
                return self.abort_upload(path, query, entry)
            self.forward(target, spool, length, entry, fault, md5)
        except Reject as rej:
            entry["status"] = rej.status
            self.reject(rej)
        finally:
            if spool is not None:
                spool.close()

    def inject(self, fault, entry):
        """Act on ${fault}; False: forward the request (forward() then
        applies what the rule does to the answer)."""
        if fault.get("delay_s"):
            time.sleep(float(fault["delay_s"]))
            if fault.get("action") is None and "status" not in fault:
                return False  # only slowed down: forward it
        if fault.get("action") in ("trickle", "list_inject"):
            entry["fault"] = fault["action"]
            return False
        if fault.get("action") == "list_loop":
            return self.list_loop(fault, entry)
        if fault.get("action") == "reset":
            entry["status"] = "reset"
            self.close_connection = True
            # RST instead of FIN: the client sees "connection reset".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            return
        rej = Reject(fault.get("status", 500), fault.get("code",
                     "InternalError"), "injected by sigv4_proxy")
        entry["status"] = rej.status
        self.reject(rej)

    def list_loop(self, fault, entry):
        """A ListObjectsV2 page that is always truncated, its next token
        cycling through fault["tokens"] (A -> B -> A ...)."""
        q = dict(split_query(self.path.partition("?")[2]))
        tokens = fault.get("tokens") or ["A", "B"]
        cur = q.get("continuation-token")
        nxt = tokens[(tokens.index(cur) + 1) % len(tokens)] \
            if cur in tokens else tokens[0]
        entry["status"] = 200
        entry["fault"] = "list_loop"
        keys = "".join(
            "<Contents><Key>%s</Key><LastModified>2024-01-01T00:00:00.000Z"
            "</LastModified><ETag>&quot;d41d8cd98f00b204e9800998ecf8427e"
            "&quot;</ETag><Size>0</Size><StorageClass>STANDARD"
            "</StorageClass></Contents>" % escape(k)
            for k in fault.get("keys", []))
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/'
                '2006-03-01/"><Name>%s</Name><Prefix>%s</Prefix>'
                '<KeyCount>%d</KeyCount><MaxKeys>1000</MaxKeys>'
                '<IsTruncated>true</IsTruncated>%s%s'
                '<NextContinuationToken>%s</NextContinuationToken>'
                '</ListBucketResult>' % (
                    escape(self.path.lstrip("/").split("/")[0]
                           .split("?")[0]),
                    escape(q.get("prefix", "")),
                    len(fault.get("keys", [])),
                    "<ContinuationToken>%s</ContinuationToken>"
                    % escape(cur) if cur else "", keys,
                    escape(nxt))).encode()
        self.reply(200, body, [("Content-Type", "application/xml")])

    def abort_upload(self, path, query, entry):
        """AbortMultipartUpload, which s3rver 3.7.1 lacks."""
        upload_id = dict(split_query(query))["uploadId"]
        bucket = path.lstrip("/").split("/", 1)[0]
        updir = os.path.join(self.state.args.s3rver_dir, bucket,
                             "._S3rver_uploads", upload_id)
        if not re.fullmatch(r"[0-9a-f]{8,64}", upload_id) or \
                not os.path.isdir(updir):
            rej = Reject(404, "NoSuchUpload",
                         "The specified upload does not exist.")
            entry["status"] = 404
            return self.reject(rej)
        shutil.rmtree(updir, ignore_errors=True)
        entry["status"] = 204
        self.reply(204)

    def forward(self, target, spool, length, entry, fault=None, md5=None):
        args = self.state.args
        host, port = args.upstream.rsplit(":", 1)
        up = http.client.HTTPConnection(host, int(port), timeout=120)
        try:
            up.putrequest(self.command, target, skip_host=True,
                          skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                    continue
                if k.lower() == "authorization":
                    # s3rver knows one account: present every verified
                    # request as that one's (it does not check v4
                    # signatures).
                    v = re.sub(r"Credential=[^/,]*/",
                               "Credential=%s/" % args.upstream_access_key,
                               v, count=1)
                if k.lower() == "x-amz-storage-class" and \
                        v not in S3RVER_CLASSES:
                    continue  # valid for S3, refused by s3rver
                up.putheader(k, v)
            if length or self.command in ("PUT", "POST"):
                up.putheader("Content-Length", str(length))
            up.endheaders()
            while True:
                chunk = spool.read(1 << 16)
                if not chunk:
                    break
                up.send(chunk)
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
            spool.seek(0)
            data, headers = self.multipart_etags(
                target, resp.status, spool.read(), md5, data, headers)
            if fault and fault.get("action") == "list_inject" and \
                    resp.status == 200:
                data = inject_keys(data, fault.get("keys", []))
            if fault and fault.get("action") == "trickle" and \
                    self.command != "HEAD":
                return self.trickle(resp.status, data, headers,
                                    float(fault["rate"]))
            self.reply(resp.status, data, headers)
        finally:
            up.close()

    def multipart_etags(self, target, status, body, md5, data, headers):
        """S3's ETags for multipart objects (see the module comment):
        note what the request did, rewrite the answer ${data}, ${headers}
        accordingly; returns both."""
        st = self.state
        path, _, query = target.partition("?")
        q = dict(split_query(query))
        bucket, _, key = urllib.parse.unquote(path).lstrip("/") \
            .partition("/")
        m = self.command
        if status // 100 != 2:
            return data, headers
        with st.lock:
            if m == "PUT" and "uploadId" in q and "partNumber" in q:
                st.parts.setdefault(q["uploadId"], {})[
                    int(q["partNumber"])] = md5
            elif m == "POST" and "uploadId" in q:
                got = st.parts.pop(q["uploadId"], {})
                nums = [int(n) for n in re.findall(
                    rb"<PartNumber>\s*(\d+)\s*</PartNumber>", body)]
                if nums and all(n in got for n in nums):
                    etag = "%s-%d" % (hashlib.md5(b"".join(
                        got[n] for n in nums)).hexdigest(), len(nums))
                    st.mp_etags[(bucket, key)] = etag
                    data = re.sub(rb"<ETag>[^<]*</ETag>",
                                  b"<ETag>&quot;" + etag.encode() +
                                  b"&quot;</ETag>", data)
            elif m in ("PUT", "DELETE") and key and "uploadId" not in q:
                st.mp_etags.pop((bucket, key), None)
            elif m in ("GET", "HEAD") and key and \
                    (bucket, key) in st.mp_etags:
                etag = '"%s"' % st.mp_etags[(bucket, key)]
                headers = [(k, etag if k.lower() == "etag" else v)
                           for k, v in headers]
            elif m == "GET" and not key and "list-type" in q:
                data = self.list_etags(bucket, data)
        return data, headers

    def list_etags(self, bucket, data):
        """A ListObjectsV2 page with multipart objects' ETags S3's way.
        Called with the state's lock held."""
        def one(mo):
            k = re.search(rb"<Key>([^<]*)</Key>", mo.group(0))
            name = k and html.unescape(k.group(1).decode())
            etag = self.state.mp_etags.get((bucket, name))
            if etag is None:
                return mo.group(0)
            return re.sub(rb"<ETag>[^<]*</ETag>", b"<ETag>&quot;" +
                          etag.encode() + b"&quot;</ETag>", mo.group(0))
        return re.sub(rb"<Contents>.*?</Contents>", one, data, flags=re.S)

    def trickle(self, status, data, headers, rate):
        """Answer ${data} at ${rate} bytes per second."""
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.flush()
        step = max(1, int(rate) // 10)
        for i in range(0, len(data), step):
            time.sleep(step / rate)
            self.wfile.write(data[i:i + step])
            self.wfile.flush()


def self_test():
    """Sign with botocore (an independent signer), then tamper: the
    verifier must accept the original and reject every variant."""
    ak, sk, region = "AKIDTEST", "secret/TEST+key", "eu-west-2"
    ver = Verifier(ak, sk, region)
    body = b'{"a":1}\n'
    sha = hashlib.sha256(body).hexdigest()

    class RawQuerySigner(S3SigV4Auth):
        def canonical_query_string(self, request):
            return urllib.parse.urlsplit(request.url).query

    def signed(url, method="PUT", secret=sk, sign_region=region,
               raw_query=False):
        req = AWSRequest(method=method, url=url, data=body,
                         headers={"Content-Type": "application/x-ndjson",
                                  "x-amz-content-sha256": sha})
        signer = RawQuerySigner if raw_query else S3SigV4Auth
        signer(Credentials(ak, secret), "s3", sign_region).add_auth(req)
        h = http.client.HTTPMessage()
        h["Host"] = "127.0.0.1:9"
        for k, v in req.headers.items():
            h[k] = v if isinstance(v, str) else v.decode()
        parts = urllib.parse.urlsplit(url)
        return parts.path + ("?" + parts.query if parts.query else ""), h

    def expect(name, ok, method, target, headers, code=None):
        try:
            ver.check(method, target, headers)
            got = None
        except Reject as rej:
            got = rej.code
        good = got is None if ok else got == code
        print(f"self-test {name}: {'ok' if good else 'FAILED'} "
              f"(got {got or 'accepted'})")
        return good

    url = "http://127.0.0.1:9/bkt/python%20import/%C3%A4%2B%3D%26/x.jsonl" \
          "?partNumber=1&uploadId=abc%2Fdef"
    t, h = signed(url)
    results = [expect("correct signature", True, "PUT", t, h)]

    t2, h2 = signed(url, secret="wrong")
    results.append(expect("wrong secret", False, "PUT", t2, h2,
                          "SignatureDoesNotMatch"))
    results.append(expect("tampered path", False, "PUT",
                          t.replace("x.jsonl", "y.jsonl"), h,
                          "SignatureDoesNotMatch"))
    results.append(expect("tampered query", False, "PUT",
                          t.replace("partNumber=1", "partNumber=2"), h,
                          "SignatureDoesNotMatch"))
    results.append(expect("other method", False, "POST", t, h,
                          "SignatureDoesNotMatch"))
    h3 = http.client.HTTPMessage()
    for k, v in h.items():
        h3[k] = "text/plain" if k.lower() == "content-type" else v
    results.append(expect("tampered signed header", False, "PUT", t, h3,
                          "SignatureDoesNotMatch"))
    h4 = http.client.HTTPMessage()
    for k, v in h.items():
        h4[k] = v
    h4["x-amz-meta-extra"] = "1"
    results.append(expect("unsigned x-amz header", False, "PUT", t, h4,
                          "AccessDenied"))
    t5, h5 = signed(url, sign_region="us-east-1")
    results.append(expect("wrong region", False, "PUT", t5, h5,
                          "AuthorizationHeaderMalformed"))
    # curl signs the query exactly as written: a raw "/" in a value is
    # signed raw, but S3 canonicalises it to %2F.
    t7, h7 = signed(url.replace("abc%2Fdef", "abc/def"))
    results.append(expect("unencoded query value", False, "PUT", t7, h7,
                          "SignatureDoesNotMatch"))
    # A signer that, like curl 7.88, signs the query exactly as written:
    # accepted only when written sorted, encoded and with "=" everywhere.
    results.append(expect("as-written query, canonical", True, "PUT",
                          *signed(url, raw_query=True)))
    results.append(expect("as-written query, unsorted", False, "PUT",
                          *signed(url.replace(
                              "?partNumber=1&uploadId=abc%2Fdef",
                              "?uploadId=abc%2Fdef&partNumber=1"),
                              raw_query=True), "SignatureDoesNotMatch"))
    results.append(expect("as-written query, '?uploads' without '='",
                          False, "PUT", *signed(url.replace(
                              "?partNumber=1&uploadId=abc%2Fdef",
                              "?uploads"), raw_query=True),
                          "SignatureDoesNotMatch"))
    results.append(expect("as-written query, '?uploads='", True, "PUT",
                          *signed(url.replace(
                              "?partNumber=1&uploadId=abc%2Fdef",
                              "?uploads="), raw_query=True)))
    try:
        check_payload(h, hashlib.sha256(b"other").hexdigest(), b"")
        got = None
    except Reject as rej:
        got = rej.code
    good = got == "XAmzContentSHA256Mismatch"
    print(f"self-test payload hash mismatch: {'ok' if good else 'FAILED'}")
    results.append(good)
    h6 = http.client.HTTPMessage()
    for k, v in h.items():
        h6[k] = v
    h6["Content-MD5"] = base64.b64encode(hashlib.md5(b"x").digest()).decode()
    try:
        check_payload(h6, sha, hashlib.md5(body).digest())
        got = None
    except Reject as rej:
        got = rej.code
    good = got == "BadDigest"
    print(f"self-test Content-MD5 mismatch: {'ok' if good else 'FAILED'}")
    results.append(good)
    results += self_test_temporary(region, body, sha)
    results += self_test_sse(ver, ak, sk, region, body, sha)
    print(f"self-test: {sum(results)} passed, {len(results) - sum(results)}"
          f" failed")
    return 0 if all(results) else 1


def _sign(url, ak, sk, region, body, sha, token=None, extra=(),
          unsigned=(), method="PUT"):
    """A botocore-signed request as (target, headers): ${extra} headers
    are signed, ${unsigned} ones added after signing."""
    hdrs = {"Content-Type": "application/x-ndjson",
            "x-amz-content-sha256": sha}
    hdrs.update(dict(extra))
    req = AWSRequest(method=method, url=url, data=body, headers=hdrs)
    S3SigV4Auth(Credentials(ak, sk, token), "s3", region).add_auth(req)
    h = http.client.HTTPMessage()
    h["Host"] = urllib.parse.urlsplit(url).netloc
    for k, v in req.headers.items():
        h[k] = v if isinstance(v, str) else v.decode()
    for k, v in unsigned:
        h[k] = v
    parts = urllib.parse.urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else ""), h


def _verdict(name, want, fn):
    try:
        fn()
        got = None
    except Reject as rej:
        got = rej.code
    good = got == want
    print(f"self-test {name}: {'ok' if good else 'FAILED'} "
          f"(got {got or 'accepted'})")
    return good


def self_test_temporary(region, body, sha):
    """Registered temporary keys: token required and checked, expiry (as
    written, and forced early), the static key unaffected."""
    out = []
    d = tempfile.mkdtemp(prefix="sigv4-selftest-")
    try:
        reg_path = os.path.join(d, "registry.jsonl")
        now = time.time()
        live = {"access_key": "ASIALIVE", "secret_key": "s/live+1",
                "token": "T" * 700, "expires": now + 600, "source": "sts"}
        old = {"access_key": "ASIAOLD", "secret_key": "s/old+1",
               "token": "tok-old", "expires": now - 1, "source": "imds"}
        with open(reg_path, "w") as f:
            for c in (live, old):
                f.write(json.dumps(c) + "\n")
        reg = Registry(reg_path)
        ver = Verifier("AKIDSTATIC", "static-secret", region, None, reg)
        url = "http://127.0.0.1:9/bkt/k.jsonl"

        def chk(target_headers):
            return lambda: ver.check("PUT", *target_headers)
        out.append(_verdict("temporary key with its token", None, chk(
            _sign(url, "ASIALIVE", "s/live+1", region, body, sha,
                  token=live["token"]))))
        out.append(_verdict("static key beside a registry", None, chk(
            _sign(url, "AKIDSTATIC", "static-secret", region, body, sha))))
        out.append(_verdict("temporary key without a token",
                            "InvalidToken", chk(_sign(
                                url, "ASIALIVE", "s/live+1", region, body,
                                sha))))
        out.append(_verdict("temporary key, another token", "InvalidToken",
                            chk(_sign(url, "ASIALIVE", "s/live+1", region,
                                      body, sha, token="T" * 699 + "U"))))
        t, h = _sign(url, "ASIALIVE", "s/live+1", region, body, sha)
        h["x-amz-security-token"] = live["token"]
        out.append(_verdict("token present but not signed", "AccessDenied",
                            lambda: ver.check("PUT", t, h)))
        out.append(_verdict("temporary key, wrong secret",
                            "SignatureDoesNotMatch", chk(_sign(
                                url, "ASIALIVE", "s/other", region, body,
                                sha, token=live["token"]))))
        out.append(_verdict("expired temporary key", "ExpiredToken", chk(
            _sign(url, "ASIAOLD", "s/old+1", region, body, sha,
                  token="tok-old"))))
        out.append(_verdict("unregistered key", "InvalidAccessKeyId", chk(
            _sign(url, "ASIANONE", "x", region, body, sha, token="t"))))
        # A key registered after the verifier started: the file is re-read.
        with open(reg_path, "a") as f:
            f.write(json.dumps(dict(live, access_key="ASIANEW")) + "\n")
        out.append(_verdict("key registered later", None, chk(
            _sign(url, "ASIANEW", "s/live+1", region, body, sha,
                  token=live["token"]))))
        n = reg.expire("ASIALIVE")
        out.append(_verdict("key expired early (%d)" % n, "ExpiredToken",
                            chk(_sign(url, "ASIALIVE", "s/live+1", region,
                                      body, sha, token=live["token"]))))
        out.append(_verdict("other key still valid", None, chk(
            _sign(url, "ASIANEW", "s/live+1", region, body, sha,
                  token=live["token"]))))
        reg.expire(everything=True)
        out.append(_verdict("all keys expired", "ExpiredToken", chk(
            _sign(url, "ASIANEW", "s/live+1", region, body, sha,
                  token=live["token"]))))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return out


def self_test_sse(ver, ak, sk, region, body, sha):
    """check_sse: required SSE, SSE on UploadPart, values, storage class;
    unsigned SSE headers are refused by the signature check."""
    out = []
    obj = "http://127.0.0.1:9/bkt/python-import/k.jsonl"
    part = obj + "?partNumber=1&uploadId=abc"
    mpu = obj + "?uploads="
    sse = [("x-amz-server-side-encryption", "aws:kms")]
    kms = sse + [("x-amz-server-side-encryption-aws-kms-key-id", "alias/k"),
                 ("x-amz-server-side-encryption-bucket-key-enabled",
                  "true")]

    def case(name, want, url, extra=(), method="PUT", require=None,
             unsigned=()):
        t, h = _sign(url, ak, sk, region, body, sha, extra=extra,
                     unsigned=unsigned, method=method)

        def run():
            ver.check(method, t, h)
            check_sse(method, t, h, require)
        out.append(_verdict(name, want, run))
    case("PutObject with SSE-KMS", None, obj, kms, require="aws:kms")
    case("PutObject without SSE, SSE required", "AccessDenied", obj,
         require="AES256")
    case("PutObject with another SSE than required", "AccessDenied", obj,
         [("x-amz-server-side-encryption", "AES256")], require="aws:kms")
    case("CreateMultipartUpload without SSE, SSE required", "AccessDenied",
         mpu, method="POST", require="aws:kms")
    case("CreateMultipartUpload with SSE", None, mpu, kms, method="POST",
         require="aws:kms")
    case("UploadPart without SSE, SSE required", None, part,
         require="aws:kms")
    case("UploadPart carrying SSE", "InvalidArgument", part, sse)
    case("UploadPart carrying a KMS key id", "InvalidArgument", part,
         [("x-amz-server-side-encryption-aws-kms-key-id", "k")])
    case("unsigned SSE header", "AccessDenied", obj, unsigned=sse)
    case("unknown SSE value", "InvalidArgument", obj,
         [("x-amz-server-side-encryption", "rot13")])
    case("KMS key id without aws:kms", "InvalidArgument", obj,
         [("x-amz-server-side-encryption", "AES256"),
          ("x-amz-server-side-encryption-aws-kms-key-id", "k")])
    case("storage class GLACIER_IR", None, obj,
         [("x-amz-storage-class", "GLACIER_IR")])
    case("storage class unknown", "InvalidStorageClass", obj,
         [("x-amz-storage-class", "COLD")])
    case("bucket PUT is not PutObject", None,
         "http://127.0.0.1:9/bkt", require="AES256")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", help="s3rver's HOST:PORT")
    ap.add_argument("--region", default="eu-west-2")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--s3rver-dir", help="s3rver's -d directory "
                    "(enables AbortMultipartUpload)")
    ap.add_argument("--credentials-file", help="registry of temporary "
                    "credentials (tests/aws/credsrv.py --registry)")
    ap.add_argument("--require-sse", choices=("AES256", "aws:kms"),
                    help="refuse PutObject / CreateMultipartUpload "
                    "without this x-amz-server-side-encryption")
    ap.add_argument("--upstream-access-key", default="S3RVER",
                    help="the account s3rver knows")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    if not args.upstream:
        ap.error("--upstream is required")
    ver = Verifier(os.environ.get("SIGV4_PROXY_ACCESS_KEY", "S3RVER"),
                   os.environ.get("SIGV4_PROXY_SECRET_KEY", "S3RVER"),
                   args.region,
                   os.environ.get("SIGV4_PROXY_SESSION_TOKEN") or None,
                   Registry(args.credentials_file)
                   if args.credentials_file else None)
    Handler.state = State(args, ver)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    print(f"PORT {srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
