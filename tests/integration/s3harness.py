"""S3 side of the integration suite: FetchCase (harness.py) plus one
throw-away S3 per test class (tests/s3/s3env.py: s3rver behind the
SigV4-verifying proxy), a fresh bucket per test, and boto3 as the
independent client that checks what landed in the bucket.

    class T(S3Case):
        def test_x(self):
            self.write_hours({BASE: b"..."})
            res = self.run_amp(cmd="sync", env=self.s3_env())
            self.assertEqual(self.objects(), {self.key(BASE): b"..."})

Everything is stopped by PID in class cleanups (S3Env.stop) and test
cleanups (ServerProc.stop); waits are bounded polls.
"""

import importlib.util
import itertools
import os
import shutil
import tempfile
import unittest

from harness import FetchCase, api

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PREFIX = "python-import/"


def _load_s3env():
    path = os.path.join(ROOT, "tests", "s3", "s3env.py")
    spec = importlib.util.spec_from_file_location("s3env_sync", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


s3env = _load_s3env()
_bucket_no = itertools.count(1)


class S3Case(s3env.CredStandins, FetchCase):
    """A FetchCase with an S3 (s3rver + verifying proxy) for the class and
    a fresh bucket (self.bucket) per test."""

    s3 = None
    _client = None
    # S3Env options for the class, e.g. {"require_sse": "aws:kms"}; with
    # CREDENTIALS = True the proxy also accepts the temporary keys that
    # the class's credential stand-ins register (cls.registry).
    S3_OPTIONS = {}
    CREDENTIALS = False
    registry = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        b = os.environ.get("AMP2S3_BIN")
        if not (b and os.path.isfile(b) and os.access(b, os.X_OK)):
            raise unittest.SkipTest("AMP2S3_BIN is not set to an "
                                    "executable (%r)" % (b,))
        opts = dict(cls.S3_OPTIONS)
        if cls.CREDENTIALS:
            cls._cred_dir = tempfile.mkdtemp(prefix="amp2s3-creds-")
            cls.addClassCleanup(shutil.rmtree, cls._cred_dir,
                                ignore_errors=True)
            cls.registry = os.path.join(cls._cred_dir, "registry.jsonl")
            opts["credentials_file"] = cls.registry
        env = s3env.S3Env(**opts)
        env.start()
        cls.addClassCleanup(env.stop)
        cls.s3 = env
        cls._client = env.client()
        cls.addClassCleanup(cls._client.close)

    def setUp(self):
        super().setUp()
        self.s3.clear_faults()
        self.s3.clear_requests()
        self.bucket = "t%d-%s" % (next(_bucket_no), os.getpid())
        self.client.create_bucket(Bucket=self.bucket)
        self.s3.clear_requests()

    @property
    def client(self):
        return type(self)._client

    SANITIZER_MARKS = ("Sanitizer", "runtime error:")

    def run_amp(self, *args, **kw):
        """FetchCase.run_amp, and no sanitizer report in stderr (a
        sanitizer build's report must fail the test even when the exit
        status is the expected one)."""
        res = super().run_amp(*args, **kw)
        for mark in self.SANITIZER_MARKS:
            self.assertNotIn(mark, res.stderr, "sanitizer report"
                             + self.explain(res))
        return res

    # -- amp2s3's environment ----------------------------------------------
    def s3_env(self, server=None, bucket=None, **over):
        """self.env(server) plus the S3 settings for this test's bucket
        through the verifying proxy (over: extra / None to remove)."""
        base = {"AWS_BUCKET_NAME": bucket or self.bucket,
                "AWS_REGION": self.s3.region,
                "AWS_PYTHON_USER_ACCESS_KEY": self.s3.access_key,
                "AWS_PYTHON_USER_SECRET_KEY": self.s3.secret_key,
                "AWS_ENDPOINT_URL_S3": self.s3.endpoint}
        base.update(over)
        return self.env(server, **base)

    # -- local files -------------------------------------------------------
    def write_hours(self, contents):
        """{hour: bytes} -> files in the data directory."""
        self.data.mkdir(exist_ok=True)
        for h, data in contents.items():
            self.hour_path(h).write_bytes(data)

    def local_bytes(self):
        """{file name: bytes} of the hour files in the data directory."""
        return {n: (self.data / n).read_bytes() for n in self.hour_files()}

    # -- the bucket (boto3, through the proxy) -----------------------------
    @staticmethod
    def key(h, prefix=PREFIX):
        return prefix + api.hour_file_name(h)

    def put(self, key, data, bucket=None):
        self.client.put_object(Bucket=bucket or self.bucket, Key=key,
                               Body=data)

    def keys(self, prefix="", bucket=None):
        """{key: size} under ${prefix} (every page)."""
        out = {}
        pages = self.client.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=bucket or self.bucket,
                                   Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = obj["Size"]
        return out

    def get(self, key, bucket=None):
        return self.client.get_object(Bucket=bucket or self.bucket,
                                      Key=key)["Body"].read()

    def objects(self, prefix="", bucket=None):
        """{key: bytes} of every object under ${prefix}."""
        return {k: self.get(k, bucket) for k in self.keys(prefix, bucket)}

    def object_path(self, key, bucket=None):
        """s3rver's file holding the object's bytes."""
        parts = key.split("/")
        return os.path.join(self.s3.data_dir, bucket or self.bucket,
                            *parts[:-1], parts[-1] + "._S3rver_object")

    def object_mtime(self, key, bucket=None):
        """When s3rver stored the object (epoch seconds, float, from the
        file's nanosecond mtime)."""
        return os.stat(self.object_path(key, bucket)).st_mtime_ns / 1e9

    def pending_uploads(self, bucket=None):
        """Multipart uploads neither completed nor aborted (s3rver keeps
        each as <bucket>/._S3rver_uploads/<UploadId>)."""
        d = os.path.join(self.s3.data_dir, bucket or self.bucket,
                         "._S3rver_uploads")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def proxy_log(self, method=None):
        """The S3 requests the proxy saw since setUp, for this test's
        bucket (path-style: /BUCKET/...)."""
        mine = "/" + self.bucket
        return [r for r in self.s3.requests()
                if (r["path"] == mine or r["path"].startswith(mine + "/"))
                and (method is None or r["method"] == method)]

    def assertObjectsExact(self, want, prefix="", bucket=None):
        """The bucket holds exactly ${want} ({key: bytes}) under
        ${prefix}."""
        got = self.keys(prefix, bucket)
        self.assertEqual(sorted(got), sorted(want),
                         "keys in the bucket" + self.explain())
        for k, data in want.items():
            b = self.get(k, bucket)
            if b != data:
                self.fail("object %r differs: %d bytes, expected %d%s"
                          % (k, len(b), len(data), self.explain()))
