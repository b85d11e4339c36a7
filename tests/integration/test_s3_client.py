"""The S3 client (src/s3.c) through tests/tools/s3tool, against s3rver
behind the SigV4-verifying proxy (tests/s3/).  boto3 is the independent
client that checks what landed in the bucket.

The tool is $AMP2S3_BUILD/tools/s3tool (default build/release), or $S3TOOL;
the tests are skipped when it has not been built.
"""
import base64
import hashlib
import http.client
import importlib.util
import os
import subprocess
import unittest
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.environ.get("AMP2S3_BUILD", "build/release")
TOOL = os.environ.get("S3TOOL") or os.path.join(ROOT, BUILD, "tools",
                                                "s3tool")
MiB = 1 << 20


def _load_s3env():
    path = os.path.join(ROOT, "tests", "s3", "s3env.py")
    spec = importlib.util.spec_from_file_location("s3env", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


s3env = _load_s3env()


@unittest.skipUnless(os.access(TOOL, os.X_OK), f"{TOOL} not built")
class S3Client(unittest.TestCase):
    env = None

    @classmethod
    def setUpClass(cls):
        cls.env = s3env.S3Env().start()
        cls.tmp = os.path.join(cls.env.dir, "files")
        os.mkdir(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        if cls.env is not None:
            cls.env.stop()

    def setUp(self):
        self.env.clear_faults()
        self.env.clear_requests()

    # -- helpers ------------------------------------------------------

    def tool(self, *args, timeout=120, **env):
        r = subprocess.run([TOOL, *args], env=self.env.tool_env(**env),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def ok(self, *args, **env):
        rc, out, err = self.tool(*args, **env)
        self.assertEqual(rc, 0, f"s3tool {' '.join(args)}: {err}")
        return out

    def file(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def listed(self, prefix, **env):
        out = self.ok("list", prefix, **env)
        keys = {}
        for line in out.splitlines():
            size, key, _etag = line.split("\t")
            keys[key] = int(size)
        return keys

    def reqs(self, method=None):
        return [r for r in self.env.requests()
                if method is None or r["method"] == method]

    # -- uploads ------------------------------------------------------

    def test_put_small_exact_bytes_and_md5(self):
        data = b'{"event":"a"}\n{"event":"b"}\n'
        key = "small/2024-01-01_00.jsonl"
        self.ok("put", key, self.file("small", data), "application/x-ndjson")
        self.assertEqual(self.env.get_bytes(key), data)
        head = self.env.head(key)
        self.assertEqual(head["ContentLength"], len(data))
        self.assertEqual(head["ContentType"], "application/x-ndjson")
        self.assertEqual(head["ETag"].strip('"'),
                         hashlib.md5(data).hexdigest())
        (put,) = [r for r in self.reqs("PUT")]
        self.assertEqual(put["status"], 200)
        self.assertEqual(put["content_md5"], base64.b64encode(
            hashlib.md5(data).digest()).decode())
        self.assertEqual(put["content_sha256"],
                         hashlib.sha256(data).hexdigest())

    def test_put_empty_file(self):
        self.ok("put", "empty/x", self.file("empty", b""))
        self.assertEqual(self.env.get_bytes("empty/x"), b"")

    def test_multipart_exact_bytes_no_pending_upload(self):
        data = os.urandom(3 * MiB + MiB // 2)
        key = "multi/2024-01-01_01.jsonl"
        self.ok("put", key, self.file("big", data), "application/x-ndjson",
                S3TEST_MULTIPART_THRESHOLD=MiB, S3TEST_PART_SIZE=MiB)
        self.assertEqual(self.env.get_bytes(key), data)
        self.assertEqual(self.env.head(key)["ContentType"],
                         "application/x-ndjson")
        self.assertEqual(self.env.pending_uploads(), [])
        posts = self.reqs("POST")
        self.assertEqual([p["query"].split("=")[0] for p in posts],
                         ["uploads", "uploadId"])
        parts = [r for r in self.reqs("PUT")]
        self.assertEqual(len(parts), 4)
        for i, p in enumerate(parts):
            chunk = data[i * MiB:(i + 1) * MiB]
            self.assertTrue(p["query"].startswith(f"partNumber={i + 1}&"))
            self.assertEqual(p["content_sha256"],
                             hashlib.sha256(chunk).hexdigest())
            self.assertEqual(p["content_md5"], base64.b64encode(
                hashlib.md5(chunk).digest()).decode())

    # -- proving that an object holds a file's bytes (s3_same) ----------

    def same(self, key, path, known=None, **env):
        """s3tool same: ${known} None, "listed" or (size, etag)."""
        if isinstance(known, tuple):
            known = "%d:%s" % known
        args = ["same", key, path] + ([known] if known else [])
        return self.ok(*args, **env).strip()

    def object_gets(self):
        return [r for r in self.reqs("GET") if "list-type" not in r["query"]]

    def test_uploads_carry_the_sha256_metadata(self):
        small = os.urandom(1000)
        big = os.urandom(2 * MiB + 17)
        self.ok("put", "meta/small", self.file("s", small))
        self.ok("put", "meta/big", self.file("b", big),
                S3TEST_MULTIPART_THRESHOLD=MiB, S3TEST_PART_SIZE=MiB)
        for key, data in (("meta/small", small), ("meta/big", big)):
            meta = self.env.head(key)["Metadata"]
            self.assertEqual(meta.get("amp2s3-sha256"),
                             hashlib.sha256(data).hexdigest(), key)

    def test_same_single_put_by_the_listed_etag_alone(self):
        data = os.urandom(5000)
        path = self.file("a", data)
        self.ok("put", "same/a", path)
        other = self.file("a2", data[:-1] + bytes([data[-1] ^ 1]))
        self.env.clear_requests()
        self.assertEqual(self.same("same/a", path, "listed"), "same")
        # The listing's ETag (the MD5) decided: no HEAD, no GET.
        self.assertEqual([r["method"] for r in self.reqs()], ["GET"])
        self.assertIn("list-type=2", self.reqs()[0]["query"])
        self.assertEqual(self.same("same/a", other, "listed"), "different")

    def test_same_multipart_etag_by_the_metadata_not_the_bytes(self):
        data = os.urandom(2 * MiB + 3)
        path = self.file("m", data)
        self.ok("put", "same/m", path, S3TEST_MULTIPART_THRESHOLD=MiB,
                S3TEST_PART_SIZE=MiB)
        flipped = bytearray(data)
        flipped[MiB] ^= 1
        other = self.file("m2", bytes(flipped))
        # As S3 lists a multipart object: an ETag that is no MD5.
        known = (len(data), "0123456789abcdef0123456789abcdef-3")
        self.env.clear_requests()
        self.assertEqual(self.same("same/m", path, known), "same")
        self.assertEqual(self.same("same/m", other, known), "different")
        self.assertEqual([r["method"] for r in self.reqs()],
                         ["HEAD", "HEAD"])

    def test_same_without_metadata_reads_the_object(self):
        # As another tool left it: no metadata, an ETag that proves nothing.
        data = os.urandom(300000)
        path = self.file("o", data)
        self.env.put_bytes("same/o", data)
        flipped = bytearray(data)
        flipped[-1] ^= 1
        other = self.file("o2", bytes(flipped))
        known = (len(data), "0123456789abcdef0123456789abcdef-2")
        self.env.clear_requests()
        self.assertEqual(self.same("same/o", path, known), "same")
        self.assertEqual(self.same("same/o", other, known), "different")
        self.assertEqual([r["method"] for r in self.reqs()],
                         ["HEAD", "GET", "HEAD", "GET"])

    def test_same_sizes_differ_or_absent(self):
        path = self.file("x", b"0123456789")
        self.ok("put", "same/x", self.file("y", b"012345678"))
        self.env.clear_requests()
        self.assertEqual(self.same("same/x", path, "listed"), "different")
        self.assertEqual(self.same("same/none", path), "different")
        # The sizes decided the first; the second was one HEAD (404).
        self.assertEqual([r["method"] for r in self.reqs()], ["GET", "HEAD"])
        rc, out, _ = self.tool("head", "same/none")
        self.assertEqual((rc, out.strip()), (1, "404"))
        self.assertEqual(self.same("same/x", self.file("z", b"012345678"),
                                   "listed"), "same")

    def test_multipart_failure_aborts_upload(self):
        data = os.urandom(3 * MiB)
        key = "multi-fail/x"
        self.env.add_fault(method="PUT", query_contains="partNumber=2&",
                           status=400, code="InvalidPart", times=1)
        rc, _, err = self.tool("put", key, self.file("big2", data),
                               S3TEST_MULTIPART_THRESHOLD=MiB,
                               S3TEST_PART_SIZE=MiB)
        self.assertEqual(rc, 1, err)
        self.assertIn("InvalidPart", err)
        self.assertEqual(self.env.pending_uploads(), [])
        self.assertNotIn(key, self.env.list_keys("multi-fail/"))
        deletes = self.reqs("DELETE")
        self.assertEqual(len(deletes), 1)
        self.assertTrue(deletes[0]["query"].startswith("uploadId="))
        self.assertEqual(deletes[0]["status"], 204)

    def test_complete_200_with_error_body_is_retried(self):
        data = os.urandom(2 * MiB + 5)
        key = "multi-200err/x"
        self.env.add_fault(method="POST", query_contains="uploadId=",
                           status=200, code="InternalError", times=1)
        self.ok("put", key, self.file("big3", data),
                S3TEST_MULTIPART_THRESHOLD=MiB, S3TEST_PART_SIZE=MiB)
        self.assertEqual(self.env.get_bytes(key), data)
        completes = [r for r in self.reqs("POST")
                     if r["query"].startswith("uploadId=")]
        self.assertEqual(len(completes), 2)
        self.assertEqual(self.env.pending_uploads(), [])

    def test_retries_503_and_reset(self):
        data = b"retry me\n"
        self.env.add_fault(method="PUT", status=503, code="SlowDown",
                           times=1)
        self.env.add_fault(method="PUT", action="reset", times=1)
        self.ok("put", "retry/x", self.file("retry", data))
        self.assertEqual(self.env.get_bytes("retry/x"), data)
        self.assertEqual([r["status"] for r in self.reqs("PUT")],
                         [503, "reset", 200])

    def test_retries_exhausted_is_failure_not_fatal(self):
        self.env.add_fault(method="PUT", status=500, code="InternalError",
                           times=10)
        rc, _, err = self.tool("put", "retry2/x",
                               self.file("retry2", b"x"),
                               S3TEST_MAX_ATTEMPTS=2)
        self.assertEqual(rc, 1, err)
        self.assertIn("InternalError", err)
        self.assertEqual(len(self.reqs("PUT")), 2)

    def test_stalled_answer_times_out_and_is_retried(self):
        self.env.add_fault(method="GET", delay_s=3, times=1)
        self.env.put_bytes("stall/x", b"s", direct=True)
        self.assertEqual(self.listed("stall/", S3TEST_STALL_S=1),
                         {"stall/x": 1})
        self.assertEqual(len(self.reqs("GET")), 2)

    def test_virtual_host_style(self):
        data = b"vhost\n"
        env = dict(S3TEST_ENDPOINT=self.env.vhost_endpoint,
                   S3TEST_PATH_STYLE=0)
        self.ok("put", "vhost/x", self.file("vhost", data), **env)
        self.assertEqual(self.env.get_bytes("vhost/x"), data)
        self.assertEqual(self.listed("vhost/", **env), {"vhost/x": 6})
        (put,) = self.reqs("PUT")
        self.assertEqual(put["path"], "/vhost/x")  # bucket in the Host

    def test_many_uploads_reuse_connections(self):
        path = self.file("many", b"m\n")
        self.ok("put-many", "many/k", path, "40", "4")
        self.assertEqual(len(self.env.list_keys("many/")), 40)
        conns = {r["conn"] for r in self.reqs("PUT")}
        # One connection per thread, kept across calls (not 40).
        self.assertLessEqual(len(conns), 4, conns)

    def test_delete(self):
        self.ok("put", "del/x", self.file("del", b"x"))
        self.ok("delete", "del/x")
        self.assertEqual(self.env.list_keys("del/"), {})

    # -- listing ------------------------------------------------------

    def test_list_follows_pages(self):
        for i in range(25):
            self.env.put_bytes(f"pages/k{i:02d}", b"x" * i, direct=True)
        self.env.put_bytes("pagesX/outside", b"", direct=True)
        self.env.clear_requests()
        got = self.listed("pages/", S3TEST_MAX_KEYS=7)
        self.assertEqual(got, {f"pages/k{i:02d}": i for i in range(25)})
        lists = self.reqs("GET")
        self.assertEqual(len(lists), 4)
        self.assertNotIn("continuation-token", lists[0]["query"])
        for r in lists[1:]:
            self.assertTrue(r["query"].startswith("continuation-token="))
        for r in lists:
            self.assertIn("max-keys=7", r["query"])

    def test_prefix_needing_encoding(self):
        prefix = "python import/ä+=&/"
        keys = [prefix + n for n in ("2024-01-01_00.jsonl", "a b", "c~d.e",
                                     "x?y#z", "%41;*'()!$,:@")]
        for i, k in enumerate(keys):
            self.ok("put", k, self.file(f"enc{i}", k.encode()))
        self.assertEqual(set(self.env.list_keys(prefix)), set(keys))
        for k in keys:
            self.assertEqual(self.env.get_bytes(k), k.encode())
        self.assertEqual(set(self.listed(prefix, S3TEST_MAX_KEYS=2)),
                         set(keys))
        self.assertEqual(self.listed("python import/ä+=&/a"),
                         {prefix + "a b": len((prefix + "a b").encode())})

    def test_dot_segments_sent_as_is(self):
        # S3 keeps "a/../b" as a key; curl must not normalise the path.
        # (s3rver itself resolves ".." when it stores the file, so only
        # the request line is checked.)
        self.ok("put", "dots/a/../b", self.file("dots", b"d"))
        (put,) = self.reqs("PUT")
        self.assertEqual(put["path"], f"/{self.env.bucket}/dots/a/../b")

    def test_list_empty(self):
        self.assertEqual(self.listed("nothing-here/"), {})

    # -- fatal errors -------------------------------------------------

    def test_wrong_secret_is_fatal_one_line_no_secret(self):
        secret = "Wrong-Secret-zq9XkT"
        rc, _, err = self.tool("list", "", AWS_SECRET_ACCESS_KEY=secret)
        self.assertEqual(rc, 3, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("SignatureDoesNotMatch", err)
        self.assertIn("amp2s3-test", err)
        self.assertIn("AWS_SECRET_ACCESS_KEY", err)
        self.assertNotIn(secret, err)
        self.assertEqual(len(self.reqs("GET")), 1)  # no retries

    def test_wrong_access_key_is_fatal(self):
        rc, _, err = self.tool("put", "x/y", self.file("ak", b"1"),
                               AWS_ACCESS_KEY_ID="AKIAWRONGKEY0000")
        self.assertEqual(rc, 3, err)
        self.assertIn("InvalidAccessKeyId", err)
        self.assertNotIn("AKIAWRONGKEY0000", err)

    def test_wrong_region_is_fatal(self):
        rc, _, err = self.tool("list", "", S3TEST_REGION="us-east-1")
        self.assertEqual(rc, 3, err)
        self.assertIn("AuthorizationHeaderMalformed", err)
        self.assertIn("eu-west-2", err)

    def test_missing_bucket_is_fatal(self):
        rc, _, err = self.tool("list", "", S3TEST_BUCKET="no-such-bkt-7q")
        self.assertEqual(rc, 3, err)
        self.assertIn("no-such-bkt-7q", err)
        self.assertIn("NoSuchBucket", err)
        rc, _, err = self.tool("put", "k", self.file("nb", b"1"),
                               S3TEST_BUCKET="no-such-bkt-7q")
        self.assertEqual(rc, 3, err)
        self.assertIn("no-such-bkt-7q", err)

    # -- the proxy can fail -------------------------------------------

    def _signed_list_request(self):
        """A ListObjectsV2 request signed by botocore: (path, headers)."""
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        host = urllib.parse.urlsplit(self.env.endpoint).netloc
        url = f"{self.env.endpoint}/{self.env.bucket}?list-type=2&prefix="
        req = AWSRequest(method="GET", url=url, headers={"Host": host})
        S3SigV4Auth(Credentials(self.env.access_key, self.env.secret_key),
                    "s3", self.env.region).add_auth(req)
        return (f"/{self.env.bucket}?list-type=2&prefix=",
                dict(req.headers.items()))

    def _send(self, path, headers):
        u = urllib.parse.urlsplit(self.env.endpoint)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        try:
            c.request("GET", path, headers=headers)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def test_proxy_rejects_broken_signature(self):
        path, headers = self._signed_list_request()
        status, _ = self._send(path, headers)
        self.assertEqual(status, 200)
        auth = headers["Authorization"]
        last = auth[-1]
        headers["Authorization"] = auth[:-1] + ("0" if last != "0" else "1")
        status, body = self._send(path, headers)
        self.assertEqual(status, 403)
        self.assertIn("<Code>SignatureDoesNotMatch</Code>", body)
        status, body = self._send(path.replace("prefix=", "prefix=a"),
                                  self._signed_list_request()[1])
        self.assertEqual(status, 403)
        self.assertIn("<Code>SignatureDoesNotMatch</Code>", body)

    def test_proxy_self_test(self):
        r = subprocess.run([s3env.PYTHON, os.path.join(
            ROOT, "tests", "s3", "sigv4_proxy.py"), "--self-test"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout.decode())



@unittest.skipUnless(os.access(TOOL, os.X_OK), f"{TOOL} not built")
class S3SessionToken(unittest.TestCase):
    """Temporary credentials: x-amz-security-token, signed."""
    TOKEN = "FwoGZXIvYXdzEXAMPLE/token+with=chars"

    @classmethod
    def setUpClass(cls):
        cls.env = s3env.S3Env(session_token=cls.TOKEN).start()
        cls.path = os.path.join(cls.env.dir, "t")
        with open(cls.path, "wb") as f:
            f.write(b"token\n")

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def tool(self, *args, **env):
        r = subprocess.run([TOOL, *args], env=self.env.tool_env(**env),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def test_token_sent_and_signed(self):
        rc, _, err = self.tool("put", "tok/x", self.path)
        self.assertEqual(rc, 0, err)
        rc, out, err = self.tool("list", "tok/")
        self.assertEqual((rc, out.rsplit("\t", 1)[0]), (0, "6\ttok/x"), err)

    def test_wrong_token_is_fatal_and_not_printed(self):
        rc, _, err = self.tool("list", "", AWS_SESSION_TOKEN="bad-tok-91")
        self.assertEqual(rc, 3, err)
        self.assertIn("AWS_SESSION_TOKEN", err)
        self.assertNotIn("bad-tok-91", err)


if __name__ == "__main__":
    unittest.main()
