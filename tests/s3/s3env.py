"""s3env: a throw-away S3 for integration tests.

    env = S3Env().start()      # s3rver + sigv4_proxy on 127.0.0.1
    env.endpoint               # the verifying proxy: give this to the client
    env.vhost_endpoint         # the same, for virtual-host style
                               # (BUCKET.s3.localhost, resolved by curl)
    env.direct_endpoint        # s3rver itself (no signature checks)
    env.tool_env(...)          # os.environ + S3TEST_* for build/*/tools/s3tool
    env.list_keys(prefix)      # boto3, an independent client
    env.get_bytes(key)
    env.stop()                 # both processes, by PID

    S3Env(credentials_file=REG, require_sse="aws:kms")
                               # the proxy also accepts the temporary keys
                               # registered in REG (tests/aws/credsrv.py)
                               # and refuses writes without that SSE
    env.expire(access_key=AK) / env.expire(everything=True)
    env.add_fault(action="trickle", rate=1000)   # see sigv4_proxy.py

    srv = CredServer("sts", tmpdir, registry=REG, lifetime=2.0,
                     web_identity_token_file=F).start()
    srv.url, srv.requests(), srv.control("lifetime", seconds=5), srv.stop()
                               # tests/aws/credsrv.py, by PID

Each start() gets a fresh temporary directory for s3rver (removed by
stop()), the bucket created with --configure-bucket, and ephemeral ports:
s3rver is started with -p 0 and prints "S3rver listening on ADDR:PORT";
the proxy prints "PORT <n>".  Readiness is a real request (HeadBucket) in
a bounded poll.  s3rver is installed by setup.sh on first use.

Only the Debian interpreter (/usr/bin/python3, with python3-boto3 and
python3-botocore) is used; pyenv shims elsewhere on PATH may lack them.
"""

import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
import json

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"
ACCESS_KEY = SECRET_KEY = "S3RVER"  # s3rver's built-in account
REGION = "eu-west-2"
START_TIMEOUT = 20.0


def _pump(stream, sink, lines):
    """Copy ${stream} to the file ${sink}; also queue each line."""
    for raw in iter(stream.readline, b""):
        sink.write(raw)
        sink.flush()
        lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
    stream.close()


class _Proc:
    """A child process whose stdout and stderr go to a log file."""

    def __init__(self, name, argv, logdir, env=None):
        self.name = name
        self.log_path = os.path.join(logdir, name + ".log")
        self._log = open(self.log_path, "ab")
        self.lines = queue.Queue()
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                  stderr=self._log, stdin=subprocess.DEVNULL,
                                  env=env, cwd=HERE)
        self.pid = self.p.pid
        self._t = threading.Thread(target=_pump, daemon=True,
                                   args=(self.p.stdout, self._log,
                                         self.lines))
        self._t.start()

    def wait_line(self, match, deadline):
        """The first stdout line containing ${match}, or RuntimeError."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.p.poll() is not None:
                break
            try:
                line = self.lines.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            if match in line:
                return line
        raise RuntimeError(f"{self.name} did not start: "
                           f"{self.tail()}")

    def tail(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"

    def stop(self):
        if self.p.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait()
        self._t.join(timeout=5)
        self._log.close()


def ensure_installed():
    """Run setup.sh (idempotent); RuntimeError with its message if it
    fails."""
    r = subprocess.run([os.path.join(HERE, "setup.sh")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise RuntimeError(r.stdout.decode("utf-8", "replace").strip())


CREDSRV = os.path.join(os.path.dirname(HERE), "aws", "credsrv.py")


class CredServer:
    """tests/aws/credsrv.py (--mode imds|container|sts) as a subprocess:
    ready when its port file appears (bounded poll), stopped by PID.
    ${opts}: its other flags, e.g. lifetime=2.0, auth_token_file=PATH,
    web_identity_token_file=PATH, role_arn=ARN, path="/v2/x"."""

    def __init__(self, mode, workdir, registry, **opts):
        self.mode, self.registry, self.opts = mode, registry, opts
        self.dir = tempfile.mkdtemp(prefix="credsrv-%s-" % mode,
                                    dir=workdir)
        self.port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "requests.jsonl")
        self.proc = None
        self.url = None

    def start(self):
        argv = [PYTHON, CREDSRV, "--mode", self.mode, "--port-file",
                self.port_file, "--registry", self.registry,
                "--request-log", self.log_path]
        for k, v in self.opts.items():
            if v is not None:
                argv += ["--" + k.replace("_", "-"), str(v)]
        self._err = open(os.path.join(self.dir, "stderr.txt"), "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=self._err)
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("credsrv %s did not start: %s" % (
                    self.mode, self.stderr_text()))
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read())
        self.url = "http://127.0.0.1:%d" % self.port
        return self

    def stderr_text(self):
        try:
            with open(os.path.join(self.dir, "stderr.txt"), "rb") as f:
                return f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def control(self, what, **body):
        """POST /__ctl__/${what} with ${body} as JSON (GET for stats)."""
        req = urllib.request.Request(
            self.url + "/__ctl__/" + what,
            method="GET" if what == "stats" else "POST",
            data=None if what == "stats" else json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=10) as r:
            data = r.read()
        return json.loads(data) if data else None

    def requests(self):
        """The request log, in order (every request is logged before its
        answer is complete)."""
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path) as f:
            return [json.loads(x) for x in f if x.strip()]

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "_err", None) is not None:
            self._err.close()
            self._err = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def registry_entries(path):
    """The credentials registered in ${path} (credsrv.py --registry)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(x) for x in f if x.endswith("\n")]


class CredStandins:
    """For a unittest.TestCase whose self.tmp is a scratch folder and
    self.registry the credentials registry (None: the class uses none):
    start credential stand-ins and read what they issued."""

    def cred_server(self, mode, **opts):
        """Start credsrv.py --mode ${mode} registering in self.registry;
        stopped by PID in a cleanup."""
        if self.registry is None:
            raise AssertionError("this test class has no credentials "
                                 "registry (S3Case: CREDENTIALS = True)")
        srv = CredServer(mode, str(self.tmp), self.registry, **opts)
        srv.start()
        self.addCleanup(srv.stop)
        return srv

    def issued(self, source=None):
        """Credentials registered so far (optionally of one source)."""
        return [c for c in registry_entries(self.registry)
                if source is None or c["source"] == source]


class S3Env:
    def __init__(self, bucket="amp2s3-test", region=REGION,
                 access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                 session_token=None, credentials_file=None,
                 require_sse=None):
        """${session_token}: the proxy then requires exactly this
        x-amz-security-token (s3rver ignores it).  ${credentials_file}:
        the proxy also accepts the temporary keys registered there (see
        CredServer).  ${require_sse}: "AES256" or "aws:kms", writes
        without it are refused (403 AccessDenied)."""
        self.bucket, self.region = bucket, region
        self.access_key, self.secret_key = access_key, secret_key
        self.session_token = session_token
        self.credentials_file = credentials_file
        self.require_sse = require_sse
        self.dir = None
        self.s3rver = self.proxy = None
        self.endpoint = self.direct_endpoint = self.vhost_endpoint = None

    # -- lifecycle ----------------------------------------------------

    def start(self):
        ensure_installed()
        self.dir = tempfile.mkdtemp(prefix="amp2s3-s3rver-")
        data = os.path.join(self.dir, "data")
        os.mkdir(data)
        try:
            self._start_s3rver(data)
            self._start_proxy(data)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_s3rver(self, data):
        env = dict(os.environ)
        # Node >= 17: without it any paginated listing answers 500.
        env["NODE_OPTIONS"] = "--openssl-legacy-provider"
        self.s3rver = _Proc("s3rver", [
            "node", os.path.join(HERE, "node_modules", "s3rver", "bin",
                                 "s3rver.js"),
            "-d", data, "-a", "127.0.0.1", "-p", "0",
            "--configure-bucket", self.bucket, "--silent",
            # Virtual-host requests: BUCKET.s3.localhost:PORT.
            "--service-endpoint", "localhost"],
            self.dir, env)
        line = self.s3rver.wait_line("S3rver listening on",
                                     time.monotonic() + START_TIMEOUT)
        port = int(line.rsplit(":", 1)[1])
        self.direct_endpoint = f"http://127.0.0.1:{port}"

    def _start_proxy(self, data):
        env = dict(os.environ)
        env["SIGV4_PROXY_ACCESS_KEY"] = self.access_key
        env["SIGV4_PROXY_SECRET_KEY"] = self.secret_key
        env.pop("SIGV4_PROXY_SESSION_TOKEN", None)
        if self.session_token:
            env["SIGV4_PROXY_SESSION_TOKEN"] = self.session_token
        port = self.direct_endpoint.rsplit(":", 1)[1]
        self.proxy = _Proc("proxy", [
            PYTHON, os.path.join(HERE, "sigv4_proxy.py"),
            "--upstream", f"127.0.0.1:{port}", "--region", self.region,
            "--s3rver-dir", data] + (
                ["--credentials-file", self.credentials_file]
                if self.credentials_file else []) + (
                ["--require-sse", self.require_sse]
                if self.require_sse else []), self.dir, env)
        line = self.proxy.wait_line("PORT ", time.monotonic() +
                                    START_TIMEOUT)
        port = int(line.split()[1])
        self.endpoint = f"http://127.0.0.1:{port}"
        self.vhost_endpoint = f"http://s3.localhost:{port}"

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            try:
                self.client().head_bucket(Bucket=self.bucket)
                return
            except Exception as e:  # not up yet
                last = e
                time.sleep(0.1)
        raise RuntimeError(f"test S3 not ready: {last}; s3rver: "
                           f"{self.s3rver.tail()} proxy: "
                           f"{self.proxy.tail()}")

    def stop(self):
        for p in (self.proxy, self.s3rver):
            if p is not None:
                p.stop()
        self.proxy = self.s3rver = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def pids(self):
        return {"s3rver": self.s3rver and self.s3rver.pid,
                "proxy": self.proxy and self.proxy.pid}

    @property
    def data_dir(self):
        return os.path.join(self.dir, "data")

    # -- clients ------------------------------------------------------

    def tool_env(self, **extra):
        """os.environ plus the S3TEST_* settings of s3tool."""
        env = dict(os.environ)
        env.update({
            "S3TEST_ENDPOINT": self.endpoint,
            "S3TEST_BUCKET": self.bucket,
            "S3TEST_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        })
        env.pop("AWS_SESSION_TOKEN", None)
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def client(self, direct=False):
        """A boto3 S3 client, through the verifying proxy unless
        ${direct}."""
        import boto3
        from botocore.config import Config
        return boto3.client(
            "s3", endpoint_url=self.direct_endpoint if direct
            else self.endpoint, region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            aws_session_token=self.session_token,
            config=Config(signature_version="s3v4",
                          s3={"addressing_style": "path"},
                          retries={"max_attempts": 1},
                          connect_timeout=5, read_timeout=30))

    def list_keys(self, prefix="", direct=False):
        """{key: size} of every key under ${prefix}."""
        out = {}
        pages = self.client(direct).get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = obj["Size"]
        return out

    def get_bytes(self, key, direct=False):
        return self.client(direct).get_object(Bucket=self.bucket,
                                              Key=key)["Body"].read()

    def head(self, key, direct=False):
        return self.client(direct).head_object(Bucket=self.bucket, Key=key)

    def put_bytes(self, key, data, direct=False):
        self.client(direct).put_object(Bucket=self.bucket, Key=key,
                                       Body=data)

    def pending_uploads(self):
        """Multipart uploads initiated and neither completed nor aborted.
        s3rver 3.7.1 has no ListMultipartUploads; it keeps each one as a
        directory <bucket>/._S3rver_uploads/<UploadId>."""
        d = os.path.join(self.data_dir, self.bucket, "._S3rver_uploads")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    # -- proxy hooks --------------------------------------------------

    def _control(self, method, path, body=None):
        req = urllib.request.Request(
            self.endpoint + "/__proxy__/" + path, method=method,
            data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=10) as r:
            data = r.read()
        return json.loads(data) if data else None

    def add_fault(self, **rule):
        """Make matching requests fail: method, path_contains,
        query_contains, status, code, times, action ("reset")."""
        self._control("POST", "faults", rule)

    def clear_faults(self):
        self._control("DELETE", "faults")

    def requests(self):
        """The S3 requests the proxy saw (method, path, query, status,
        conn, access_key, security_token, sse..., storage_class)."""
        return self._control("GET", "log")

    def expire(self, access_key=None, everything=False):
        """Expire a registered temporary key (or all registered so far):
        the proxy answers 400 ExpiredToken from now on.  Returns how
        many keys."""
        body = {"all": True} if everything else {"access_key": access_key}
        return self._control("POST", "expire", body)["expired"]

    def clear_requests(self):
        self._control("DELETE", "log")
