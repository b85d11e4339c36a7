"""The credential chain (src/creds*.c) through build/*/tools/credtool,
against the loopback stand-ins of tests/aws/credsrv.py: each source
alone, their precedence, profiles, credential_process, IMDSv2 only, the
container token, the token files re-read at refresh, refresh across many
short lifetimes from several threads with one request per refresh, a
refused set refreshed once, and the error that names every source tried.

What is checked is what the stand-ins saw (their request logs) and what
they issued (the registry), against what credtool reports; credtool
never prints a secret, and the tests check that too.
"""

import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import unittest

from s3harness import ROOT, s3env

PY = "/usr/bin/python3"
ROLE_ARN = "arn:aws:iam::123456789012:role/amp2s3-web"
SANITIZER_MARKS = ("Sanitizer", "runtime error:")


def credtool_path():
    build = os.environ.get("AMP2S3_BUILD") or os.path.join(
        ROOT, "build", "release")
    return os.path.join(os.path.abspath(build), "tools", "credtool")


def parse(stdout):
    """credtool's output: {"source", "detail", "region", "key": {...},
    "uses": [...], "stale", "errors", "refreshes", "invalidate"}."""
    out = {"uses": []}
    for line in stdout.splitlines():
        w = line.split()
        if not w:
            continue
        if w[0] in ("source", "detail", "region"):
            out[w[0]] = w[1] if len(w) > 1 else ""
        elif w[0] == "key":
            out["key"] = {"ak": w[1], "expires": w[3], "gen": int(w[5]),
                          "token": w[7] == "yes"}
        elif w[0] == "use":
            out["uses"].append({"ak": w[1], "gen": int(w[3]),
                                "expires": int(w[5]), "first": int(w[7]),
                                "last": int(w[9]), "count": int(w[11])})
        elif w[0] in ("stale", "errors", "refreshes", "invalidate"):
            out[w[0]] = int(w[1])
    return out


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class CredsChain(s3env.CredStandins, unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        self.tool = credtool_path()
        if not os.access(self.tool, os.X_OK):
            self.skipTest("credtool not built: %s" % self.tool)
        self.tmp = tempfile.mkdtemp(prefix="amp2s3-creds-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.registry = os.path.join(self.tmp, "registry.jsonl")
        self.home = os.path.join(self.tmp, "home")
        os.mkdir(self.home)

    # -- helpers -----------------------------------------------------------
    def env(self, **over):
        e = {"PATH": "/usr/bin:/bin", "HOME": self.home, "LANG": "C.UTF-8",
             "AWS_EC2_METADATA_DISABLED": "true",
             "AMP_API_KEY": "amp-api-key-never-passed",
             "AMP_SECRET_KEY": "amp-secret-never-passed"}
        for k, v in over.items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = str(v)
        return e

    def run_tool(self, env, *args, rc=0, timeout=60):
        p = subprocess.run([self.tool] + [str(a) for a in args], env=env,
                           capture_output=True, timeout=timeout)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, err, "sanitizer report:\n" + err[-3000:])
        self.assertEqual(p.returncode, rc, "credtool exit status\nstdout: "
                         "%s\nstderr: %s" % (out[-2000:], err[-2000:]))
        self.assertNoSecrets(out + err)
        res = parse(out)
        res["stderr"] = err
        return res

    def assertNoSecrets(self, text):
        for c in self.issued():
            self.assertNotIn(c["secret_key"], text)
            self.assertNotIn(c["token"][:40], text)
        for s in ("static-secret-0123456789", "amp-secret-never-passed",
                  "profile-secret-prod"):
            self.assertNotIn(s, text)

    def write(self, name, text, mode=0o600):
        path = os.path.join(self.tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def sts(self, lifetime=600.0, token="eyJ.first"):
        tok = self.write("oidc-token", token)
        srv = self.cred_server("sts", web_identity_token_file=tok,
                          role_arn=ROLE_ARN, lifetime=lifetime)
        env = {"AWS_WEB_IDENTITY_TOKEN_FILE": tok, "AWS_ROLE_ARN": ROLE_ARN,
               "AWS_ROLE_SESSION_NAME": "it-session",
               "AWS_ENDPOINT_URL_STS": srv.url}
        return srv, env, tok

    def imds(self, lifetime=600.0):
        srv = self.cred_server("imds", lifetime=lifetime, role="it-role")
        return srv, {"AWS_EC2_METADATA_DISABLED": None,
                     "AWS_EC2_METADATA_SERVICE_ENDPOINT": srv.url}

    def container(self, lifetime=600.0, token="ctr-token-1", path=None):
        tokf = self.write("ctr-token", token + "\n")
        srv = self.cred_server("container", lifetime=lifetime,
                          auth_token_file=tokf,
                          path=path or "/v2/credentials/it")
        return srv, tokf, {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.url +
            (path or "/v2/credentials/it"),
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokf}

    def profile_files(self):
        cred = self.write("home/.aws/credentials",
                          "[default]\naws_access_key_id = AKIADEFAULTPROFILE\n"
                          "aws_secret_access_key = profile-secret-default\n"
                          "\n[prod]\naws_access_key_id = AKIAPRODPROFILE0\n"
                          "aws_secret_access_key = profile-secret-prod\n"
                          "aws_session_token = prod-session-token\n")
        cfg = self.write("home/.aws/config",
                         "[default]\nregion = eu-west-2\n"
                         "[profile prod]\nregion = us-east-2\n"
                         "[profile other]\nregion = ap-south-1\n")
        return cred, cfg

    # -- each source alone -------------------------------------------------
    def test_static(self):
        r = self.run_tool(self.env(AWS_ACCESS_KEY_ID="AKIASTATIC000001",
                                   AWS_SECRET_ACCESS_KEY="static-secret-"
                                   "0123456789",
                                   AWS_SESSION_TOKEN="static-token"))
        self.assertEqual(r["source"], "static")
        self.assertEqual(r["key"], {"ak": "AKIASTATIC000001",
                                    "expires": "never", "gen": 1,
                                    "token": True})
        r = self.run_tool(self.env(AWS_ACCESS_KEY_ID="AKIASTATIC000001"),
                          rc=2)
        self.assertIn("static keys: an access key without a secret key",
                      r["stderr"])

    def test_web_identity(self):
        srv, env, tok = self.sts()
        r = self.run_tool(self.env(**env))
        self.assertEqual(r["source"], "web-identity")
        self.assertEqual(r["detail"], ROLE_ARN)
        got = self.issued("sts")
        self.assertEqual([c["access_key"] for c in got], [r["key"]["ak"]])
        self.assertTrue(r["key"]["token"])
        self.assertEqual(int(r["key"]["expires"]) // 1000,
                         int(got[0]["expires"]))
        log = srv.requests()
        self.assertEqual(len(log), 1)
        self.assertEqual((log[0]["method"], log[0]["action"],
                          log[0]["role_arn"], log[0]["session_name"],
                          log[0]["status"]),
                         ("POST", "AssumeRoleWithWebIdentity", ROLE_ARN,
                          "it-session", 200))
        self.assertEqual(log[0]["token_sha"], log[0]["file_sha"])

    def test_web_identity_refused(self):
        srv, env, tok = self.sts()
        env["AWS_ROLE_ARN"] = ROLE_ARN + "-other"
        r = self.run_tool(self.env(**env), rc=2)
        self.assertIn("web identity: STS answered 403 AccessDenied",
                      r["stderr"])
        self.assertEqual(self.issued(), [])
        env["AWS_ROLE_ARN"] = None
        r = self.run_tool(self.env(**env), rc=2)
        self.assertIn("no role ARN", r["stderr"])

    def test_profiles(self):
        self.profile_files()
        r = self.run_tool(self.env())
        self.assertEqual((r["source"], r["detail"], r["region"]),
                         ("profile", "default", "eu-west-2"))
        self.assertEqual(r["key"], {"ak": "AKIADEFAULTPROFILE",
                                    "expires": "never", "gen": 1,
                                    "token": False})
        r = self.run_tool(self.env(AWS_PROFILE="prod"))
        self.assertEqual((r["source"], r["detail"], r["region"]),
                         ("profile", "prod", "us-east-2"))
        self.assertEqual(r["key"]["ak"], "AKIAPRODPROFILE0")
        self.assertTrue(r["key"]["token"])
        # A profile with only a region gives no credentials: on to IMDS
        # (disabled here), and the region is still reported.
        r = self.run_tool(self.env(AWS_PROFILE="other"), rc=2)
        self.assertIn("profile other: no credentials in it", r["stderr"])
        r = self.run_tool(self.env(AWS_PROFILE="absent"), rc=2)
        self.assertIn("profile absent is in neither", r["stderr"])
        # Files named by the variables win over HOME's.
        alt = self.write("alt-credentials", "[default]\naws_access_key_id="
                         "AKIAALTERNATE000\naws_secret_access_key=x\n")
        r = self.run_tool(self.env(AWS_SHARED_CREDENTIALS_FILE=alt,
                                   AWS_CONFIG_FILE="/nonexistent"))
        self.assertEqual((r["key"]["ak"], r["region"]),
                         ("AKIAALTERNATE000", "-"))

    def test_credential_process(self):
        # A path with a space, arguments with quotes and a backslash: the
        # program must receive exactly these words, no shell involved.
        argv_out = os.path.join(self.tmp, "argv.json")
        runs = os.path.join(self.tmp, "runs")
        script = self.write("my tools/cred proc.py", (
            "#!%s\nimport json, os, sys, time\n"
            "with open(%r, 'a') as f: f.write('x')\n"
            "json.dump({'argv': sys.argv[1:], 'env': sorted(os.environ)},"
            " open(%r, 'w'))\n"
            "exp = time.strftime('%%Y-%%m-%%dT%%H:%%M:%%SZ', "
            "time.gmtime(time.time() + float(sys.argv[1])))\n"
            "print(json.dumps({'Version': 1, 'AccessKeyId': "
            "'AKIAPROC%%08d' %% len(open(%r).read()), "
            "'SecretAccessKey': 'proc-secret', 'SessionToken': "
            "'proc-token', 'Expiration': exp}))\n")
            % (PY, runs, argv_out, runs), mode=0o700)
        cmd = ("'%s' 2 \"two words\" 'single $HOME' back\\ slash "
               "\"esc \\\" quote\" ';' '&&'" % script)
        self.write("home/.aws/config", "[profile proc]\n"
                   "credential_process = %s\nregion = eu-west-1\n" % cmd)
        r = self.run_tool(self.env(AWS_PROFILE="proc"), "--loop", "3.5",
                          "--threads", "4")
        self.assertEqual((r["source"], r["detail"], r["region"]),
                         ("process", "proc", "eu-west-1"))
        with open(argv_out) as f:
            got = json.load(f)
        self.assertEqual(got["argv"], ["2", "two words", "single $HOME",
                                       "back slash", 'esc " quote', ";",
                                       "&&"])
        self.assertNotIn("AMP_API_KEY", got["env"])
        self.assertNotIn("AMP_SECRET_KEY", got["env"])
        self.assertIn("HOME", got["env"])
        # Rerun to refresh: once per lifetime, not once per thread.
        with open(runs) as f:
            n = len(f.read())
        self.assertEqual(r["refreshes"], n - 1)
        self.assertGreaterEqual(n, 3)
        self.assertLessEqual(n, 6)
        self.assertEqual((r["stale"], r["errors"]), (0, 0))

    def test_credential_process_failures(self):
        bad = self.write("bad.sh", "#!/bin/sh\necho nope >&2\nexit 3\n",
                         mode=0o700)
        slow = self.write("slow.sh", "#!/bin/sh\nexec sleep 30\n",
                          mode=0o700)
        cfg = self.write("cfg", "[profile bad]\ncredential_process = %s\n"
                         "[profile slow]\ncredential_process = %s\n"
                         "[profile quote]\ncredential_process = '%s\n"
                         % (bad, slow, bad))
        env = self.env(AWS_CONFIG_FILE=cfg)
        env["AWS_PROFILE"] = "bad"
        r = self.run_tool(env, rc=2)
        self.assertIn("credential_process: exit status 3", r["stderr"])
        env["AWS_PROFILE"] = "slow"
        env["CREDTOOL_PROCESS_TIMEOUT_MS"] = "500"
        t0 = time.monotonic()
        r = self.run_tool(env, rc=2)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn("no answer within 500 ms", r["stderr"])
        env["AWS_PROFILE"] = "quote"
        r = self.run_tool(env, rc=2)
        self.assertIn("unterminated single quote", r["stderr"])

    def test_container_full_uri(self):
        srv, tokf, env = self.container()
        r = self.run_tool(self.env(**env))
        self.assertEqual(r["source"], "container")
        self.assertEqual([c["access_key"] for c in self.issued()],
                         [r["key"]["ak"]])
        log = srv.requests()
        self.assertEqual([(x["authorization"], x["status"]) for x in log],
                         [("ok", 200)])

    def test_container_relative_uri_and_token(self):
        srv = self.cred_server("container", auth_token="ctr-literal",
                          path="/v2/credentials/rel")
        env = self.env(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=
                       "/v2/credentials/rel",
                       AWS_CONTAINER_AUTHORIZATION_TOKEN="ctr-literal",
                       CREDTOOL_CONTAINER_ORIGIN=srv.url)
        self.assertEqual(self.run_tool(env)["source"], "container")
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "ctr-wrong"
        r = self.run_tool(env, rc=2)
        self.assertIn("answered HTTP 403 (authorization token refused)",
                      r["stderr"])
        self.assertEqual([x["authorization"] for x in srv.requests()],
                         ["ok", "wrong"])

    def test_container_full_uri_host_rule(self):
        env = self.env(AWS_CONTAINER_CREDENTIALS_FULL_URI=
                       "http://192.0.2.10/creds")
        r = self.run_tool(env, rc=2)
        self.assertIn("http to 192.0.2.10 is refused", r["stderr"])

    def test_imds_v2_only(self):
        srv, env = self.imds()
        r = self.run_tool(self.env(**env))
        self.assertEqual((r["source"], r["detail"]), ("imds", "it-role"))
        log = srv.requests()
        self.assertEqual([(x["method"], x["path"], x["status"])
                          for x in log],
                         [("PUT", "/latest/api/token", 200),
                          ("GET", "/latest/meta-data/iam/security-"
                           "credentials/", 200),
                          ("GET", "/latest/meta-data/iam/security-"
                           "credentials/it-role", 200)])
        self.assertEqual(log[0]["ttl"], "21600")
        self.assertTrue(all(x["imds_token"] for x in log[1:]))
        self.assertEqual([c["access_key"] for c in self.issued()],
                         [r["key"]["ak"]])

    def test_imds_refused_token_is_not_v1(self):
        # The token PUT fails: no fallback to IMDSv1 (no GET at all).
        srv, env = self.imds()
        srv.control("fail", count=1, status=403)
        r = self.run_tool(self.env(**env), rc=2)
        self.assertIn("IMDSv2 token request answered HTTP 403", r["stderr"])
        self.assertEqual([x["method"] for x in srv.requests()], ["PUT"])

    def test_imds_slow_does_not_hold_up(self):
        srv, env = self.imds()
        srv.control("delay", count=5, seconds=5)
        t0 = time.monotonic()
        r = self.run_tool(self.env(**env), rc=2)
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertIn("instance metadata:", r["stderr"])

    # -- precedence ---------------------------------------------------------
    def test_precedence(self):
        sts, sts_env, _ = self.sts()
        ctr, _, ctr_env = self.container()
        imd, imds_env = self.imds()
        self.profile_files()
        static = {"AWS_ACCESS_KEY_ID": "AKIASTATIC000001",
                  "AWS_SECRET_ACCESS_KEY": "static-secret-0123456789"}
        layers = [("static", static), ("web-identity", sts_env),
                  ("profile", {}), ("container", ctr_env),
                  ("imds", imds_env)]
        for i, (want, _) in enumerate(layers):
            env = {}
            for _, e in layers[i:]:
                env.update(e)
            if want in ("container", "imds"):
                env["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent"
            before = {s.mode: len(s.requests()) for s in (sts, ctr, imd)}
            r = self.run_tool(self.env(**env))
            self.assertEqual(r["source"], want)
            after = {s.mode: len(s.requests()) for s in (sts, ctr, imd)}
            asked = {m for m in after if after[m] != before[m]}
            expect = {"web-identity": {"sts"}, "container": {"container"},
                      "imds": {"imds"}}.get(want, set())
            self.assertEqual(asked, expect, "sources asked for %s" % want)

    def test_no_source_names_every_source(self):
        port = closed_port()
        r = self.run_tool(self.env(
            AWS_EC2_METADATA_DISABLED=None,
            AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:%d" % port),
            rc=2)
        line = r["stderr"].strip().splitlines()[-1]
        self.assertIn("no AWS credentials found (tried: static keys: not "
                      "set; web identity: no token file; profile default: "
                      "not in %s/.aws/credentials, %s/.aws/config; "
                      "container: no URI; instance metadata: "
                      % (self.home, self.home), line)
        r = self.run_tool(self.env(), rc=2)
        self.assertIn("instance metadata: disabled)", r["stderr"])

    # -- refresh --------------------------------------------------------------
    def check_refresh_run(self, r, source, loop_s, lifetime):
        """Every set credtool used was issued by ${source}, used only
        before it expired, and each refresh cost exactly one issue."""
        issued = self.issued(source)
        by_key = {c["access_key"]: c for c in issued}
        self.assertEqual((r["stale"], r["errors"]), (0, 0))
        self.assertEqual([u["ak"] for u in r["uses"]],
                         [c["access_key"] for c in issued],
                         "one issue per set used, in order")
        self.assertEqual(r["refreshes"], len(issued) - 1)
        for u in r["uses"]:
            self.assertLess(u["last"] / 1000.0, by_key[u["ak"]]["expires"],
                            "a set used after its expiry")
        # One refresh per (rounded-down) lifetime, about 3/4 into it.
        self.assertGreaterEqual(len(issued), int(loop_s / lifetime) + 1)
        self.assertLessEqual(len(issued), int(loop_s / (lifetime / 2)) + 2)

    def test_refresh_web_identity_many_threads(self):
        srv, env, tok = self.sts(lifetime=2.0)
        r = self.run_tool(self.env(**env), "--loop", "4", "--threads", "8")
        self.check_refresh_run(r, "sts", 4, 2.0)
        self.assertEqual(len(srv.requests()), len(self.issued()))

    def test_refresh_imds_many_threads(self):
        srv, env = self.imds(lifetime=2.0)
        r = self.run_tool(self.env(**env), "--loop", "4", "--threads", "8")
        self.check_refresh_run(r, "imds", 4, 2.0)
        creds_gets = [x for x in srv.requests()
                      if x["path"].endswith("/it-role")]
        self.assertEqual(len(creds_gets), len(self.issued()))

    def test_token_files_reread_at_refresh(self):
        """Web identity and container: the token file is read again at
        every refresh; rotating it mid-run keeps the run going."""
        for mode in ("sts", "container"):
            with self.subTest(mode=mode):
                if mode == "sts":
                    srv, env, tokf = self.sts(lifetime=2.0)
                else:
                    srv, tokf, env = self.container(lifetime=2.0)
                before = len(self.issued())
                p = subprocess.Popen([self.tool, "--loop", "3.5", "--threads",
                                      "4"], env=self.env(**env),
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
                try:
                    deadline = time.monotonic() + 10
                    while len(self.issued()) < before + 2:
                        self.assertLess(time.monotonic(), deadline)
                        time.sleep(0.05)
                    with open(tokf + ".new", "w") as f:
                        f.write("rotated-" + mode)
                    os.replace(tokf + ".new", tokf)
                    out, err = p.communicate(timeout=30)
                finally:
                    if p.poll() is None:
                        p.kill()
                        p.wait()
                self.assertEqual(p.returncode, 0, err.decode()[-2000:])
                r = parse(out.decode())
                self.assertEqual((r["stale"], r["errors"]), (0, 0))
                log = srv.requests()
                self.assertTrue(all(x["status"] == 200 for x in log), log)
                self.assertTrue(all(x["token_sha"] == x["file_sha"]
                                    for x in log))
                self.assertGreaterEqual(len({x["file_sha"] for x in log}), 2,
                                        "the rotated token was never sent")

    def test_invalidate_one_refresh_for_all_threads(self):
        srv, env, _ = self.sts(lifetime=600)
        r = self.run_tool(self.env(**env), "--loop", "1.5", "--threads",
                          "8", "--invalidate-at", "500")
        self.assertEqual(r["invalidate"], 0)
        self.assertEqual(len(self.issued()), 2, "one refresh for 8 reports")
        self.assertEqual([u["gen"] for u in r["uses"]], [1, 2])
        self.assertEqual(r["refreshes"], 1)
        self.assertEqual(r["errors"], 0)

    def test_invalidate_static_is_final(self):
        r = self.run_tool(self.env(AWS_ACCESS_KEY_ID="AKIASTATIC000001",
                                   AWS_SECRET_ACCESS_KEY="static-secret-"
                                   "0123456789"),
                          "--loop", "0.3", "--threads", "2",
                          "--invalidate-at", "100")
        self.assertEqual(r["invalidate"], -1)
        self.assertEqual([u["gen"] for u in r["uses"]], [1])

    def test_refresh_failure_keeps_the_valid_set(self):
        """STS fails for a while: the current set is used until E - M,
        then creds_get fails; once STS answers again, a new set."""
        srv, env, _ = self.sts(lifetime=3.0)
        p = subprocess.Popen([self.tool, "--loop", "4", "--threads", "2"],
                             env=self.env(**env), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 10
            while len(self.issued()) < 1:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.02)
            srv.control("fail", count=6, status=503)
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        r = parse(out.decode())
        self.assertEqual(r["stale"], 0)
        statuses = [x["status"] for x in srv.requests()]
        self.assertIn(503, statuses)
        self.assertEqual(statuses[-1], 200)
        self.assertGreaterEqual(len(r["uses"]), 2)


if __name__ == "__main__":
    unittest.main()
