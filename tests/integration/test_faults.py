"""amp2s3 fetch against a misbehaving Export API: status codes, broken
bodies, corrupt zips, slow servers, concurrency."""

import os

from harness import BASE, F, FetchCase, gen_scenario, window_of


def rule(action, times=None, **match):
    r = {"match": match, "action": action}
    if times is not None:
        r["times"] = times
    return r


class Status(FetchCase):

    def _transient_then_ok(self, code):
        srv = self.server(gen_scenario(BASE, 2, rules=[
            rule({"status": code}, times=2)]))
        res = self.fetch_range(srv, BASE, BASE + 1)
        self.assertRc(res, 0)
        reqs = srv.requests()
        self.assertEqual([e["status"] for e in reqs], [code, code, 200])
        self.assertEqual({window_of(e) for e in reqs}, {(BASE, BASE + 1)},
                         "the same window is retried")
        self.assertHoursExact(srv, [BASE, BASE + 1])
        self.assertNoTemporaries()

    def test_500_then_ok(self):
        self._transient_then_ok(500)

    def test_502_then_ok(self):
        self._transient_then_ok(502)

    def test_503_then_ok(self):
        self._transient_then_ok(503)

    def test_429_retry_after_is_honoured(self):
        srv = self.server(gen_scenario(BASE, 1, rules=[
            rule({"status": 429, "headers": {"Retry-After": "1"}},
                 times=1)]))
        res = self.fetch_range(srv, BASE, BASE, "--retry-max-ms", "5000")
        self.assertRc(res, 0)
        reqs = srv.requests()
        self.assertEqual([e["status"] for e in reqs], [429, 200])
        gap = reqs[1]["t_start"] - reqs[0]["t_end"]
        self.assertGreaterEqual(gap, 0.9, "retried %.3fs after a 429 with "
                                "Retry-After: 1" % gap)
        self.assertHoursExact(srv, [BASE])

    def test_429_without_retry_after(self):
        srv = self.server(gen_scenario(BASE, 1, rules=[
            rule({"status": 429}, times=2)]))
        res = self.fetch_range(srv, BASE, BASE)
        self.assertRc(res, 0)
        self.assertEqual([e["status"] for e in srv.requests()],
                         [429, 429, 200])
        self.assertHoursExact(srv, [BASE])

    def test_504_on_multi_hour_window_splits(self):
        srv = self.server(gen_scenario(BASE, 4, rules=[
            rule({"status": 504}, times=1, min_hours=2)]))
        res = self.fetch_range(srv, BASE, BASE + 3)
        self.assertRc(res, 0)
        reqs = srv.requests()
        self.assertEqual((reqs[0]["status"], reqs[0]["hours"]), (504, 4))
        rest = reqs[1:]
        self.assertTrue(rest and all(e["hours"] < 4 for e in rest),
                        [(e["start"], e["end"]) for e in reqs])
        self.assertCoversExactly([e for e in rest if e["status"] == 200],
                                 range(BASE, BASE + 4))
        self.assertHoursExact(srv, range(BASE, BASE + 4))
        self.assertNoTemporaries()

    def test_504_on_single_hour_is_retried(self):
        srv = self.server(gen_scenario(BASE, 1, rules=[
            rule({"status": 504}, times=2)]))
        res = self.fetch_range(srv, BASE, BASE)
        self.assertRc(res, 0)
        reqs = srv.requests()
        self.assertEqual([e["status"] for e in reqs], [504, 504, 200])
        self.assertTrue(all(window_of(e) == (BASE, BASE) for e in reqs))
        self.assertHoursExact(srv, [BASE])

    def test_400_on_multi_hour_window_splits(self):
        srv = self.server(gen_scenario(BASE, 4, rules=[
            rule({"status": 400}, min_hours=2)]))
        res = self.fetch_range(srv, BASE, BASE + 3)
        self.assertRc(res, 0)
        reqs = srv.requests()
        self.assertTrue(all(e["status"] == 400 for e in reqs
                            if e["hours"] >= 2))
        ok = [e for e in reqs if e["status"] == 200]
        self.assertTrue(all(e["hours"] == 1 for e in ok))
        self.assertCoversExactly(ok, range(BASE, BASE + 4))
        self.assertHoursExact(srv, range(BASE, BASE + 4))

    def test_400_on_single_hour_fails_that_hour(self):
        bad = BASE + 1
        srv = self.server(gen_scenario(BASE, 3, rules=[
            rule({"status": 400}, contains=F(bad))]))
        res = self.fetch_range(srv, BASE, BASE + 2)
        self.assertRc(res, 1)
        self.assertFalse(self.hour_path(bad).exists())
        self.assertHoursExact(srv, [BASE, BASE + 2])
        self.assertOnlyHours([BASE, BASE + 2])
        single = [e for e in srv.requests() if window_of(e) == (bad, bad)]
        self.assertEqual(len(single), 1, "a 400 on one hour is not retried")
        self.assertNoTemporaries()

    def _auth_refused(self, code):
        srv = self.server(gen_scenario(BASE, 8, rules=[
            rule({"status": code})]))
        res = self.fetch_range(srv, BASE, BASE + 7, "-j", "2",
                               "--max-window-hours", "1")
        self.assertRc(res, 3)
        reqs = srv.requests()
        self.assertGreaterEqual(len(reqs), 1)
        self.assertLessEqual(len(reqs), 2, "retry storm after %d" % code)
        self.assertEqual(self.hour_files(), [])
        self.assertNoTemporaries()

    def test_401_exits_3(self):
        self._auth_refused(401)

    def test_403_exits_3(self):
        self._auth_refused(403)

    def test_wrong_credentials_exit_3(self):
        srv = self.server(gen_scenario(BASE, 8))
        env = self.env(srv, AMP_SECRET_KEY="not-the-secret")
        res = self.fetch_range(srv, BASE, BASE + 7, "-j", "2",
                               "--max-window-hours", "1", env=env)
        self.assertRc(res, 3)
        reqs = srv.requests()
        self.assertTrue(1 <= len(reqs) <= 2, len(reqs))
        self.assertFalse(any(e["auth_ok"] for e in reqs))
        self.assertEqual(self.hour_files(), [])

    def test_418_fails_the_window_without_retry(self):
        srv = self.server(gen_scenario(BASE, 2, rules=[
            rule({"status": 418})]))
        res = self.fetch_range(srv, BASE, BASE + 1)
        self.assertRc(res, 1)
        self.assertEqual(len(srv.requests()), 1)
        self.assertEqual(self.hour_files(), [])
        self.assertNoTemporaries()


class Body(FetchCase):

    def test_not_zip_then_ok(self):
        srv = self.server(gen_scenario(BASE, 2, rules=[
            rule({"kind": "not_zip"}, times=1)]))
        res = self.fetch_range(srv, BASE, BASE + 1)
        self.assertRc(res, 0)
        self.assertEqual([e["action"] for e in srv.requests()],
                         ["not_zip", "data"])
        self.assertHoursExact(srv, [BASE, BASE + 1])

    def test_never_a_zip_gives_up_after_max_attempts(self):
        srv = self.server(gen_scenario(BASE, 2, rules=[
            rule({"kind": "not_zip"})]))
        res = self.fetch_range(srv, BASE, BASE + 1, "--max-attempts", "3")
        self.assertRc(res, 1)
        reqs = srv.requests()
        self.assertEqual(len(reqs), 3)
        self.assertEqual({window_of(e) for e in reqs}, {(BASE, BASE + 1)})
        self.assertEqual(self.hour_files(), [])
        self.assertNoTemporaries()

    def test_truncated_body_is_retried(self):
        srv = self.server(gen_scenario(BASE, 2, events=300, rules=[
            rule({"kind": "truncate", "fraction": 0.5}, times=1)]))
        res = self.fetch_range(srv, BASE, BASE + 1)
        self.assertRc(res, 0)
        self.assertEqual([e["action"] for e in srv.requests()],
                         ["truncate", "data"])
        self.assertHoursExact(srv, [BASE, BASE + 1])
        self.assertNoTemporaries()

    def test_connection_reset_is_retried(self):
        srv = self.server(gen_scenario(BASE, 2, rules=[
            rule({"kind": "reset"}, times=1)]))
        res = self.fetch_range(srv, BASE, BASE + 1)
        self.assertRc(res, 0)
        self.assertEqual([e["action"] for e in srv.requests()],
                         ["reset", "data"])
        self.assertHoursExact(srv, [BASE, BASE + 1])

    def test_reset_in_the_middle_of_the_body_is_retried(self):
        srv = self.server(gen_scenario(BASE, 2, events=300, rules=[
            rule({"kind": "reset", "after_fraction": 0.3}, times=1)]))
        res = self.fetch_range(srv, BASE, BASE + 1)
        self.assertRc(res, 0)
        self.assertEqual(len(srv.requests()), 2)
        self.assertHoursExact(srv, [BASE, BASE + 1])
        self.assertNoTemporaries()

    def test_stall_is_aborted_and_retried(self):
        srv = self.server(gen_scenario(BASE, 2, rules=[
            rule({"kind": "stall", "seconds": 30, "after_fraction": 0.2},
                 times=1)]))
        res = self.fetch_range(srv, BASE, BASE + 1, "--stall-timeout", "1",
                               timeout=40)
        self.assertRc(res, 0)
        self.assertLess(res.elapsed, 15, "the stall was waited out")
        reqs = srv.requests()
        self.assertEqual([e["action"] for e in reqs], ["stall", "data"])
        self.assertTrue(reqs[0]["client_gone"])
        self.assertHoursExact(srv, [BASE, BASE + 1])
        self.assertNoTemporaries()

    def test_no_first_byte_is_a_stall_too(self):
        srv = self.server(gen_scenario(BASE, 1, rules=[
            rule({"kind": "slow_first_byte", "seconds": 30}, times=1)]))
        res = self.fetch_range(srv, BASE, BASE, "--stall-timeout", "1",
                               timeout=40)
        self.assertRc(res, 0)
        self.assertLess(res.elapsed, 15)
        self.assertEqual(len(srv.requests()), 2)
        self.assertHoursExact(srv, [BASE])

    def test_slow_first_byte_within_the_stall_timeout(self):
        srv = self.server(gen_scenario(BASE, 1, rules=[
            rule({"kind": "slow_first_byte", "seconds": 1.5})]))
        res = self.fetch_range(srv, BASE, BASE, "--stall-timeout", "5")
        self.assertRc(res, 0)
        self.assertEqual(len(srv.requests()), 1, "a slow server is not a "
                         "dead one")
        self.assertHoursExact(srv, [BASE])


class Corrupt(FetchCase):

    def _corrupt_once(self, where, **zipopts):
        act = {"kind": "corrupt_member", "where": where, "member": 1}
        if zipopts:
            act["zip"] = zipopts
        srv = self.server(gen_scenario(BASE, 2, events=50, parts=2, rules=[
            rule(act, times=1)]))
        res = self.fetch_range(srv, BASE, BASE + 1)
        self.assertRc(res, 0)
        self.assertEqual([e["action"] for e in srv.requests()],
                         ["corrupt_member", "data"])
        self.assertHoursExact(srv, [BASE, BASE + 1])
        self.assertNoTemporaries()

    def test_bad_gzip_crc_is_retried(self):
        self._corrupt_once("gzip_crc")

    def test_bad_deflate_data_is_retried(self):
        self._corrupt_once("deflate")

    def test_bad_zip_crc_is_retried(self):
        self._corrupt_once("zip_crc", compression="stored")

    def test_persistent_corruption_fails_that_window_only(self):
        srv = self.server(gen_scenario(BASE, 4, events=30, parts=2, rules=[
            rule({"kind": "corrupt_member", "where": "gzip_crc",
                  "member": 2}, contains=F(BASE))]))
        res = self.fetch_range(srv, BASE, BASE + 3, "--max-window-hours",
                               "2", "--max-attempts", "3")
        self.assertRc(res, 1)
        bad = [e for e in srv.requests() if e["action"] == "corrupt_member"]
        self.assertEqual(len(bad), 3)
        self.assertFalse(self.hour_path(BASE).exists())
        self.assertFalse(self.hour_path(BASE + 1).exists(),
                         "an hour of the failed window was written")
        self.assertHoursExact(srv, [BASE + 2, BASE + 3])
        self.assertOnlyHours([BASE + 2, BASE + 3])
        self.assertNoTemporaries()

    def test_member_outside_the_window(self):
        srv = self.server(gen_scenario(BASE, 4, rules=[
            rule({"kind": "outside_member", "offset_hours": 1},
                 contains=F(BASE))]))
        res = self.fetch_range(srv, BASE, BASE + 1)
        self.assertRc(res, 1)
        self.assertEqual(self.hour_files(), [],
                         "hours written from a window with a stray member")
        self.assertNoTemporaries()

    def _hostile(self, name):
        srv = self.server(gen_scenario(BASE, 2, rules=[
            rule({"kind": "hostile_name", "name": name})]))

        def snapshot():
            out = set()
            for root, dirs, files in os.walk(self.tmp):
                for f in files + dirs:
                    p = os.path.join(root, f)
                    if not any(p == str(d) or p.startswith(str(d) + os.sep)
                               for d in (self.data, srv.dir)):
                        out.add(p)
            return out
        before = snapshot()
        res = self.fetch_range(srv, BASE, BASE + 1)
        self.assertRc(res, 1)
        self.assertEqual(snapshot() - before, set(),
                         "files created outside the data dir")
        self.assertEqual(self.hour_files(), [])
        self.assertNoTemporaries()
        self.assertEqual([n for n in self.listing() if "x" == n], [])

    def test_hostile_member_name_dotdot(self):
        self._hostile("../../x")

    def test_hostile_member_name_nested_dotdot(self):
        self._hostile("187520/187520_2024-01-01_0#0.json.gz/../../../x")

    def test_hostile_member_name_lookalike(self):
        self._hostile("187520/../187520_2024-01-01_0#7.json.gz")


class Concurrency(FetchCase):

    def test_four_workers_run_four_requests_at_once(self):
        srv = self.server(gen_scenario(BASE, 8, events=20),
                          args=["--barrier", "4",
                                "--barrier-timeout-ms", "3000"])
        res = self.fetch_range(srv, BASE, BASE + 7, "-j", "4",
                               "--max-window-hours", "1", timeout=60)
        self.assertRc(res, 0)
        reqs = srv.requests()
        self.assertEqual(len(reqs), 8)
        peak = max(e["inflight_at_start"] for e in reqs)
        self.assertGreaterEqual(peak, 2, "no overlap at all")
        self.assertEqual(peak, 4, "with -j 4 and a barrier of 4")
        self.assertHoursExact(srv, range(BASE, BASE + 8))

    def test_one_worker_never_overlaps(self):
        srv = self.server(gen_scenario(BASE, 4, events=20),
                          args=["--hold-ms", "100"])
        res = self.fetch_range(srv, BASE, BASE + 3, "-j", "1",
                               "--max-window-hours", "1")
        self.assertRc(res, 0)
        reqs = srv.requests()
        self.assertEqual(len(reqs), 4)
        self.assertEqual(max(e["inflight_at_start"] for e in reqs), 1)
        self.assertHoursExact(srv, range(BASE, BASE + 4))
