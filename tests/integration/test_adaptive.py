"""The pools' adaptive concurrency limit (README "How it works"): the
fetch pool against the scripted Export API with a concurrency cap, the
upload pool against S3 answering 503 SlowDown (fault_proxy.py).  Every
figure is read from the metrics file, the server's counters and request
log, the data directory and the bucket; never from the log text."""

import os
import unittest

from harness import BASE, FetchCase, api, gen_scenario
from test_reliability import FaultProxy, s3env


def read_metrics(path):
    """{name: value} of a Prometheus text file (labels kept in the name)."""
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


class FetchLimit(FetchCase):
    """-j is a ceiling; the limit follows the cap's 429s."""

    CAP = 2
    J = 6
    HOURS = 24

    def capped(self, *extra, hold_ms=60, **scenario):
        sc = dict(concurrency_cap=self.CAP)
        sc.update(scenario)
        srv = self.server(gen_scenario(BASE, self.HOURS, events=15, **sc),
                          args=["--hold-ms", str(hold_ms)])
        metrics = self.tmp / "metrics.prom"
        res = self.fetch_range(srv, BASE, BASE + self.HOURS - 1,
                               "-j", self.J, "--max-window-hours", "1",
                               "--metrics-file", metrics, *extra)
        return srv, res, read_metrics(metrics)

    def burst_then_after(self, srv):
        """The request log split after the first -j arrivals (the pool's
        opening burst, sent before any answer came back)."""
        reqs = srv.requests()
        return reqs[:self.J], reqs[self.J:]

    def test_limit_goes_down_on_429_and_back_up_after_successes(self):
        srv, res, m = self.capped()
        self.assertRc(res, 0)
        self.assertHoursExact(srv, range(BASE, BASE + self.HOURS))
        self.assertNoTemporaries()
        # The pool went down to the cap and probed above it again.
        self.assertEqual(m["amp2s3_fetch_concurrency_ceiling"], self.J)
        self.assertGreaterEqual(m["amp2s3_fetch_limit_decreases"],
                                self.J - self.CAP)
        self.assertGreaterEqual(m["amp2s3_fetch_limit_increases"], 1)
        self.assertIn(m["amp2s3_fetch_concurrency_limit"],
                      (self.CAP, self.CAP + 1))
        st = srv.status()
        # Accepted requests never outnumber the cap (the server's side).
        self.assertLessEqual(st["max_inflight_accepted_after_first_429"],
                             self.CAP)
        # Ours: after the opening burst, no request reached the server
        # while more than the cap and one probe of ours were in flight
        # there (one more for a request the server has answered but not
        # yet counted out).
        _burst, after = self.burst_then_after(srv)
        self.assertTrue(after)
        peak = max(e["inflight_at_start"] for e in after)
        self.assertLessEqual(peak, self.CAP + 2, "requests in flight at "
                             "the server after the opening burst")
        # Each 429 after the burst was one probe above the cap: no more
        # than one per increase (and a few in flight at each change).
        refused_after = sum(e["status"] == 429 for e in after)
        self.assertLessEqual(refused_after,
                             m["amp2s3_fetch_limit_increases"] + 2)
        # Each hour was fetched once (429s are refusals, not answers).
        ok = [e for e in srv.requests() if e["status"] == 200]
        self.assertEqual(len(ok), self.HOURS)

    def test_fixed_concurrency_keeps_every_worker(self):
        srv, res, m = self.capped("--fixed-concurrency", "--max-attempts",
                                  "30")
        self.assertRc(res, 0)
        self.assertHoursExact(srv, range(BASE, BASE + self.HOURS))
        self.assertEqual(m["amp2s3_fetch_concurrency_limit"], self.J)
        self.assertEqual(m["amp2s3_fetch_limit_decreases"], 0)
        # Today's behaviour: after each pause every worker sends again,
        # and most of them are refused.
        _burst, after = self.burst_then_after(srv)
        self.assertGreater(sum(e["status"] == 429 for e in after), self.J)


class UploadLimit(FetchCase):
    """-u is a ceiling; S3's 503 SlowDown lowers the upload limit.
    amp2s3 -> fault_proxy -> sigv4_proxy -> s3rver."""

    U = 4
    FILES = 12
    s3 = fp = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        b = os.environ.get("AMP2S3_BIN")
        if not (b and os.access(b, os.X_OK)):
            raise unittest.SkipTest("AMP2S3_BIN is not set to an "
                                    "executable (%r)" % (b,))
        cls.s3 = s3env.S3Env().start()
        cls.addClassCleanup(cls.s3.stop)
        cls.fp = FaultProxy(cls.s3.endpoint.split("//", 1)[1], cls.s3.dir)
        cls.addClassCleanup(cls.fp.stop)

    def setUp(self):
        super().setUp()
        self.fp.clear()
        self.prefix = "adaptive-%s/" % self._testMethodName[5:40]

    def sync(self, *extra):
        """Write the local hours, sync them with -u U; (result, metrics,
        {hour: bytes})."""
        want = {BASE + i: ("{\"n\":%d}\n" % i).encode() * (i + 1)
                for i in range(self.FILES)}
        self.data.mkdir()
        for h, b in want.items():
            self.hour_path(h).write_bytes(b)
        metrics = self.tmp / "metrics.prom"
        env = self.env(AWS_BUCKET_NAME=self.s3.bucket,
                       AWS_REGION=self.s3.region,
                       AWS_ENDPOINT_URL_S3=self.fp.endpoint,
                       AWS_ACCESS_KEY_ID=self.s3.access_key,
                       AWS_SECRET_ACCESS_KEY=self.s3.secret_key,
                       AWS_S3_PREFIX=self.prefix)
        res = self.run_amp("-u", self.U, "--max-attempts", "10",
                           "--metrics-file", metrics, *extra, cmd="sync",
                           env=env)
        return res, read_metrics(metrics), want

    def assertStoredExactly(self, want):
        keys = {self.prefix + api.hour_file_name(h): b
                for h, b in want.items()}
        self.assertEqual(sorted(self.s3.list_keys(self.prefix)),
                         sorted(keys))
        for k, b in keys.items():
            self.assertEqual(self.s3.get_bytes(k), b, k)
        self.assertEqual(self.hour_files(), [], "local copies left")

    def test_slowdown_lowers_the_upload_limit(self):
        # The first four PUTs (one per worker) are told to slow down.
        self.fp.add({"kind": "status", "status": 503, "code": "SlowDown",
                     "headers": {"Retry-After": "0"}}, times=self.U,
                    method="PUT")
        res, m, want = self.sync()
        self.assertRc(res, 0)
        self.assertStoredExactly(want)
        self.assertEqual(sum(e["status"] == 503 for e in self.fp.log()),
                         self.U)
        self.assertEqual(m["amp2s3_upload_concurrency_ceiling"], self.U)
        # 4 -> 3 -> 2 -> 1 (the fourth finds it at 1), then back up.
        self.assertGreaterEqual(m["amp2s3_upload_limit_decreases"],
                                self.U - 1)
        self.assertGreaterEqual(m["amp2s3_upload_limit_increases"], 1)

    def test_fixed_concurrency_ignores_slowdown(self):
        self.fp.add({"kind": "status", "status": 503, "code": "SlowDown",
                     "headers": {"Retry-After": "0"}}, times=self.U,
                    method="PUT")
        res, m, want = self.sync("--fixed-concurrency")
        self.assertRc(res, 0)
        self.assertStoredExactly(want)
        self.assertEqual(m["amp2s3_upload_limit_decreases"], 0)
        self.assertEqual(m["amp2s3_upload_concurrency_limit"], self.U)


if __name__ == "__main__":
    unittest.main()
