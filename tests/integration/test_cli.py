"""amp2s3 command line: usage errors, .env / env / flag precedence, the
default range, secrets kept out of logs, the lock."""

import fcntl
import os
import signal
import subprocess

from harness import (API_KEY, BASE, BASIC, F, SECRET, FetchCase, api,
                     gen_scenario, hours_of, poll)


class Usage(FetchCase):

    def _usage_error(self, *args, env=None, srv=None):
        srv = srv or self.server(gen_scenario(BASE, 2))
        res = self.run_amp(*args, server=srv, env=env)
        self.assertRc(res, 2)
        lines = [x for x in res.stderr.splitlines() if x.strip()]
        self.assertEqual(len(lines), 1, "expected one line on stderr: %r"
                         % res.stderr)
        self.assertEqual(srv.requests(), [], "a request was sent")
        self.assertEqual(self.hour_files(), [])
        return res

    def test_unknown_flag(self):
        self._usage_error("--no-such-flag", "--start-date", F(BASE),
                          "--end-date", F(BASE))

    def test_bad_date(self):
        res = self._usage_error("--start-date", "99999999T99",
                                "--end-date", F(BASE))
        self.assertIn("99999999T99", res.stderr)

    def test_end_before_start(self):
        self._usage_error("--start-date", F(BASE + 5), "--end-date",
                          F(BASE + 1))

    def test_missing_api_key(self):
        srv = self.server(gen_scenario(BASE, 2))
        self._usage_error("--start-date", F(BASE), "--end-date", F(BASE),
                          srv=srv, env=self.env(srv, AMP_API_KEY=None))

    def test_missing_secret_key(self):
        srv = self.server(gen_scenario(BASE, 2))
        self._usage_error("--start-date", F(BASE), "--end-date", F(BASE),
                          srv=srv, env=self.env(srv, AMP_SECRET_KEY=None))

    def test_bad_number(self):
        self._usage_error("-j", "zero", "--start-date", F(BASE),
                          "--end-date", F(BASE))


class EnvFile(FetchCase):

    def test_credentials_from_dotenv(self):
        srv = self.server(gen_scenario(BASE, 2))
        (self.work / ".env").write_text(
            "# credentials\nAMP_API_KEY=%s\nexport AMP_SECRET_KEY=\"%s\"\n"
            % (API_KEY, SECRET))
        env = self.env(srv, AMP_API_KEY=None, AMP_SECRET_KEY=None)
        res = self.fetch_range(srv, BASE, BASE + 1, env=env)
        self.assertRc(res, 0)
        reqs = srv.requests()
        self.assertTrue(reqs)
        self.assertTrue(all(e["auth_ok"] and e["auth_user"] == API_KEY
                            for e in reqs))
        self.assertHoursExact(srv, [BASE, BASE + 1])

    def test_dotenv_readable_by_others_is_warned(self):
        srv = self.server(gen_scenario(BASE, 1))
        dotenv = self.work / ".env"
        dotenv.write_text("AMP_API_KEY=%s\nAMP_SECRET_KEY=%s\n"
                          % (API_KEY, SECRET))
        env = self.env(srv, AMP_API_KEY=None, AMP_SECRET_KEY=None)
        for mode, warned in ((0o644, True), (0o640, True), (0o600, False)):
            os.chmod(dotenv, mode)
            res = self.fetch_range(srv, BASE, BASE, env=env)
            self.assertRc(res, 0)
            lines = [l for l in res.stderr.splitlines()
                     if "readable by others" in l]
            self.assertEqual(bool(lines), warned, "mode %o" % mode)
            if warned:
                self.assertIn(".env", lines[0])
                self.assertIn("chmod 600", lines[0])
                self.assertNotIn(SECRET, res.stderr)
            # the run itself is unaffected: the hour is complete
            self.assertHoursExact(srv, [BASE])

    def test_environment_overrides_dotenv(self):
        a = self.server(gen_scenario(BASE, 2), name="a")
        b = self.server(gen_scenario(BASE, 2), name="b")
        (self.work / ".env").write_text(
            "AMP_API_KEY=wrong-key\nAMP_SECRET_KEY=wrong-secret\n"
            "AMP_API_URL=%s\n" % b.url)
        res = self.fetch_range(a, BASE, BASE + 1)   # env: right key, a
        self.assertRc(res, 0)
        self.assertEqual(b.requests(), [], ".env URL used over the env")
        reqs = a.requests()
        self.assertTrue(reqs and all(e["auth_ok"] for e in reqs))
        self.assertHoursExact(a, [BASE, BASE + 1])

    def test_flag_overrides_environment(self):
        a = self.server(gen_scenario(BASE, 2), name="a")
        b = self.server(gen_scenario(BASE, 2), name="b")
        res = self.run_amp("--api-url", a.url, "--start-date", F(BASE),
                           "--end-date", F(BASE + 1), server=b)
        self.assertRc(res, 0)
        self.assertEqual(b.requests(), [], "AMP_API_URL used over the flag")
        self.assertTrue(a.requests())
        self.assertHoursExact(a, [BASE, BASE + 1])

    def test_env_file_flag(self):
        srv = self.server(gen_scenario(BASE, 1))
        (self.tmp / "creds.env").write_text(
            "AMP_API_KEY='%s'\r\nAMP_SECRET_KEY=%s  # a comment\r\n"
            % (API_KEY, SECRET))
        env = self.env(srv, AMP_API_KEY=None, AMP_SECRET_KEY=None)
        res = self.fetch_range(srv, BASE, BASE, "--env-file",
                               str(self.tmp / "creds.env"), env=env)
        self.assertRc(res, 0)
        self.assertTrue(all(e["auth_ok"] for e in srv.requests()))

    def test_malformed_dotenv_line(self):
        srv = self.server(gen_scenario(BASE, 1))
        (self.work / ".env").write_text(
            "AMP_API_KEY=%s\n\nthis line is not an assignment %s\n"
            "AMP_SECRET_KEY=%s\n" % (API_KEY, SECRET, SECRET))
        res = self.fetch_range(srv, BASE, BASE)
        self.assertRc(res, 2)
        lines = [x for x in res.stderr.splitlines() if x.strip()]
        self.assertEqual(len(lines), 1, res.stderr)
        self.assertRegex(lines[0], r"(line\s*3\b|:3\b)",
                         "the message names line 3")
        self.assertNotIn(SECRET, res.stderr)
        self.assertEqual(srv.requests(), [])


class Defaults(FetchCase):

    def test_default_range_is_25_hours_ending_12_hours_ago(self):
        srv = self.server({})                # every window: 404, empty
        before = api.now_hour()
        res = self.run_amp("-j", "4", server=srv)
        after = api.now_hour()
        self.assertRc(res, 0)
        asked = sorted({h for e in srv.requests() for h in hours_of(e)})
        ok = []
        for now in {before, after}:
            end = now - 12
            ok.append(list(range(end - 24, end + 1)))
        self.assertIn(asked, ok, "requested %s..%s" % (
            F(asked[0]), F(asked[-1])) if asked else "nothing requested")
        self.assertEqual(len(asked), 25)
        self.assertOnlyHours(asked)

    def test_lookback_and_lag(self):
        srv = self.server({})
        before = api.now_hour()
        res = self.run_amp("-j", "4", "--lookback-days", "2",
                           "--lag-hours", "3", server=srv)
        after = api.now_hour()
        self.assertRc(res, 0)
        asked = sorted({h for e in srv.requests() for h in hours_of(e)})
        ok = [list(range(n - 3 - 48, n - 3 + 1)) for n in {before, after}]
        self.assertIn(asked, ok)


class Secrets(FetchCase):

    def test_credentials_never_logged(self):
        srv = self.server(gen_scenario(BASE, 3, rules=[
            {"match": {"n": 1}, "action": {"status": 500}},
            {"match": {"n": 2}, "action": {"status": 429}},
            {"match": {"n": 3}, "action": {"kind": "not_zip"}}]))
        logf = self.tmp / "amp.log"
        res = self.fetch_range(srv, BASE, BASE + 2, "--log-level", "debug",
                               "--log-file", str(logf))
        self.assertRc(res, 0)
        text = logf.read_text(errors="replace") if logf.exists() else ""
        self.assertTrue(text.strip(), "nothing in the --log-file")
        for where, s in (("stderr", res.stderr), ("stdout", res.stdout),
                         ("log file", text)):
            for secret in (SECRET, API_KEY, BASIC):
                self.assertNotIn(secret, s, "a credential in the " + where)
        self.assertHoursExact(srv, range(BASE, BASE + 3))

    def test_credentials_never_logged_json_and_auth_failure(self):
        srv = self.server(gen_scenario(BASE, 1, rules=[
            {"action": {"status": 403}}]))
        (self.work / ".env").write_text("AMP_SECRET_KEY=%s\n" % SECRET)
        env = self.env(srv, AMP_SECRET_KEY=None)
        res = self.fetch_range(srv, BASE, BASE, "--log-level", "debug",
                               "--log-format", "json", env=env)
        self.assertRc(res, 3)
        for secret in (SECRET, API_KEY, BASIC):
            self.assertNotIn(secret, res.stderr + res.stdout)


class Lock(FetchCase):

    def test_locked_data_dir_exits_4(self):
        srv = self.server(gen_scenario(BASE, 1))
        self.data.mkdir()
        fd = os.open(self.data / ".amp2s3.lock", os.O_RDWR | os.O_CREAT)
        self.addCleanup(os.close, fd)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        res = self.fetch_range(srv, BASE, BASE, timeout=20)
        self.assertRc(res, 4)
        self.assertEqual(srv.requests(), [])
        self.assertEqual(self.hour_files(), [])


class Signals(FetchCase):

    def _interrupt(self, sig, rc):
        srv = self.server(gen_scenario(BASE, 4, rules=[
            {"match": {"contains": F(BASE + 3)},
             "times": 1, "action": {"kind": "stall", "seconds": 30,
                                    "after_fraction": 0.3}}]))
        p = self.start_amp("--start-date", F(BASE), "--end-date",
                           F(BASE + 3), "--max-window-hours", "1",
                           "--stall-timeout", "60", server=srv)
        # the stalled request is in flight once hours 0..2 are done
        poll(lambda: srv.status()["inflight"] >= 1 and
             self.hour_path(BASE + 2).exists() or p.poll() is not None,
             20, "the stalled request")
        self.assertIsNone(p.poll(), "amp2s3 ended before the signal")
        p.send_signal(sig)
        try:
            got = p.wait(10)
        except subprocess.TimeoutExpired:
            self.fail("amp2s3 still running 10s after signal %d" % sig)
        self.assertEqual(got, rc)
        self.assertHoursExact(srv, [BASE, BASE + 1, BASE + 2])
        self.assertFalse(self.hour_path(BASE + 3).exists(),
                         "a half-fetched hour was left as complete")
        # temporaries may remain after a signal; the next run removes
        # them and fetches only the missing hour
        n = len(srv.requests())
        res = self.fetch_range(srv, BASE, BASE + 3)
        self.assertRc(res, 0)
        self.assertEqual([(e["start"], e["end"]) for e in
                          srv.requests()[n:]], [(F(BASE + 3), F(BASE + 3))])
        self.assertHoursExact(srv, range(BASE, BASE + 4))
        self.assertNoTemporaries()

    def test_sigterm_exits_143(self):
        self._interrupt(signal.SIGTERM, 143)

    def test_sigint_exits_130(self):
        self._interrupt(signal.SIGINT, 130)
