"""amp2s3 sync / all / fetch against S3 (s3rver behind the SigV4-verifying
proxy), checked with boto3 as the independent client: object bytes, keys,
files on disk, the export server's and the proxy's request logs.

One S3 for the class, a fresh bucket per test (s3harness.S3Case).
"""
import json
import os
import urllib.parse

from harness import BASE, F, api, gen_scenario, hours_of
from s3harness import PREFIX, S3Case

MiB = 1 << 20


def lines(tag, n):
    """${n} distinct JSON lines (bytes, each ending in a newline)."""
    return b"".join(b'{"t":"%s","i":%d}\n' % (tag.encode(), i)
                    for i in range(n))


class Sync(S3Case):

    def sync(self, *args, env=None, **kw):
        return self.run_amp(*args, cmd="sync",
                            env=env if env is not None else self.s3_env(),
                            **kw)

    def all(self, srv, first, last, *args, env=None, **kw):
        return self.run_amp("--start-date", F(first), "--end-date", F(last),
                            *args, cmd="all",
                            env=env if env is not None else self.s3_env(srv),
                            **kw)

    # 1 -------------------------------------------------------------------
    def test_sync_uploads_every_local_hour(self):
        content = {BASE: lines("a", 3), BASE + 1: b"",
                   BASE + 2: lines("c", 50), BASE + 30: lines("d", 1)}
        self.write_hours(content)
        res = self.sync()
        self.assertRc(res, 0)
        want = {self.key(h): b for h, b in content.items()}
        # Exactly these objects in the whole (fresh) bucket.
        self.assertObjectsExact(want)
        self.assertEqual(self.hour_files(), [], "local files left"
                         + self.explain())
        self.assertNoTemporaries()
        puts = self.proxy_log("PUT")
        self.assertEqual(sorted(p["path"] for p in puts if p["status"] ==
                                200),
                         sorted("/%s/%s" % (self.bucket, k) for k in want))

    # 2 -------------------------------------------------------------------
    def test_sync_removes_hours_already_stored_without_upload(self):
        stored = [BASE, BASE + 2, BASE + 5]
        fresh = [BASE + 1, BASE + 3, BASE + 4]
        for h in stored:
            self.put(self.key(h), b'{"remote":%d}\n' % h)
        etags = {self.key(h): self.client.head_object(
            Bucket=self.bucket, Key=self.key(h))["ETag"] for h in stored}
        mtimes = {self.key(h): self.object_mtime(self.key(h))
                  for h in stored}
        # the stored hours' local copies are the same files (a copy of
        # another size would be a conflict: test_datasafety.SizeConflict*)
        self.write_hours({h: lines("local%d" % h, 4) for h in fresh})
        self.write_hours({h: b'{"remote":%d}\n' % h for h in stored})
        self.s3.clear_requests()
        res = self.sync()
        self.assertRc(res, 0)
        self.assertEqual(self.hour_files(), [], self.explain())
        want = {self.key(h): b'{"remote":%d}\n' % h for h in stored}
        want.update({self.key(h): lines("local%d" % h, 4) for h in fresh})
        self.assertObjectsExact(want)
        for k in etags:
            self.assertEqual(self.client.head_object(
                Bucket=self.bucket, Key=k)["ETag"], etags[k], k)
            self.assertEqual(self.object_mtime(k), mtimes[k], k)
        put_paths = sorted(p["path"] for p in self.proxy_log("PUT"))
        self.assertEqual(put_paths, sorted("/%s/%s" % (self.bucket,
                                                       self.key(h))
                                           for h in fresh))

    # 3 -------------------------------------------------------------------
    def test_rerun_of_all_sends_nothing(self):
        srv = self.server(gen_scenario(BASE, 6, events=10, empty_every=4))
        res = self.all(srv, BASE, BASE + 5, "-j", "2")
        self.assertRc(res, 0)
        n_export = len(srv.requests())
        self.assertGreater(n_export, 0)
        want = {self.key(h): srv.dataset.expected(h)
                for h in range(BASE, BASE + 6)}
        self.assertObjectsExact(want)
        mtimes = {k: self.object_mtime(k) for k in want}
        self.s3.clear_requests()
        res = self.all(srv, BASE, BASE + 5, "-j", "2")
        self.assertRc(res, 0)
        self.assertEqual(len(srv.requests()), n_export,
                         "the rerun sent export requests")
        writes = [r for r in self.proxy_log() if r["method"] != "GET"]
        self.assertEqual(writes, [], "the rerun wrote to S3")
        self.assertEqual({k: self.object_mtime(k) for k in want}, mtimes)
        self.assertObjectsExact(want)
        self.assertEqual(self.hour_files(), [])

    # 4 -------------------------------------------------------------------
    def test_all_end_to_end_48_hours(self):
        srv = self.server(gen_scenario(BASE, 48, events=30, parts=3,
                                       empty_every=5))
        res = self.all(srv, BASE, BASE + 47, "-j", "4", "-u", "4",
                       timeout=90)
        self.assertRc(res, 0)
        hours = range(BASE, BASE + 48)
        want = {self.key(h): srv.dataset.expected(h) for h in hours}
        self.assertTrue(any(v == b"" for v in want.values()))
        self.assertObjectsExact(want)
        self.assertEqual(self.hour_files(), [], "hour files left in the "
                         "data dir" + self.explain())
        self.assertNoTemporaries()
        self.assertCoversExactly(srv.requests(), hours)

    # 5 -------------------------------------------------------------------
    def test_fetch_skips_hours_present_in_s3(self):
        srv = self.server(gen_scenario(BASE, 12, events=10))
        stored = [BASE, BASE + 1, BASE + 2, BASE + 3, BASE + 8, BASE + 9]
        for h in stored:
            self.put(self.key(h), b'{"s3":%d}\n' % h)
        # Same hour name outside the prefix: must not count.
        self.put("python-import-old/" + api.hour_file_name(BASE + 5), b"x")
        self.s3.clear_requests()
        res = self.run_amp("--start-date", F(BASE), "--end-date",
                           F(BASE + 11), "-j", "2", cmd="fetch",
                           env=self.s3_env(srv))
        self.assertRc(res, 0)
        missing = [h for h in range(BASE, BASE + 12) if h not in stored]
        reqs = srv.requests()
        self.assertCoversExactly(reqs, missing)
        for e in reqs:
            for h in hours_of(e):
                self.assertNotIn(h, stored)
        self.assertOnlyHours(missing)
        self.assertHoursExact(srv, missing)
        # fetch lists, never writes.
        self.assertEqual([r for r in self.proxy_log()
                          if r["method"] != "GET"], [])
        self.assertGreaterEqual(len(self.proxy_log("GET")), 1)

    # 6 -------------------------------------------------------------------
    def test_listing_follows_every_page(self):
        n = 30
        srv = self.server(gen_scenario(BASE, n + 2, events=5))
        for h in range(BASE, BASE + n):
            self.put(self.key(h), b'{"s3":%d}\n' % h)
        self.put("python-import-old/" + api.hour_file_name(BASE + n), b"x")
        self.s3.clear_requests()
        env = self.s3_env(srv, AMP2S3_S3_MAX_KEYS="7")
        res = self.run_amp("--start-date", F(BASE), "--end-date",
                           F(BASE + n + 1), cmd="fetch", env=env)
        self.assertRc(res, 0)
        self.assertCoversExactly(srv.requests(), [BASE + n, BASE + n + 1])
        self.assertOnlyHours([BASE + n, BASE + n + 1])
        lists = self.proxy_log("GET")
        self.assertEqual(len(lists), 5, "30 keys, 7 per page: %s" %
                         [r["query"] for r in lists])
        for r in lists:
            self.assertIn("max-keys=7", r["query"])
        for r in lists[1:]:
            self.assertIn("continuation-token=", r["query"])

        # sync sees all 30 too: local copies of stored hours are removed
        # without an upload; the two fetched ones go up.
        self.write_hours({h: b'{"s3":%d}\n' % h for h in range(BASE,
                                                             BASE + n)})
        self.s3.clear_requests()
        res = self.sync(env=env)
        self.assertRc(res, 0)
        self.assertEqual(self.hour_files(), [], self.explain())
        want = {self.key(h): b'{"s3":%d}\n' % h for h in range(BASE,
                                                              BASE + n)}
        for h in (BASE + n, BASE + n + 1):
            want[self.key(h)] = srv.dataset.expected(h)
        self.assertObjectsExact(want, PREFIX)
        self.assertEqual(sorted(p["path"] for p in self.proxy_log("PUT")),
                         sorted("/%s/%s" % (self.bucket, self.key(h))
                                for h in (BASE + n, BASE + n + 1)))

    # 7 -------------------------------------------------------------------
    def test_prefix_needing_encoding(self):
        prefix = "python import/ä+=&/"
        content = {BASE: lines("p0", 2), BASE + 1: b"", BASE + 2:
                   lines("p2", 3)}
        self.write_hours(content)
        res = self.sync("--s3-prefix", prefix)
        self.assertRc(res, 0)
        self.assertObjectsExact({self.key(h, prefix): b
                                 for h, b in content.items()})
        self.assertEqual(self.hour_files(), [])
        # The listing with that prefix finds them: fetch asks only for
        # the one hour not there.
        srv = self.server(gen_scenario(BASE, 4, events=5))
        res = self.run_amp("--start-date", F(BASE), "--end-date",
                           F(BASE + 3), "--s3-prefix", prefix, cmd="fetch",
                           env=self.s3_env(srv))
        self.assertRc(res, 0)
        self.assertCoversExactly(srv.requests(), [BASE + 3])
        self.assertOnlyHours([BASE + 3])

    # 8 -------------------------------------------------------------------
    def test_multipart_upload(self):
        chunks, size, i = [], 0, 0
        while size < 3 * MiB + MiB // 2:
            chunks.append(b'{"i":%d,"pad":"%s"}\n' % (i, b"x" * (i % 200)))
            size += len(chunks[-1])
            i += 1
        big = b"".join(chunks)
        self.write_hours({BASE: big, BASE + 1: lines("small", 3)})
        res = self.sync("--multipart-threshold-mb", "1",
                        env=self.s3_env(AMP2S3_S3_PART_SIZE_MB="1"))
        self.assertRc(res, 0)
        self.assertObjectsExact({self.key(BASE): big,
                                 self.key(BASE + 1): lines("small", 3)})
        self.assertEqual(self.pending_uploads(), [])
        self.assertEqual(self.hour_files(), [])
        big_path = "/%s/%s" % (self.bucket, self.key(BASE))
        parts = [r for r in self.proxy_log("PUT")
                 if r["path"] == big_path]
        self.assertEqual(len(parts), 4, [p["query"] for p in parts])
        self.assertTrue(all("partNumber=" in p["query"] and p["status"] ==
                            200 for p in parts), parts)
        posts = [r["query"].split("=")[0] for r in self.proxy_log("POST")]
        self.assertEqual(sorted(posts), ["uploadId", "uploads"])

    # 9 -------------------------------------------------------------------
    def test_wrong_secret_is_fatal(self):
        secret = "Wrong-Secret-k7Qz9XpL"
        content = {BASE: lines("w", 2), BASE + 1: b"", BASE + 2:
                   lines("w2", 5)}
        self.write_hours(content)
        res = self.sync(env=self.s3_env(AWS_PYTHON_USER_SECRET_KEY=secret))
        self.assertRc(res, 3)
        errors = [x for x in res.stderr.splitlines() if " error: " in x]
        self.assertEqual(len(errors), 1, res.stderr)
        self.assertIn(self.bucket, errors[0])
        self.assertNotIn(secret, res.stderr + res.stdout)
        self.assertEqual(self.local_bytes(),
                         {api.hour_file_name(h): b
                          for h, b in content.items()})
        self.assertEqual(self.keys(), {})

    # 10 ------------------------------------------------------------------
    def test_missing_bucket_is_fatal(self):
        srv = self.server(gen_scenario(BASE, 4, events=5))
        content = {BASE: lines("m", 2), BASE + 1: b""}
        self.write_hours(content)
        missing = "no-such-bucket-q7"
        res = self.all(srv, BASE, BASE + 3,
                       env=self.s3_env(srv, bucket=missing))
        self.assertRc(res, 3)
        errors = [x for x in res.stderr.splitlines() if " error: " in x]
        self.assertEqual(len(errors), 1, res.stderr)
        self.assertIn(missing, errors[0])
        self.assertEqual(self.local_bytes(),
                         {api.hour_file_name(h): b
                          for h, b in content.items()})
        self.assertEqual(srv.requests(), [], "fetched without a listing")

    # 11 ------------------------------------------------------------------
    def test_all_uploads_while_fetching(self):
        n = 6
        srv = self.server(gen_scenario(BASE, n, events=10, empty_every=0),
                          args=("--hold-ms", "400"))
        res = self.all(srv, BASE, BASE + n - 1, "-j", "1",
                       "--max-window-hours", "1", "-u", "2")
        self.assertRc(res, 0)
        want = {self.key(h): srv.dataset.expected(h)
                for h in range(BASE, BASE + n)}
        self.assertObjectsExact(want)
        reqs = srv.requests()
        self.assertEqual(len(reqs), n)
        last_end = max(e["t_end"] for e in reqs)
        first_put = min(self.object_mtime(k) for k in want)
        self.assertLess(first_put, last_end,
                        "first object stored %.3fs after the last export "
                        "request ended: no overlap%s"
                        % (first_put - last_end, self.explain()))
        # Stronger: stored before the last request even started.
        self.assertLess(first_put, max(e["t_start"] for e in reqs))

    # 12 ------------------------------------------------------------------
    def test_dev_layout_equals_s3(self):
        srv = self.server(gen_scenario(BASE, 8, events=10, empty_every=3))
        res = self.all(srv, BASE, BASE + 7, "--dev", "-j", "2",
                       env=self.env(srv))
        self.assertRc(res, 0)
        dev = self.work / "s3_dev" / "python-import"
        dev_files = {n: (dev / n).read_bytes() for n in os.listdir(dev)}
        self.assertEqual(self.hour_files(), [])
        res = self.all(srv, BASE, BASE + 7, "-j", "2")
        self.assertRc(res, 0)
        s3 = self.objects()
        self.assertEqual(sorted(s3), sorted(PREFIX + n for n in dev_files),
                         "s3_dev/ and S3 differ in layout")
        for n, b in dev_files.items():
            self.assertEqual(s3[PREFIX + n], b, n)
        self.assertEqual(sorted(dev_files),
                         sorted(api.hour_file_name(h)
                                for h in range(BASE, BASE + 8)))
        # nothing else in s3_dev/ either
        self.assertEqual(os.listdir(self.work / "s3_dev"), ["python-import"])

    # 13 ------------------------------------------------------------------
    def test_failed_upload_keeps_file_and_fails_run(self):
        content = {BASE: lines("f0", 2), BASE + 1: lines("f1", 3),
                   BASE + 2: b""}
        self.write_hours(content)
        bad = self.key(BASE + 1)
        self.s3.add_fault(method="PUT", path_contains=bad.split("/")[-1],
                          status=500, code="InternalError", times=1000)
        res = self.sync("--max-attempts", "2")
        self.assertRc(res, 1)
        self.assertEqual(self.local_bytes(),
                         {api.hour_file_name(BASE + 1): content[BASE + 1]})
        self.assertObjectsExact({self.key(h): content[h]
                                 for h in (BASE, BASE + 2)})
        tries = [r for r in self.proxy_log("PUT") if r["path"].endswith(
            "/" + bad)]
        self.assertEqual([r["status"] for r in tries], [500, 500])
        # A later run with S3 healthy again uploads it.
        self.s3.clear_faults()
        res = self.sync()
        self.assertRc(res, 0)
        self.assertEqual(self.hour_files(), [])
        self.assertObjectsExact({self.key(h): b for h, b in content.items()})


def H(s):
    """The hour of "YYYYMMDDTHH"."""
    return api.parse_hour(s)


class ScopedListing(S3Case):
    """A run asks S3 only about its own hours: one ListObjectsV2 prefix
    per month piece of the range and of the local hours, whatever else the
    bucket holds."""

    def prefixes(self):
        """The prefix of each ListObjectsV2 request since clear_requests
        (every one of them must be a listing with a prefix)."""
        out = []
        for r in self.proxy_log("GET"):
            q = dict(urllib.parse.parse_qsl(r["query"]))
            self.assertEqual(q.get("list-type"), "2", r)
            out.append(q["prefix"])
        return out

    def fetch(self, srv, first, last, *args, env=None):
        return self.run_amp("--start-date", F(first), "--end-date", F(last),
                            *args, cmd="fetch",
                            env=env if env is not None else self.s3_env(srv))

    def test_fetch_lists_only_its_range(self):
        first, last = H("20240101T00"), H("20240102T23")
        srv = self.server(gen_scenario(first, 48, events=3))
        stored = [first, first + 7, last]
        # The bucket's history around the range: other days, months and
        # years, and a key in range under another prefix.
        others = [H("20231231T23"), H("20240103T00"), H("20240110T05"),
                  H("20240201T00"), H("20250101T01")]
        for h in stored + others:
            self.put(self.key(h), b'{"s3":%d}\n' % h)
        self.put("python-import-old/" + api.hour_file_name(first + 1), b"x")
        self.s3.clear_requests()
        res = self.fetch(srv, first, last,
                         env=self.s3_env(srv, AMP2S3_S3_MAX_KEYS="2"))
        self.assertRc(res, 0)
        # Jan 1 and 2 share "2024-01-0"; the 10th is the only other key
        # under it (3 stored + 1 = 4 keys: 2 pages of 2).
        self.assertEqual(self.prefixes(), [PREFIX + "2024-01-0"] * 2)
        want = [h for h in range(first, last + 1) if h not in stored]
        self.assertCoversExactly(srv.requests(), want)
        self.assertOnlyHours(want)
        self.assertIn("3 of this run's hours in", res.stderr)

    def test_range_across_months_lists_each_piece(self):
        first, last = H("20240131T20"), H("20240201T03")
        srv = self.server(gen_scenario(first, 8, events=3))
        stored = [first + 1, last]
        for h in stored + [H("20240130T20"), H("20240202T00")]:
            self.put(self.key(h), b'{"s3":%d}\n' % h)
        self.s3.clear_requests()
        res = self.fetch(srv, first, last)
        self.assertRc(res, 0)
        self.assertEqual(sorted(self.prefixes()),
                         [PREFIX + "2024-01-31_2", PREFIX + "2024-02-01_0"])
        want = [h for h in range(first, last + 1) if h not in stored]
        self.assertCoversExactly(srv.requests(), want)
        self.assertOnlyHours(want)

    def test_sync_lists_the_months_of_its_local_hours(self):
        local = {H("20240105T03"): b'{"a":1}\n', H("20240310T07"): b"",
                 H("20240311T01"): b'{"c":3}\n'}
        already = H("20240311T01")
        self.put(self.key(already), b'{"c":3}\n')
        self.put(self.key(H("20240312T00")), b'{"d":4}\n')
        self.write_hours(local)
        self.s3.clear_requests()
        res = self.run_amp(cmd="sync", env=self.s3_env())
        self.assertRc(res, 0)
        self.assertEqual(sorted(self.prefixes()),
                         [PREFIX + "2024-01-05_03.jsonl",
                          PREFIX + "2024-03-1"])
        self.assertEqual(self.hour_files(), [])
        puts = sorted(r["path"] for r in self.proxy_log("PUT"))
        self.assertEqual(puts, sorted("/%s/%s" % (self.bucket, self.key(h))
                                      for h in local if h != already))
        # Nothing local: nothing to ask.
        self.s3.clear_requests()
        res = self.run_amp(cmd="sync", env=self.s3_env())
        self.assertRc(res, 0)
        self.assertEqual(self.proxy_log(), [])

    def test_long_ranges_list_each_month_up_to_ten_years(self):
        stored = [H("20230615T12"), H("20240101T00"), H("20240831T23"),
                  H("20240901T00")]
        for h in stored:
            self.put(self.key(h), b"")

        def status(first, last):
            self.s3.clear_requests()
            res = self.run_amp("--start-date", first, "--end-date", last,
                               "--json", cmd="status", env=self.s3_env())
            self.assertRc(res, 1)
            return sorted(self.prefixes()), json.loads(res.stdout)["empty"]

        # Eight months: eight prefixes, listed in parallel.
        self.assertEqual(status("20240101T00", "20240831T23"),
                         ([PREFIX + "2024-%02d-" % m for m in range(1, 9)],
                          2))
        # Two years: 24 month prefixes, 8 at a time.
        self.assertEqual(status("20230101T00", "20241231T23"),
                         ([PREFIX + "%d-%02d-" % (y, m) for y in (2023, 2024)
                           for m in range(1, 13)], 4))
        # Ten years (120 months): still one prefix each.
        self.assertEqual(status("20150101T00", "20241231T23"),
                         ([PREFIX + "%d-%02d-" % (y, m)
                           for y in range(2015, 2025)
                           for m in range(1, 13)], 4))
        # Ten years and a month (121 months): the whole prefix instead.
        self.assertEqual(status("20150101T00", "20250131T23"),
                         ([PREFIX], 4))

    def test_one_failing_listing_fails_the_run(self):
        first, last = H("20240101T00"), H("20240430T23")
        srv = self.server(gen_scenario(first, 24, events=2))
        self.write_hours({H("20240105T00"): b'{"l":1}\n'})
        before = self.local_bytes()
        # Denied on one month of four: fatal, one line, nothing fetched,
        # uploaded or removed.
        self.s3.add_fault(method="GET", query_contains="2024-03-",
                          status=403, code="AccessDenied", times=1000)
        self.s3.clear_requests()
        res = self.run_amp("--start-date", F(first), "--end-date", F(last),
                           cmd="all", env=self.s3_env(srv))
        self.assertRc(res, 3)
        errors = [x for x in res.stderr.splitlines() if " error: " in x]
        self.assertEqual(len(errors), 1, res.stderr)
        self.assertIn(self.bucket, errors[0])
        self.assertEqual(srv.requests(), [])
        self.assertEqual(self.proxy_log("PUT"), [])
        self.assertEqual(self.local_bytes(), before)
        self.assertIn(PREFIX + "2024-03-", self.prefixes())
        # A listing that keeps failing (500) is not fatal but the run
        # stops before it fetches anything: exit 1.
        self.s3.clear_faults()
        self.s3.add_fault(method="GET", query_contains="2024-02-",
                          status=500, code="InternalError", times=1000)
        res = self.run_amp("--start-date", F(first), "--end-date", F(last),
                           "--max-attempts", "2", cmd="all",
                           env=self.s3_env(srv))
        self.assertRc(res, 1)
        self.assertEqual(srv.requests(), [])
        self.assertEqual(self.local_bytes(), before)
