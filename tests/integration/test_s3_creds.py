"""amp2s3 against S3 with credentials from the AWS chain and with
server-side encryption: the real binary, s3rver behind the verifying proxy
(tests/s3/sigv4_proxy.py) and the loopback stand-ins for STS, the
container endpoint and IMDSv2 (tests/aws/credsrv.py).

Which source was used is read from what the proxy saw (the access key of
each request) and what the stand-ins issued (the registry), never from
amp2s3's log; objects are checked with boto3.
"""
import json
import os
import stat
import time

from harness import BASE, F, api, poll
from s3harness import S3Case

MiB = 1 << 20
ROLE_ARN = "arn:aws:iam::123456789012:role/amp2s3-it"


def lines(tag, n):
    return b"".join(b'{"t":"%s","i":%d}\n' % (tag.encode(), i)
                    for i in range(n))


class CredsCase(S3Case):
    CREDENTIALS = True

    # -- environments ------------------------------------------------------
    def chain_env(self, **over):
        """The S3 settings with no static keys and no IMDS: each test
        adds the source(s) it wants."""
        base = {"AWS_PYTHON_USER_ACCESS_KEY": None,
                "AWS_PYTHON_USER_SECRET_KEY": None,
                "AWS_EC2_METADATA_DISABLED": "true"}
        base.update(over)
        return self.s3_env(**base)

    def write(self, rel, text, mode=0o600):
        p = self.tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        os.chmod(p, mode)
        return str(p)

    def register(self, ak, source, lifetime=3600.0):
        """A temporary key the proxy accepts, as a stand-in would issue
        it (for the shared files and credential_process)."""
        c = {"access_key": ak, "secret_key": "sk-%s-%s" % (source, ak[-6:]),
             "token": "tok-%s-" % source + "t" * 300,
             "expires": time.time() + lifetime, "source": source}
        with open(self.registry, "a") as f:
            f.write(json.dumps(c) + "\n")
        return c

    def sts_env(self, lifetime=3600.0):
        tok = self.write("oidc-token", "eyJ.it-web-identity")
        srv = self.cred_server("sts", web_identity_token_file=tok,
                               role_arn=ROLE_ARN, lifetime=lifetime)
        return srv, {"AWS_WEB_IDENTITY_TOKEN_FILE": tok,
                     "AWS_ROLE_ARN": ROLE_ARN,
                     "AWS_ENDPOINT_URL_STS": srv.url}

    def container_env(self, lifetime=3600.0):
        tokf = self.write("ctr-token", "ctr-auth-token-1\n")
        srv = self.cred_server("container", lifetime=lifetime,
                               auth_token_file=tokf, path="/v2/creds/it")
        return srv, {"AWS_CONTAINER_CREDENTIALS_FULL_URI":
                     srv.url + "/v2/creds/it",
                     "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokf}

    def imds_env(self, lifetime=3600.0):
        srv = self.cred_server("imds", lifetime=lifetime, role="it-role")
        return srv, {"AWS_EC2_METADATA_DISABLED": None,
                     "AWS_EC2_METADATA_SERVICE_ENDPOINT": srv.url}

    def profile_env(self):
        """A credentials file with several profiles (keys the proxy
        accepts) and a config file whose regions differ."""
        keys = {name: self.register("ASIAPROFILE%s" % name.upper()[:5]
                                    .ljust(5, "X") + "00001", "profile")
                for name in ("default", "prod", "other")}
        text = ""
        for name, c in keys.items():
            text += ("[%s]\naws_access_key_id = %s\naws_secret_access_key"
                     " = %s\naws_session_token = %s\n\n"
                     % (name, c["access_key"], c["secret_key"], c["token"]))
        cred = self.write("home/.aws/credentials", text)
        cfg = self.write("home/.aws/config",
                         "[default]\nregion = us-east-1\n"
                         "[profile prod]\nregion = %s\n"
                         "[profile other]\nregion = ap-south-1\n"
                         % self.s3.region)
        return keys, {"AWS_SHARED_CREDENTIALS_FILE": cred,
                      "AWS_CONFIG_FILE": cfg}

    # -- runs ----------------------------------------------------------------
    def sync_hours(self, content, env, *args, **kw):
        self.write_hours(content)
        return self.run_amp(*args, cmd="sync", env=env, **kw)

    def put_keys(self):
        """The access key of every PUT the proxy answered 200, in order."""
        return [r["access_key"] for r in self.proxy_log("PUT")
                if r["status"] == 200]

    def assertUploaded(self, res, content):
        self.assertRc(res, 0)
        self.assertObjectsExact({self.key(h): b for h, b in content.items()})
        self.assertEqual(self.hour_files(), [], "local files left")

    def assertNoSecret(self, text, extra=()):
        for c in self.issued():
            self.assertNotIn(c["secret_key"], text)
            self.assertNotIn(c["token"][:24], text)
        for s in extra:
            self.assertNotIn(s, text)


class Chain(CredsCase):

    def test_each_source_alone(self):
        """Web identity, a profile, credential_process, the container
        endpoint and IMDS, each the only source: the uploads are signed
        with the key that source issued."""
        _, web = self.sts_env()
        keys, prof = self.profile_env()
        proc_c = self.register("ASIAPROCESS000001", "process")
        out = self.write("proc/out.json", json.dumps({
            "Version": 1, "AccessKeyId": proc_c["access_key"],
            "SecretAccessKey": proc_c["secret_key"],
            "SessionToken": proc_c["token"]}))
        cfg = self.write("proc/config", "[profile p]\ncredential_process = "
                         "/bin/cat '%s'\n" % out)
        _, ctr = self.container_env()
        _, imds = self.imds_env()
        cases = [("web-identity", web, lambda: self.issued("sts")[-1]),
                 ("profile", dict(prof, AWS_PROFILE="prod"),
                  lambda: keys["prod"]),
                 ("process", {"AWS_CONFIG_FILE": cfg, "AWS_PROFILE": "p",
                              "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"},
                  lambda: proc_c),
                 ("container", ctr, lambda: self.issued("container")[-1]),
                 ("imds", imds, lambda: self.issued("imds")[-1])]
        for i, (name, over, issued) in enumerate(cases):
            with self.subTest(source=name):
                self.s3.clear_requests()
                content = {BASE + i: lines(name, 3)}
                res = self.sync_hours(content, self.chain_env(**over))
                self.assertRc(res, 0)
                self.assertEqual(self.put_keys(), [issued()["access_key"]])
                self.assertEqual(self.get(self.key(BASE + i)),
                                 content[BASE + i])
                self.assertNoSecret(res.stderr + res.stdout)

    def test_precedence_env_profile_container_imds(self):
        """With every source configured, the environment's keys win; then
        the profile, the container endpoint, and IMDS last."""
        keys, prof = self.profile_env()
        ctr_srv, ctr = self.container_env()
        _, imds = self.imds_env()
        imds0 = len(self.issued("imds"))
        static = {"AWS_ACCESS_KEY_ID": self.s3.access_key,
                  "AWS_SECRET_ACCESS_KEY": self.s3.secret_key}
        layers = [(static, lambda: self.s3.access_key),
                  (prof, lambda: keys["default"]["access_key"]),
                  (ctr, lambda: self.issued("container")[-1]["access_key"]),
                  (imds, lambda: self.issued("imds")[-1]["access_key"])]
        for i in range(len(layers)):
            env = {}
            for over, _ in layers[i:]:
                env.update(over)
            if prof["AWS_SHARED_CREDENTIALS_FILE"] not in env.values():
                env.update(AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
                           AWS_CONFIG_FILE="/nonexistent")
            with self.subTest(layer=i):
                self.s3.clear_requests()
                res = self.sync_hours({BASE + i: lines("p", i + 1)},
                                      self.chain_env(**env))
                self.assertRc(res, 0)
                self.assertEqual(self.put_keys(), [layers[i][1]()])
        # each lower source was asked only once it was the first left
        self.assertEqual(len([r for r in ctr_srv.requests()
                              if r["status"] == 200]), 1)
        self.assertEqual(len(self.issued("imds")), imds0 + 1)

    def test_profile_file_with_several_profiles(self):
        """AWS_PROFILE picks its section in both files: its keys sign and
        its config region is the bucket's when nothing else names one (the
        default profile's region would be refused); a profile in neither
        file is a configuration error."""
        keys, prof = self.profile_env()
        res = self.sync_hours({BASE: lines("prod", 2)},
                              self.chain_env(AWS_PROFILE="prod",
                                             AWS_REGION=None, **prof))
        self.assertUploaded(res, {BASE: lines("prod", 2)})
        self.assertEqual(self.put_keys(), [keys["prod"]["access_key"]])
        self.s3.clear_requests()
        res = self.sync_hours({BASE + 1: lines("x", 1)},
                              self.chain_env(AWS_PROFILE="nosuch", **prof))
        self.assertRc(res, 2)
        self.assertEqual(self.proxy_log(), [])
        self.assertEqual(self.hour_files(), [api.hour_file_name(BASE + 1)])

    def test_no_source_exits_2_without_a_request(self):
        """Nothing configured and IMDS disabled, or asked and without a
        role: exit 2 with one error line that names what configures each
        source, before any S3 request; local hours kept."""
        content = {BASE: lines("n", 2)}
        srv, imds = self.imds_env()
        srv.control("fail", count=10, status=404)
        for over in ({}, imds):
            res = self.sync_hours(content, self.chain_env(**over))
            self.assertRc(res, 2)
            errors = [x for x in res.stderr.splitlines() if " error: " in x]
            self.assertEqual(len(errors), 1, res.stderr)
            for name in ("AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE",
                         "profile default", "AWS_CONTAINER_CREDENTIALS_",
                         "AWS_EC2_METADATA_"):
                self.assertIn(name, errors[0])
        asked = [r for r in srv.requests()]
        self.assertTrue(asked and asked[0]["method"] == "PUT", asked)
        self.assertEqual(self.proxy_log(), [])
        self.assertEqual(self.hour_files(), [api.hour_file_name(BASE)])

    def test_static_token_refused_is_fatal(self):
        """Static keys cannot be renewed: an expired session token stops
        the run (exit 3) at its first request, and nothing is deleted."""
        c = self.register("ASIASTATICTOKEN01", "static")
        self.s3.expire(access_key=c["access_key"])
        content = {BASE: lines("s", 2), BASE + 1: lines("t", 2)}
        res = self.sync_hours(content, self.chain_env(
            AWS_ACCESS_KEY_ID=c["access_key"],
            AWS_SECRET_ACCESS_KEY=c["secret_key"],
            AWS_SESSION_TOKEN=c["token"]), "-u", "1")
        self.assertRc(res, 3)
        self.assertEqual([(r["method"], r["status"]) for r in
                          self.proxy_log()], [("GET", 400)])
        self.assertEqual(sorted(self.hour_files()),
                         sorted(api.hour_file_name(h) for h in content))
        self.assertEqual(self.keys(), {})


class Refresh(CredsCase):

    def test_run_of_many_lifetimes(self):
        """Web identity credentials that live 2 s, a run of about 8 s of
        uploads (every PUT held 0.5 s by the proxy): the set is renewed
        ahead of its expiry, one STS call per renewal, no request is
        refused, and every object is exact."""
        srv, web = self.sts_env(lifetime=2.0)
        content = {BASE + i: lines("r%d" % i, 40) for i in range(30)}
        self.s3.add_fault(method="PUT", delay_s=0.5, times=1000)
        res = self.sync_hours(content, self.chain_env(**web), "-u", "2",
                              timeout=120)
        self.assertUploaded(res, content)
        used = self.put_keys()
        issued = [c["access_key"] for c in self.issued("sts")]
        self.assertGreaterEqual(len(issued), 4, "renewals")
        self.assertLessEqual(set(used), set(issued))
        self.assertGreaterEqual(len(set(used)), 3, "sets used")
        self.assertEqual(len(srv.requests()), len(issued))
        self.assertEqual([r for r in self.proxy_log()
                          if r["status"] != 200], [])

    def test_expired_token_mid_run_one_refresh_then_retry(self):
        """IMDS credentials expired early by the proxy while four workers
        upload: each refused request is sent again at once with the one
        new set (one IMDS refresh), and the run completes."""
        _, imds = self.imds_env()
        content = {BASE + i: lines("e%d" % i, 20) for i in range(16)}
        self.write_hours(content)
        self.s3.add_fault(method="PUT", delay_s=0.3, times=1000)
        p = self.start_amp("-u", "4", cmd="sync",
                           env=self.chain_env(**imds))
        poll(lambda: len(self.put_keys()) >= 4, 30, "four uploads")
        self.assertGreaterEqual(self.s3.expire(everything=True), 1)
        rc = p.wait(60)
        err = (self.tmp / "amp.stderr").read_text()
        self.assertEqual(rc, 0, err)
        for mark in self.SANITIZER_MARKS:
            self.assertNotIn(mark, err)
        self.assertObjectsExact({self.key(h): b for h, b in content.items()})
        issued = self.issued("imds")
        self.assertEqual(len(issued), 2, "one refresh")
        refused = [r for r in self.proxy_log("PUT") if r["status"] == 400]
        self.assertTrue(1 <= len(refused) <= 4, refused)
        self.assertTrue(all(r["access_key"] == issued[0]["access_key"]
                            for r in refused))
        after = self.put_keys()[4:]
        self.assertIn(issued[1]["access_key"], after)


class Secrets(CredsCase):

    def test_never_in_logs_errors_or_the_process_environment(self):
        """Debug logs in both formats, stdout, stderr and the error of a
        refused run hold no secret of any source; a credential_process
        child gets amp2s3's environment less the Amplitude and static S3
        secrets, and its argv is the command's own words."""
        c = self.register("ASIAPROCESSENV001", "process")
        dump = self.tmp / "child"
        script = self.write("proc/creds.sh", (
            "#!/bin/sh\nenv > '%s.env'\nprintf '%%s\\n' \"$@\" > '%s.argv'\n"
            "cat <<'EOF'\n%s\nEOF\n") % (dump, dump, json.dumps({
                "Version": 1, "AccessKeyId": c["access_key"],
                "SecretAccessKey": c["secret_key"],
                "SessionToken": c["token"]})), mode=0o700)
        os.chmod(script, stat.S_IRWXU)
        cfg = self.write("home/.aws/config", "[default]\ncredential_process"
                         " = %s --role 'it role'\n" % script)
        _, web = self.sts_env()
        for i, fmt in enumerate(("text", "json")):
            logf = self.tmp / ("amp-%s.log" % fmt)
            env = self.chain_env(AWS_CONFIG_FILE=cfg,
                                 AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
            res = self.sync_hours({BASE + i: lines(fmt, 2)}, env,
                                  "--log-level", "debug", "--log-format",
                                  fmt, "--log-file", str(logf))
            self.assertRc(res, 0)
            self.assertIn("debug", logf.read_text().lower())
            self.assertNoSecret(res.stderr + res.stdout + logf.read_text(),
                                (self.env()["AMP_SECRET_KEY"],))
            # web identity, refused by the bucket: the error too
            res = self.sync_hours({BASE + 10 + i: b""}, self.chain_env(
                bucket="no-such-bucket-%d" % i, **web), "--log-level",
                "debug", "--log-format", fmt)
            self.assertRc(res, 3)
            self.assertNoSecret(res.stderr + res.stdout)
        child = dict(x.split("=", 1) for x in
                     (self.tmp / "child.env").read_text().splitlines()
                     if "=" in x)
        want = {k: v for k, v in env.items()
                if k not in ("AMP_API_KEY", "AMP_SECRET_KEY")
                and not k.startswith("AWS_PYTHON_USER_")}
        self.assertEqual({k: v for k, v in child.items()
                          if k in want or k.startswith(("AMP", "AWS"))},
                         want)
        self.assertNotIn(self.env()["AMP_SECRET_KEY"],
                         (self.tmp / "child.env").read_text())
        self.assertEqual((self.tmp / "child.argv").read_text(),
                         "--role\nit role\n")


class Encryption(S3Case):
    S3_OPTIONS = {"require_sse": "aws:kms"}
    SSE = ["--sse", "aws:kms", "--sse-kms-key-id", "alias/amp2s3-it",
           "--sse-bucket-key", "--storage-class", "STANDARD_IA"]

    def test_bucket_requiring_sse_refuses_a_run_without_it(self):
        """A bucket policy that denies unencrypted writes: without --sse
        the run stops (exit 3) with every local hour kept and a hint that
        names --sse; with it the same hours go up."""
        content = {BASE: lines("k", 3), BASE + 1: b""}
        self.write_hours(content)
        res = self.run_amp(cmd="sync", env=self.s3_env())
        self.assertRc(res, 3)
        errors = [x for x in res.stderr.splitlines() if " error: " in x]
        self.assertTrue(errors and all("--sse" in x for x in errors),
                        res.stderr)
        self.assertEqual(self.keys(), {})
        self.assertEqual(sorted(self.hour_files()),
                         sorted(api.hour_file_name(h) for h in content))
        self.assertEqual({r["status"] for r in self.proxy_log("PUT")}, {403})
        res = self.run_amp("--sse", "aws:kms", cmd="sync",
                           env=self.s3_env())
        self.assertRc(res, 0)
        self.assertObjectsExact({self.key(h): b for h, b in content.items()})

    def test_sse_kms_multipart_headers_on_initiate_not_on_parts(self):
        """--sse aws:kms with a key, a bucket key and a storage class:
        sent on PutObject and CreateMultipartUpload, never on
        UploadPart (S3 refuses them there)."""
        big = lines("big", 120000)
        content = {BASE: big, BASE + 1: lines("small", 2)}
        self.write_hours(content)
        res = self.run_amp(*self.SSE, "--multipart-threshold-mb", "1",
                           cmd="sync", env=self.s3_env(
                               AMP2S3_S3_PART_SIZE_MB="1"))
        self.assertRc(res, 0)
        self.assertObjectsExact({self.key(h): b for h, b in content.items()})
        sse = ("aws:kms", "alias/amp2s3-it", "true", "STANDARD_IA")

        def hdrs(r):
            return (r["sse"], r["sse_kms_key_id"], r["sse_bucket_key"],
                    r["storage_class"])
        init = [r for r in self.proxy_log("POST") if r["query"] ==
                "uploads="]
        parts = [r for r in self.proxy_log("PUT") if "partNumber" in
                 r["query"]]
        single = [r for r in self.proxy_log("PUT") if not r["query"]]
        self.assertEqual([hdrs(r) for r in init], [sse])
        self.assertEqual([hdrs(r) for r in parts],
                         [(None,) * 4] * (-(-len(big) // MiB)))
        self.assertEqual([hdrs(r) for r in single], [sse])
        done = [r for r in self.proxy_log("POST") if r["query"] !=
                "uploads="]
        self.assertEqual([hdrs(r) for r in done], [(None,) * 4])
