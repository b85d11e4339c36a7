"""amp2s3 fetch: files on disk, byte for byte, and the requests it sends."""

import re

from harness import (BASE, F, FetchCase, gen_scenario, hours_of,
                     resident_pages, window_of)


class Basic(FetchCase):

    def test_three_hours_exact(self):
        srv = self.server(gen_scenario(BASE, 3, events=25, parts=3))
        res = self.fetch_range(srv, BASE, BASE + 2)
        self.assertRc(res, 0)
        hours = [BASE, BASE + 1, BASE + 2]
        self.assertHoursExact(srv, hours)
        self.assertOnlyHours(hours)
        self.assertNoTemporaries()
        reqs = srv.requests()
        self.assertTrue(reqs, "no request reached the server")
        self.assertTrue(all(e["auth_ok"] for e in reqs))
        self.assertCoversExactly(reqs, hours)
        for h in hours:
            self.assertEqual(len(self.hour_path(h).read_bytes()
                                 .splitlines()), 25)

    def test_parts_concatenated_in_numeric_order(self):
        # 12 parts of hour 0 stored in lexical member order (#0,#1,#10,#11,
        # #2...), hour 1's parts in reverse order, hour 2 with gaps in the
        # part numbers.
        h0 = [["{\"h\":0,\"part\":%d,\"i\":%d}" % (p, i) for i in range(3)]
              for p in range(12)]
        h1 = [["{\"h\":1,\"part\":%d}" % p] for p in range(4)]
        h2 = [{"part": 9, "lines": ["{\"h\":2,\"part\":9}"]},
              {"part": 10, "lines": ["{\"h\":2,\"part\":10}"]},
              {"part": 2, "lines": ["{\"h\":2,\"part\":2}"]}]
        srv = self.server({
            "hours": {F(BASE): h0, F(BASE + 1): h1, F(BASE + 2): h2},
            "zip": {"member_order": "lexical"},
            "rules": [{"match": {"contains": F(BASE + 1)},
                       "action": {"zip": {"member_order": "reverse"}}}]})
        res = self.fetch_range(srv, BASE, BASE + 2, "--max-window-hours",
                               "1")
        self.assertRc(res, 0)
        self.assertHoursExact(srv, [BASE, BASE + 1, BASE + 2])
        self.assertIn(b"\"part\":9,\"i\":2}\n{\"h\":0,\"part\":10,\"i\":0}",
                      self.hour_path(BASE).read_bytes())

    def test_part_without_trailing_newline(self):
        srv = self.server(gen_scenario(BASE, 2, events=10, parts=3,
                                       zip={"trailing_newline": False}))
        res = self.fetch_range(srv, BASE, BASE + 1)
        self.assertRc(res, 0)
        self.assertHoursExact(srv, [BASE, BASE + 1])

    def test_empty_hour_inside_a_window(self):
        srv = self.server({"hours": {
            F(BASE): [["{\"a\":1}"]],
            F(BASE + 1): [],
            F(BASE + 3): [["{\"d\":4}"], ["{\"d\":5}"]]}})
        res = self.fetch_range(srv, BASE, BASE + 3)
        self.assertRc(res, 0)
        self.assertHoursExact(srv, range(BASE, BASE + 4))
        self.assertOnlyHours(range(BASE, BASE + 4))
        self.assertEqual(self.hour_path(BASE + 1).read_bytes(), b"")
        self.assertEqual(self.hour_path(BASE + 2).read_bytes(), b"")
        self.assertEqual(len(srv.requests()), 1)

    def test_404_window_gives_empty_files(self):
        srv = self.server({})
        res = self.fetch_range(srv, BASE, BASE + 5, "-j", "2")
        self.assertRc(res, 0)
        self.assertOnlyHours(range(BASE, BASE + 6))
        for h in range(BASE, BASE + 6):
            self.assertEqual(self.hour_path(h).read_bytes(), b"")
        reqs = srv.requests()
        self.assertTrue(all(e["status"] == 404 for e in reqs))
        self.assertCoversExactly(reqs, range(BASE, BASE + 6))
        self.assertNoTemporaries()

    def test_member_with_no_lines_gives_empty_file(self):
        srv = self.server({"hours": {F(BASE): [[]],
                                     F(BASE + 1): [["{\"x\":1}"], []]}})
        res = self.fetch_range(srv, BASE, BASE + 1)
        self.assertRc(res, 0)
        self.assertHoursExact(srv, [BASE, BASE + 1])
        self.assertEqual(self.hour_path(BASE).read_bytes(), b"")

    def test_generated_day_with_four_workers(self):
        srv = self.server(gen_scenario(BASE, 24, events=200, parts=3,
                                       empty_every=7))
        res = self.fetch_range(srv, BASE, BASE + 23, "-j", "4",
                               timeout=90)
        self.assertRc(res, 0)
        self.assertHoursExact(srv, range(BASE, BASE + 24))
        self.assertOnlyHours(range(BASE, BASE + 24))
        self.assertCoversExactly(srv.requests(), range(BASE, BASE + 24))
        self.assertNoTemporaries()
        empty = [h for h in range(BASE, BASE + 24) if h % 7 == 0]
        self.assertTrue(empty)
        for h in empty:
            self.assertEqual(self.hour_path(h).read_bytes(), b"")

    def test_hours_leave_the_page_cache(self):
        # fetch alone drops each hour's pages once it is synced: checked
        # before anything reads the files (mincore does not).
        srv = self.server(gen_scenario(BASE, 6, events=300, parts=2))
        res = self.fetch_range(srv, BASE, BASE + 5, "--max-window-hours",
                               "2", "-j", "2")
        self.assertRc(res, 0)
        for h in range(BASE, BASE + 6):
            held, pages = resident_pages(self.hour_path(h))
            self.assertGreaterEqual(pages, 8, F(h))
            self.assertEqual(held, 0, "%s: %d of %d pages still cached"
                             % (F(h), held, pages))
        self.assertHoursExact(srv, range(BASE, BASE + 6))

    def test_rerun_sends_no_request(self):
        srv = self.server(gen_scenario(BASE, 4, empty_every=3))
        res = self.fetch_range(srv, BASE, BASE + 3)
        self.assertRc(res, 0)
        before = {n: (self.data / n).read_bytes() for n in
                  self.hour_files()}
        n1 = len(srv.requests())
        self.assertGreater(n1, 0)
        res = self.fetch_range(srv, BASE, BASE + 3)
        self.assertRc(res, 0)
        self.assertEqual(len(srv.requests()), n1,
                         "the second run sent requests")
        after = {n: (self.data / n).read_bytes() for n in self.hour_files()}
        self.assertEqual(before, after)

    def test_only_missing_hours_are_requested(self):
        srv = self.server(gen_scenario(BASE, 12, events=10))
        self.data.mkdir()
        present = [BASE, BASE + 1, BASE + 4, BASE + 5, BASE + 9]
        for h in present:
            self.hour_path(h).write_bytes(b"{\"precreated\":true}\n")
        leftovers = [".tmp-2024-01-01_02.jsonl.123", ".tmp-zip.456",
                     ".tmp-x"]
        for n in leftovers:
            (self.data / n).write_bytes(b"partial")
        res = self.fetch_range(srv, BASE, BASE + 11, "-j", "2")
        self.assertRc(res, 0)
        missing = [h for h in range(BASE, BASE + 12) if h not in present]
        reqs = srv.requests()
        self.assertCoversExactly(reqs, missing)
        # each window is a run of consecutive missing hours
        for e in reqs:
            for h in hours_of(e):
                self.assertNotIn(h, present, "window %s-%s asks a present "
                                 "hour" % (e["start"], e["end"]))
        self.assertHoursExact(srv, missing)
        for h in present:
            self.assertEqual(self.hour_path(h).read_bytes(),
                             b"{\"precreated\":true}\n")
        for n in leftovers:
            self.assertFalse((self.data / n).exists(),
                             n + " not removed at start")
        self.assertNoTemporaries()

    def test_window_grouping_max_window_hours(self):
        srv = self.server(gen_scenario(BASE, 10, events=5))
        res = self.fetch_range(srv, BASE, BASE + 9, "--max-window-hours",
                               "4", "-j", "1")
        self.assertRc(res, 0)
        reqs = srv.requests()
        sizes = [b - a + 1 for a, b in map(window_of, reqs)]
        self.assertTrue(all(s <= 4 for s in sizes), sizes)
        self.assertGreaterEqual(len(reqs), 3)
        self.assertCoversExactly(reqs, range(BASE, BASE + 10))
        self.assertHoursExact(srv, range(BASE, BASE + 10))

    def test_data_dir_flag(self):
        srv = self.server(gen_scenario(BASE, 2))
        res = self.fetch_range(srv, BASE, BASE + 1, "--data-dir", "out/d")
        self.assertRc(res, 0)
        self.data = self.work / "out" / "d"
        self.assertHoursExact(srv, [BASE, BASE + 1])
        self.assertFalse((self.work / "data").exists())


ZIP_VARIANTS = {
    "stored": {"compression": "stored"},
    "deflated": {"compression": "deflated"},
    "data_descriptor_deflated": {"data_descriptor": True},
    "data_descriptor_stored": {"data_descriptor": True,
                               "compression": "stored"},
    "zip64": {"zip64": True},
    "zip64_eocd": {"zip64": True, "zip64_eocd": True},
    "zip64_data_descriptor_stored": {"zip64": True, "data_descriptor": True,
                                     "compression": "stored"},
    "chunked_transfer": {"chunked": True},
    "shuffled_members": {"member_order": "shuffle"},
}


class ZipVariants(FetchCase):
    """Every zip shape gives the same files; every shape but a shuffled
    member order is unpacked while it downloads (not read a second
    time)."""


def _zip_test(opts):
    def test(self):
        srv = self.server(gen_scenario(BASE, 3, events=40, parts=3,
                                       empty_every=0, zip=opts))
        prom = self.work / "metrics.prom"
        res = self.fetch_range(srv, BASE, BASE + 2, "-j", "1",
                               "--max-window-hours", "3",
                               "--metrics-file", str(prom))
        self.assertRc(res, 0)
        self.assertHoursExact(srv, [BASE, BASE + 1, BASE + 2])
        self.assertOnlyHours([BASE, BASE + 1, BASE + 2])
        self.assertNoTemporaries()
        m = re.search(r"^amp2s3_answers_reread (\d+)$", prom.read_text(),
                      re.M)
        self.assertIsNotNone(m, prom.read_text())
        shuffled = opts.get("member_order") == "shuffle"
        self.assertEqual(int(m.group(1)), 1 if shuffled else 0)
    return test


for _name, _opts in ZIP_VARIANTS.items():
    setattr(ZipVariants, "test_" + _name, _zip_test(_opts))
