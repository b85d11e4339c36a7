"""--refresh re-exports stored hours and replaces only those that differ;
--dry-run prints the plan and changes nothing (issue 19).

A bucket as the earlier tool may have left it: one hour cut short, one
missing, one 0-byte object for an hour that had events, and hours that
are right.  What was rewritten is read from the verifying proxy's request
log (PUTs) and from s3rver's object files (their mtimes), not from
amp2s3's log.
"""
import fcntl
import json
import os

from harness import BASE, F, api, gen_scenario
from s3harness import S3Case

N = 6                      # hours BASE .. BASE+5
TRUNC, MISSING, ZERO = BASE, BASE + 1, BASE + 2
GOOD = [BASE + 3, BASE + 4, BASE + 5]


class Refresh(S3Case):

    def setUp(self):
        super().setUp()
        self.srv = self.server(gen_scenario(BASE, N, events=30, parts=2))
        ds = self.srv.dataset
        self.want = {self.key(h): ds.expected(h) for h in range(BASE,
                                                                  BASE + N)}
        for h in GOOD:
            self.put(self.key(h), ds.expected(h))
        self.put(self.key(TRUNC), ds.expected(TRUNC)[:100])
        self.put(self.key(ZERO), b"")
        self.before = {h: self.object_mtime(self.key(h)) for h in GOOD}
        self.s3.clear_requests()

    def run_range(self, *args, cmd="all", **kw):
        return self.run_amp("--start-date", F(BASE), "--end-date",
                            F(BASE + N - 1), *args, cmd=cmd,
                            env=self.s3_env(self.srv), **kw)

    def puts(self):
        return sorted(r["path"].split("/", 2)[2]
                      for r in self.proxy_log("PUT"))

    def test_dry_run_sends_nothing_and_changes_nothing(self):
        res = self.run_range("--refresh", "--dry-run", "--json")
        self.assertRc(res, 0)
        plan = json.loads(res.stdout)
        self.assertEqual((plan["dry_run"], plan["command"], plan["refresh"]),
                         (True, "all", True))
        self.assertEqual(plan["fetch"]["hours"], N)
        self.assertEqual(sum(w["hours"] for w in plan["fetch"]["windows"]),
                         N)
        self.assertEqual((plan["refresh_stored"], plan["refresh_new"]),
                         (N - 1, 1))
        self.assertEqual(self.srv.requests(), [], "an export request")
        self.assertEqual([r["method"] for r in self.proxy_log()
                          if r["method"] != "GET"], [])
        self.assertFalse(self.data.exists() and self.listing(),
                         self.listing())
        got = self.objects()
        self.assertEqual(got[self.key(TRUNC)],
                         self.want[self.key(TRUNC)][:100])
        self.assertEqual(got[self.key(ZERO)], b"")
        self.assertNotIn(self.key(MISSING), got)

    def test_refresh_repairs_exactly_the_bad_hours(self):
        mdir = self.tmp / "m"
        mdir.mkdir()
        res = self.run_range("--refresh", "--metrics-file",
                             mdir / "amp2s3.prom")
        self.assertRc(res, 0)
        self.assertObjectsExact(self.want)
        # Only the three bad hours were written; the good ones kept
        # their objects (no PUT, same file in s3rver).
        self.assertEqual(self.puts(), sorted(self.key(h) for h in
                                             (TRUNC, MISSING, ZERO)))
        for h in GOOD:
            self.assertEqual(self.object_mtime(self.key(h)), self.before[h])
        self.assertEqual(self.hour_files(), [])
        m = dict(line.split() for line in
                 (mdir / "amp2s3.prom").read_text().splitlines()
                 if line.startswith("amp2s3_hours_"))
        self.assertEqual((m["amp2s3_hours_checked"],
                          m["amp2s3_hours_unchanged"],
                          m["amp2s3_hours_replaced"],
                          m["amp2s3_hours_new"]), ("5", "3", "2", "1"))
        # Every hour of the range was asked for again.
        self.assertCoversExactly(self.srv.requests(),
                                 range(BASE, BASE + N))

    def test_fetch_refresh_keeps_what_differs(self):
        res = self.run_range("--refresh", cmd="fetch")
        self.assertRc(res, 0)
        # The hours that differ or the store lacks stay, exact; the ones
        # it holds with the same bytes are gone from the data directory.
        self.assertOnlyHours([TRUNC, MISSING, ZERO])
        self.assertHoursExact(self.srv, [TRUNC, MISSING, ZERO])
        self.assertEqual(self.puts(), [])

    def test_without_refresh_nothing_stored_is_looked_at_again(self):
        res = self.run_range()
        self.assertRc(res, 0)
        self.assertCoversExactly(self.srv.requests(), [MISSING])
        self.assertEqual(self.get(self.key(TRUNC)),
                         self.want[self.key(TRUNC)][:100])


class RefreshMultipart(S3Case):
    """An hour above the multipart threshold: its object is proven by the
    SHA-256 in its metadata (one HEAD), never read back."""

    def test_unchanged_multipart_hour_is_proven_by_its_metadata(self):
        srv = self.server(gen_scenario(BASE, 1, events=9000, parts=3))
        env = self.s3_env(srv, AMP2S3_S3_PART_SIZE_MB="1")
        args = ("--start-date", F(BASE), "--end-date", F(BASE),
                "--multipart-threshold-mb", "1")
        self.assertRc(self.run_amp(*args, cmd="all", env=env), 0)
        data = srv.dataset.expected(BASE)
        self.assertGreater(len(data), 1 << 20)
        self.assertObjectsExact({self.key(BASE): data})
        # As on S3, a multipart object's ETag is no MD5 of its bytes.
        head = self.client.head_object(Bucket=self.bucket,
                                       Key=self.key(BASE))
        self.assertRegex(head["ETag"], r'^"[0-9a-f]{32}-[0-9]+"$')
        self.s3.clear_requests()
        self.assertRc(self.run_amp(*args, "--refresh", cmd="all", env=env),
                      0)
        methods = [r["method"] for r in self.proxy_log()]
        self.assertIn("HEAD", methods)
        self.assertEqual([r for r in self.proxy_log("GET")
                          if "list-type" not in r["query"]], [])
        self.assertNotIn("PUT", methods)
        self.assertNotIn("POST", methods)
        self.assertEqual(self.hour_files(), [])


class SyncProof(S3Case):
    """sync deletes a local hour only when the store provably holds its
    bytes: the same size is no proof."""

    def test_same_size_other_bytes_is_a_conflict(self):
        good, bad = b'{"a":1}\n', b'{"a":2}\n'
        self.put(self.key(BASE), good)
        self.put(self.key(BASE + 1), good)
        self.write_hours({BASE: good, BASE + 1: bad})
        res = self.run_amp(cmd="sync", env=self.s3_env())
        self.assertRc(res, 1)
        self.assertEqual(self.local_bytes(),
                         {api.hour_file_name(BASE + 1): bad})
        self.assertObjectsExact({self.key(BASE): good,
                                 self.key(BASE + 1): good})

    def test_dry_run_lists_and_touches_nothing_even_under_the_lock(self):
        good = b'{"a":1}\n'
        self.put(self.key(BASE), good)
        self.put(self.key(BASE + 1), good)
        self.write_hours({BASE: good, BASE + 1: b'{"a":2}\n',
                          BASE + 2: b'{"b":3}\n'})
        before = self.local_bytes()
        self.s3.clear_requests()
        # A real run holds the data directory's lock meanwhile.
        with open(self.data / ".amp2s3.lock", "w") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX | fcntl.LOCK_NB)
            res = self.run_amp("--dry-run", "--json", cmd="sync",
                               env=self.s3_env())
        self.assertRc(res, 0)
        plan = json.loads(res.stdout)
        self.assertEqual([x["hour"] for x in plan["upload"]], [F(BASE + 2)])
        self.assertEqual([x["hour"] for x in plan["delete"]], [F(BASE)])
        self.assertEqual([(x["hour"], x["why"]) for x in plan["conflict"]],
                         [(F(BASE + 1), "same size, other bytes")])
        self.assertEqual(self.local_bytes(), before)
        self.assertEqual([r["method"] for r in self.proxy_log()
                          if r["method"] not in ("GET", "HEAD")], [])
        self.assertObjectsExact({self.key(BASE): good,
                                 self.key(BASE + 1): good})
        # The text form says the same.
        res = self.run_amp("--dry-run", cmd="sync", env=self.s3_env())
        self.assertRc(res, 0)
        self.assertIn("upload: 1 local hours", res.stdout)
        self.assertIn("delete: 1 local copies", res.stdout)
        self.assertIn("conflict: 1 local hours", res.stdout)


class RefreshDev(S3Case):
    """The same with --dev (files compared byte for byte), --gzip and a
    Hive-style key template."""

    def test_dev_gzip_template(self):
        srv = self.server(gen_scenario(BASE, 3, events=20, parts=2))
        tmpl = "{prefix}dt={date}/hour={hour}/part.jsonl"
        args = ("--start-date", F(BASE), "--end-date", F(BASE + 2), "--dev",
                "--gzip", "--key-template", tmpl)
        env = self.env(srv)
        self.assertRc(self.run_amp(*args, cmd="all", env=env), 0)
        dev = self.work / "s3_dev" / "python-import"

        def obj(h):
            t = api.fmt_hour(h)
            return dev / ("dt=%s-%s-%s" % (t[:4], t[4:6], t[6:8])) / \
                ("hour=%s" % t[9:11]) / "part.jsonl.gz"
        good = obj(BASE).read_bytes()
        obj(BASE + 1).write_bytes(good[:10])     # cut short
        os.unlink(obj(BASE + 2))                 # missing
        st = {h: os.stat(obj(h)) for h in (BASE, BASE + 1)}
        res = self.run_amp(*args, "--refresh", cmd="all", env=env)
        self.assertRc(res, 0)
        self.assertEqual(obj(BASE).read_bytes(), good)
        # Unchanged: the very same file, not rewritten.
        self.assertEqual(os.stat(obj(BASE)).st_ino, st[BASE].st_ino)
        self.assertNotEqual(obj(BASE + 1).read_bytes(), good[:10])
        self.assertNotEqual(os.stat(obj(BASE + 1)).st_ino,
                            st[BASE + 1].st_ino)
        import gzip
        for h in range(BASE, BASE + 3):
            self.assertEqual(gzip.decompress(obj(h).read_bytes()),
                             srv.dataset.expected(h))
        self.assertEqual(self.hour_files(), [])
