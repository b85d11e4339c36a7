"""The AWS stand-ins themselves (tests/aws/credsrv.py and the extended
tests/s3/sigv4_proxy.py), checked with botocore, an independent client:
botocore's own credential chain must obtain credentials from the IMDSv2,
container and STS stand-ins, and S3 requests signed with them must pass
the proxy exactly while the proxy's registry says they are valid.  These
tests need no amp2s3 binary.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from harness import BASE
from s3harness import S3Case, s3env

PY = "/usr/bin/python3"
ROLE_ARN = "arn:aws:iam::123456789012:role/amp2s3-web"

# botocore's default chain in a clean environment: prints method and key.
CHAIN = ("import botocore.session, json; "
         "c = botocore.session.get_session().get_credentials(); "
         "f = c.get_frozen_credentials(); "
         "print(json.dumps({'method': c.method, 'ak': f.access_key, "
         "'sk': f.secret_key, 'token': f.token}))")


class StandIns(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="amp2s3-standins-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, ignore_errors=True)
        cls.registry = os.path.join(cls.dir, "registry.jsonl")
        cls.s3 = s3env.S3Env(credentials_file=cls.registry,
                             require_sse="aws:kms")
        cls.s3.start()
        cls.addClassCleanup(cls.s3.stop)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="t-", dir=self.dir)
        self.s3.clear_faults()
        self.s3.clear_requests()

    def server(self, mode, **opts):
        srv = s3env.CredServer(mode, self.tmp, self.registry, **opts)
        srv.start()
        self.addCleanup(srv.stop)
        return srv

    def chain(self, **env):
        """botocore's default credential chain with only ${env} set."""
        e = {"PATH": "/usr/bin:/bin", "HOME": self.tmp,
             "AWS_CONFIG_FILE": os.path.join(self.tmp, "none"),
             "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.tmp, "none"),
             "AWS_EC2_METADATA_DISABLED": "true"}
        e.update(env)
        p = subprocess.run([PY, "-c", CHAIN], env=e, capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode()[-2000:])
        return json.loads(p.stdout)

    def s3_client(self, ak, sk, token):
        import boto3
        from botocore.config import Config
        return boto3.client(
            "s3", endpoint_url=self.s3.endpoint, region_name=self.s3.region,
            aws_access_key_id=ak, aws_secret_access_key=sk,
            aws_session_token=token,
            config=Config(signature_version="s3v4",
                          s3={"addressing_style": "path"},
                          retries={"max_attempts": 1}))

    def put(self, creds, key, **kw):
        """PutObject with ${creds}; the S3 error code or None."""
        from botocore.exceptions import ClientError
        c = self.s3_client(creds["ak"], creds["sk"], creds["token"])
        try:
            c.put_object(Bucket=self.s3.bucket, Key=key, Body=b"x\n",
                         ServerSideEncryption="aws:kms", **kw)
            return None
        except ClientError as e:
            return e.response["Error"]["Code"]
        finally:
            c.close()

    # -- credential endpoints, through botocore's own providers ------------
    def test_imds_v2_with_botocore(self):
        srv = self.server("imds", lifetime=600)
        got = self.chain(AWS_EC2_METADATA_DISABLED="false",
                         AWS_EC2_METADATA_SERVICE_ENDPOINT=srv.url)
        self.assertEqual(got["method"], "iam-role")
        reg = s3env.registry_entries(self.registry)
        self.assertEqual(reg[-1]["access_key"], got["ak"])
        self.assertEqual(reg[-1]["token"], got["token"])
        log = srv.requests()
        self.assertEqual([(r["method"], r["status"]) for r in log],
                         [("PUT", 200), ("GET", 200), ("GET", 200)], log)
        self.assertTrue(all(r["imds_token"] for r in log[1:]))
        self.assertIsNone(self.put(got, "imds.txt"))

    def test_imds_refuses_v1(self):
        srv = self.server("imds")
        url = srv.url + "/latest/meta-data/iam/security-credentials/"
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(url, timeout=5)
        self.assertEqual(cm.exception.code, 401)
        bad = urllib.request.Request(srv.url + "/latest/api/token",
                                     method="PUT", headers={
                                         "X-aws-ec2-metadata-token-ttl-"
                                         "seconds": "21601"})
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(bad, timeout=5)
        self.assertEqual(cm.exception.code, 400)
        self.assertEqual([r["status"] for r in srv.requests()], [401, 400])
        self.assertEqual(srv.control("stats")["issued"], 0)

    def test_container_with_botocore_and_token_file(self):
        tok = os.path.join(self.tmp, "token")
        with open(tok, "w") as f:
            f.write("first-token\n")
        srv = self.server("container", auth_token_file=tok,
                          path="/v2/credentials/abc")
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI":
               srv.url + "/v2/credentials/abc",
               "AWS_CONTAINER_AUTHORIZATION_TOKEN": "first-token"}
        got = self.chain(**env)
        self.assertEqual(got["method"], "container-role")
        self.assertIsNone(self.put(got, "container.txt"))
        # The file is re-read per request: the old token is now refused.
        with open(tok, "w") as f:
            f.write("second-token\n")
        p = subprocess.run([PY, "-c", CHAIN], env=dict(
            env, PATH="/usr/bin:/bin", HOME=self.tmp,
            AWS_EC2_METADATA_DISABLED="true",
            AWS_CONFIG_FILE="/nonexistent",
            AWS_SHARED_CREDENTIALS_FILE="/nonexistent"),
            capture_output=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        statuses = [r["status"] for r in srv.requests()]
        self.assertEqual(statuses[0], 200)
        self.assertIn(403, statuses[1:])

    def test_sts_web_identity_with_botocore(self):
        import boto3
        from botocore.exceptions import ClientError
        tok = os.path.join(self.tmp, "oidc")
        with open(tok, "w") as f:
            f.write("eyJ.one")
        srv = self.server("sts", web_identity_token_file=tok,
                          role_arn=ROLE_ARN, lifetime=600)
        sts = boto3.client("sts", endpoint_url=srv.url,
                           region_name="eu-west-2")
        r = sts.assume_role_with_web_identity(
            RoleArn=ROLE_ARN, RoleSessionName="it-session",
            WebIdentityToken="eyJ.one")
        c = r["Credentials"]
        self.assertTrue(c["AccessKeyId"].startswith("ASIA"))
        self.assertIsNone(self.put({"ak": c["AccessKeyId"],
                                    "sk": c["SecretAccessKey"],
                                    "token": c["SessionToken"]}, "sts.txt"))
        with open(tok, "w") as f:
            f.write("eyJ.two")  # rotated: the old one is refused
        with self.assertRaises(ClientError) as cm:
            sts.assume_role_with_web_identity(
                RoleArn=ROLE_ARN, RoleSessionName="it-session",
                WebIdentityToken="eyJ.one")
        self.assertEqual(cm.exception.response["Error"]["Code"],
                         "InvalidIdentityToken")
        with self.assertRaises(ClientError) as cm:
            sts.assume_role_with_web_identity(
                RoleArn=ROLE_ARN + "x", RoleSessionName="it-session",
                WebIdentityToken="eyJ.two")
        self.assertEqual(cm.exception.response["Error"]["Code"],
                         "AccessDenied")
        log = srv.requests()
        self.assertEqual([r["status"] for r in log], [200, 400, 403])
        self.assertNotEqual(log[0]["file_sha"], log[1]["file_sha"])

    # -- the proxy ----------------------------------------------------------
    def fresh(self, lifetime):
        srv = self.server("imds", lifetime=lifetime)
        got = self.chain(AWS_EC2_METADATA_DISABLED="false",
                         AWS_EC2_METADATA_SERVICE_ENDPOINT=srv.url)
        return got

    def test_proxy_token_checks(self):
        got = self.fresh(600)
        self.assertIsNone(self.put(got, "a.txt"))
        self.assertEqual(self.put(dict(got, token=got["token"][:-1] + "Z"),
                                  "b.txt"), "InvalidToken")
        self.assertEqual(self.put(dict(got, token=None), "b.txt"),
                         "InvalidToken")
        self.assertEqual(self.s3.expire(access_key=got["ak"]), 1)
        self.assertEqual(self.put(got, "c.txt"), "ExpiredToken")
        log = [r for r in self.s3.requests() if r["method"] == "PUT"]
        self.assertEqual([r["status"] for r in log], [200, 403, 403, 400])
        self.assertEqual({r["access_key"] for r in log}, {got["ak"]})
        self.assertEqual([r["security_token"] for r in log],
                         [True, True, False, True])
        self.assertNotIn(got["token"], json.dumps(self.s3.requests()))

    def test_proxy_expiry_as_issued(self):
        got = self.fresh(1.0)
        deadline = time.monotonic() + 10
        while self.put(got, "late.txt") != "ExpiredToken":
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.2)

    def test_proxy_sse_and_storage_class(self):
        got = self.fresh(600)
        self.assertIsNone(self.put(got, "k.txt", SSEKMSKeyId="alias/amp",
                                   BucketKeyEnabled=True,
                                   StorageClass="GLACIER_IR"))
        from botocore.exceptions import ClientError
        c = self.s3_client(got["ak"], got["sk"], got["token"])
        self.addCleanup(c.close)
        with self.assertRaises(ClientError) as cm:
            c.put_object(Bucket=self.s3.bucket, Key="plain.txt", Body=b"x")
        self.assertEqual(cm.exception.response["Error"]["Code"],
                         "AccessDenied")
        self.assertEqual(self.put(got, "cold.txt", StorageClass="COLD"),
                         "InvalidStorageClass")
        log = [r for r in self.s3.requests() if r["method"] == "PUT"]
        self.assertEqual(log[0]["sse"], "aws:kms")
        self.assertEqual(log[0]["sse_kms_key_id"], "alias/amp")
        self.assertEqual(log[0]["sse_bucket_key"].lower(), "true")
        self.assertEqual(log[0]["storage_class"], "GLACIER_IR")
        self.assertEqual([r["status"] for r in log], [200, 403, 400])

    def test_proxy_list_loop_and_foreign_keys(self):
        c = self.s3.client()
        self.addCleanup(c.close)
        self.s3.add_fault(method="GET", query_contains="list-type=2",
                          action="list_loop", tokens=["A", "B"], times=5)
        tokens = []
        r = c.list_objects_v2(Bucket=self.s3.bucket, Prefix="p/")
        for _ in range(4):
            tokens.append(r["NextContinuationToken"])
            r = c.list_objects_v2(Bucket=self.s3.bucket, Prefix="p/",
                                  ContinuationToken=tokens[-1])
        self.assertEqual(tokens, ["A", "B", "A", "B"])
        self.s3.clear_faults()
        self.s3.add_fault(method="GET", query_contains="list-type=2",
                          action="list_inject", keys=["elsewhere/x.jsonl"])
        r = c.list_objects_v2(Bucket=self.s3.bucket, Prefix="p/")
        self.assertIn("elsewhere/x.jsonl",
                      [o["Key"] for o in r.get("Contents", [])])

    def test_proxy_trickle(self):
        c = self.s3.client()
        self.addCleanup(c.close)
        c.put_object(Bucket=self.s3.bucket, Key="slow.bin", Body=b"y" * 2000,
                     ServerSideEncryption="aws:kms")
        self.s3.add_fault(method="GET", path_contains="slow.bin",
                          action="trickle", rate=2000)
        t0 = time.monotonic()
        body = c.get_object(Bucket=self.s3.bucket, Key="slow.bin")[
            "Body"].read()
        self.assertEqual(body, b"y" * 2000)
        self.assertGreaterEqual(time.monotonic() - t0, 0.8)


class HarnessOptions(S3Case):
    """S3Case with the class options: a bucket policy requiring SSE, and
    the proxy reading the class's registry of temporary keys."""

    CREDENTIALS = True
    S3_OPTIONS = {"require_sse": "AES256"}

    def test_bucket_requiring_sse_refuses_a_plain_run(self):
        data = b'{"a":1}\n'
        self.write_hours({BASE: data})
        res = self.run_amp(cmd="sync", env=self.s3_env())
        self.assertNotEqual(res.rc, 0, self.explain(res))
        self.assertEqual(self.local_bytes(), {self.hour_path(BASE).name:
                                              data})
        self.assertEqual(self.keys(), {})
        puts = self.proxy_log("PUT")
        self.assertTrue(puts)
        self.assertEqual({(r["status"], r["sse"]) for r in puts},
                         {(403, None)})

    def test_issued_keys_reach_the_bucket(self):
        srv = self.cred_server("imds", lifetime=600)
        tok = urllib.request.urlopen(urllib.request.Request(
            srv.url + "/latest/api/token", method="PUT", headers={
                "X-aws-ec2-metadata-token-ttl-seconds": "60"}),
            timeout=5).read().decode()
        base = srv.url + "/latest/meta-data/iam/security-credentials/"
        hdr = {"X-aws-ec2-metadata-token": tok}
        role = urllib.request.urlopen(urllib.request.Request(
            base, headers=hdr), timeout=5).read().decode()
        doc = json.loads(urllib.request.urlopen(urllib.request.Request(
            base + role, headers=hdr), timeout=5).read())
        import boto3
        from botocore.config import Config
        c = boto3.client("s3", endpoint_url=self.s3.endpoint,
                         region_name=self.s3.region,
                         aws_access_key_id=doc["AccessKeyId"],
                         aws_secret_access_key=doc["SecretAccessKey"],
                         aws_session_token=doc["Token"],
                         config=Config(s3={"addressing_style": "path"}))
        self.addCleanup(c.close)
        c.put_object(Bucket=self.bucket, Key="k", Body=b"v",
                     ServerSideEncryption="AES256")
        self.assertEqual(self.objects(), {"k": b"v"})
        put = self.proxy_log("PUT")[-1]
        self.assertEqual((put["access_key"], put["security_token"],
                          put["sse"]), (doc["AccessKeyId"], True, "AES256"))
        self.assertEqual([x["access_key"] for x in self.issued("imds")],
                         [doc["AccessKeyId"]])


if __name__ == "__main__":
    unittest.main()
