"""Issue 16, "trust nothing without proof": the paths on which amp2s3 lost
data silently, accepted hostile answers, hung, exposed hour files or
deleted hours it had not stored.  Each test drives the real binary against
the scripted Export API (tests/server/export_api.py), a --dev folder or
S3 (s3rver behind the verifying proxy) and checks files, objects and the
server's request log, never log text.

These tests are written against the intended behaviour.  Above each one,
"today:" says how the binary built from the code before the fix fails it
(or that it is a regression check that passes today).
"""

import json
import os
import signal
import stat
import subprocess
import time

from harness import (BASE, F, FetchCase, api, gen_scenario, poll, preexec)
from s3harness import PREFIX, S3Case
from test_reliability import FaultProxy

MiB = 1 << 20
HTML_404 = ("<!DOCTYPE html>\n<html><head><title>404 Not Found</title>"
            "</head><body><h1>Not Found</h1><p>The requested URL was not "
            "found on this server.</p><hr><address>nginx</address></body>"
            "</html>\n")


def rule(action, times=None, **match):
    r = {"match": match, "action": action}
    if times is not None:
        r["times"] = times
    return r


def lines(tag, n):
    """${n} distinct JSON lines (bytes, each ending in a newline)."""
    return b"".join(b'{"t":"%s","i":%d}\n' % (tag.encode(), i)
                    for i in range(n))


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


class SafetyCase(FetchCase):
    """FetchCase plus the checks these tests share."""

    FAST = ["--retry-base-ms", "10", "--retry-max-ms", "100"]

    def dev_files(self, root=None):
        """{path relative to the --dev folder: bytes} of every file."""
        root = root or self.work / "s3_dev"
        out = {}
        for d, _, files in os.walk(root):
            for f in files:
                p = os.path.join(d, f)
                out[os.path.relpath(p, root)] = open(p, "rb").read()
        return out

    def assertAbsent(self, *hours):
        for h in hours:
            self.assertFalse(self.hour_path(h).exists(),
                             "%s was written%s" % (self.hour_path(h).name,
                                                   self.explain()))

    def status(self, *args, env=None):
        return self.run_amp(*args, cmd="status", defaults=False,
                            env=env if env is not None else self.env(
                                AMP_API_KEY=None, AMP_SECRET_KEY=None))

    @staticmethod
    def grid_cells(text, date):
        """The 24 hour cells of ${date}'s row of the status grid."""
        for line in text.split("\n"):
            if line.startswith(date + " "):
                return line[len(date) + 1:len(date) + 1 + 24]
        raise AssertionError("no row for %s in:\n%s" % (date, text))


# ============================================= 1. a 404 that is not the API's

class ForeignNotFound(SafetyCase):
    """Only the Export API's own 404 ("Raw data files were not found.")
    means "no events".  A 404 from a proxy, a CDN or a wrong path fails the
    window; a run where every window got one is a configuration error."""

    HTML = {"status": 404, "body": HTML_404, "content_type": "text/html"}

    # today: exit 0 and four 0-byte "empty" hour files (data lost for good:
    # a rerun never asks for them again).
    def test_html_404_on_every_window_exits_2_and_writes_nothing(self):
        srv = self.server(gen_scenario(BASE, 4, empty_every=0,
                                       rules=[rule(self.HTML)]))
        res = self.fetch_range(srv, BASE, BASE + 3, "-j", "2",
                               "--max-window-hours", "2", "--max-attempts",
                               "2", *self.FAST, timeout=30)
        self.assertEqual(self.hour_files(), [], "hours recorded from a "
                         "404 page" + self.explain(res))
        self.assertNoTemporaries()
        self.assertRc(res, 2)
        self.assertTrue(srv.requests(), "no request was sent")

    # today: exit 0; 0-byte hours in data/ and 0-byte objects in
    # s3_dev/python-import/ for every hour of the range.
    def test_wrong_api_path_exits_2_and_stores_nothing(self):
        srv = self.server(gen_scenario(BASE, 4, empty_every=0))
        env = self.env(srv, AMP_API_URL=srv.root + "/wrong/path")
        res = self.run_amp("--start-date", F(BASE), "--end-date",
                           F(BASE + 3), "--dev", "-j", "2",
                           "--max-window-hours", "2", "--max-attempts", "2",
                           *self.FAST, cmd="all", env=env, timeout=30)
        reqs = srv.requests()
        self.assertTrue(reqs and all(e["action"] == "bad_path"
                                     for e in reqs), reqs)
        self.assertEqual(self.dev_files(), {}, "hours stored from a "
                         "wrong path's 404" + self.explain(res))
        self.assertEqual(self.hour_files(), [])
        self.assertNoTemporaries()
        self.assertRc(res, 2)

    # today: exit 0; the two windows that got the HTML page are written as
    # 0-byte hours.
    def test_some_windows_good_others_html_404_exit_1(self):
        bad = [BASE + 2, BASE + 3]
        srv = self.server(gen_scenario(BASE, 6, empty_every=0, rules=[
            rule(self.HTML, contains=[F(h) for h in bad])]))
        res = self.fetch_range(srv, BASE, BASE + 5, "-j", "3",
                               "--max-window-hours", "1", "--max-attempts",
                               "2", *self.FAST, timeout=30)
        good = [h for h in range(BASE, BASE + 6) if h not in bad]
        self.assertAbsent(*bad)
        self.assertHoursExact(srv, good)
        self.assertOnlyHours(good)
        self.assertNoTemporaries()
        self.assertRc(res, 1)

    # today: passes (regression check: the API's own 404 body still means
    # complete, empty hours).
    def test_the_apis_own_404_still_means_empty_hours(self):
        empty = [BASE + 1, BASE + 3]
        srv = self.server(gen_scenario(BASE, 4, empty_every=0, rules=[
            rule({"status": 404}, contains=[F(h) for h in empty])]))
        res = self.fetch_range(srv, BASE, BASE + 3, "-j", "2",
                               "--max-window-hours", "1", *self.FAST)
        self.assertRc(res, 0)
        for h in empty:
            self.assertEqual(self.hour_path(h).read_bytes(), b"",
                             self.hour_path(h).name)
        self.assertHoursExact(srv, [BASE, BASE + 2])
        self.assertOnlyHours(range(BASE, BASE + 4))
        self.assertEqual(sorted(e["status"] for e in srv.requests()),
                         [200, 200, 404, 404])


# ================================== 2. a stored object of another size (--dev)

class SizeConflictDev(SafetyCase):
    """A complete local hour whose stored object is shorter (a cut upload,
    a 0-byte object) is never deleted; the run reports the conflict."""

    def layout(self):
        """Local hours 00..02; the store holds 00 cut short, 01 empty and
        02 equal.  Returns ({hour: local bytes}, {hour: stored bytes})."""
        store = self.work / "s3_dev" / PREFIX
        store.mkdir(parents=True)
        self.data.mkdir()
        local = {BASE: lines("a", 40), BASE + 1: lines("b", 30),
                 BASE + 2: lines("c", 20)}
        stored = {BASE: local[BASE][:len(local[BASE]) // 2], BASE + 1: b"",
                  BASE + 2: local[BASE + 2]}
        for h, b in local.items():
            self.hour_path(h).write_bytes(b)
        for h, b in stored.items():
            (store / api.hour_file_name(h)).write_bytes(b)
        return local, stored

    # today: exit 0; "already stored: removed" deletes the only complete
    # copies of 00 and 01 (the store keeps the cut and the empty object).
    def test_sync_dev_keeps_the_local_hour_when_sizes_differ(self):
        local, stored = self.layout()
        store = self.work / "s3_dev" / PREFIX
        mtimes = {h: os.stat(store / api.hour_file_name(h)).st_mtime_ns
                  for h in stored}
        res = self.run_amp("--dev", cmd="sync")
        for h in (BASE, BASE + 1):
            self.assertTrue(self.hour_path(h).exists(), "the complete local "
                            "%s was deleted%s" % (F(h), self.explain(res)))
            self.assertEqual(self.hour_path(h).read_bytes(), local[h])
        self.assertFalse(self.hour_path(BASE + 2).exists(),
                         "an hour stored with its size was kept")
        for h, b in stored.items():
            p = store / api.hour_file_name(h)
            self.assertEqual(p.read_bytes(), b, p.name)
            self.assertEqual(os.stat(p).st_mtime_ns, mtimes[h], p.name)
        self.assertRc(res, 1)
        st = self.status("--dev", "--json", "--start-date", F(BASE),
                         "--end-date", F(BASE + 2))
        self.assertRc(st, 1)
        got = json.loads(st.stdout)
        self.assertEqual((got.get("conflict"), got.get("conflict_hours")),
                         (2, [F(BASE), F(BASE + 1)]), st.stdout)

    # added with the fix (fails without it: no such metric, and the
    # hours are removed): the metrics file counts the conflicts.
    def test_conflicts_counted_in_the_metrics(self):
        self.layout()
        prom = self.tmp / "amp2s3.prom"
        res = self.run_amp("--dev", "--metrics-file", prom, cmd="sync")
        self.assertRc(res, 1)
        got = {}
        for line in prom.read_text().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                got[name] = float(value)
        self.assertEqual((got.get("amp2s3_hours_conflict"),
                          got.get("amp2s3_local_removed"),
                          got.get("amp2s3_exit_code")), (2, 1, 1),
                         prom.read_text())

    # today: status --json has no "conflict" member; the grid shows "#"
    # for both hours, and status exits 0.
    def test_status_shows_conflicts(self):
        self.layout()
        args = ("--dev", "--start-date", F(BASE), "--end-date", F(BASE + 2))
        st = self.status(*args, "--json")
        got = json.loads(st.stdout)
        self.assertEqual((got.get("conflict"), got.get("conflict_hours")),
                         (2, [F(BASE), F(BASE + 1)]), st.stdout)
        self.assertRc(st, 1)
        text = self.status(*args, "--color=no")
        self.assertRc(text, 1)
        self.assertEqual(self.grid_cells(text.stdout, "2024-01-01")[:3],
                         "CC#", text.stdout)


# ============================= 2. a stored object of another size (S3) and
# =============================    an hour swapped for a symlink during sync

class SizeConflictS3(S3Case, SafetyCase):

    # today: exit 0; the local copies of 00 (object cut short) and 01
    # (0-byte object) are deleted.
    def test_sync_s3_keeps_the_local_hour_when_sizes_differ(self):
        local = {BASE: lines("a", 40), BASE + 1: lines("b", 30),
                 BASE + 2: lines("c", 20)}
        stored = {BASE: local[BASE][:len(local[BASE]) // 3], BASE + 1: b"",
                  BASE + 2: local[BASE + 2]}
        for h, b in stored.items():
            self.put(self.key(h), b)
        etags = {h: self.client.head_object(Bucket=self.bucket,
                                            Key=self.key(h))["ETag"]
                 for h in stored}
        self.write_hours(local)
        self.s3.clear_requests()
        res = self.run_amp(cmd="sync", env=self.s3_env())
        for h in (BASE, BASE + 1):
            self.assertTrue(self.hour_path(h).exists(), "the complete local "
                            "%s was deleted%s" % (F(h), self.explain(res)))
            self.assertEqual(self.hour_path(h).read_bytes(), local[h])
        self.assertFalse(self.hour_path(BASE + 2).exists())
        self.assertObjectsExact({self.key(h): b for h, b in stored.items()})
        for h in stored:
            self.assertEqual(self.client.head_object(
                Bucket=self.bucket, Key=self.key(h))["ETag"], etags[h])
        self.assertEqual(self.proxy_log("PUT"), [], "an object was replaced")
        self.assertRc(res, 1)
        st = self.run_amp("--json", "--start-date", F(BASE), "--end-date",
                          F(BASE + 2), cmd="status", defaults=False,
                          env=self.s3_env(AMP_API_KEY=None,
                                          AMP_SECRET_KEY=None))
        self.assertRc(st, 1)
        got = json.loads(st.stdout)
        self.assertEqual((got.get("conflict"), got.get("conflict_hours")),
                         (2, [F(BASE), F(BASE + 1)]), st.stdout)

    # today: the upload opens the hour by name after the listing and
    # follows the symlink: the object holds the target's bytes.
    def test_hour_swapped_for_a_symlink_during_the_listing(self):
        """The scan saw a regular file; while the listing is slow, the file
        is replaced by a symlink to a file outside the data directory.  The
        upload must not follow it: the target is neither uploaded nor
        touched (the original bytes may be uploaded, from a descriptor
        opened at the scan)."""
        original = lines("own", 10)
        target = self.tmp / "elsewhere.txt"
        secret = b"not an hour of this project\n" * 7
        target.write_bytes(secret)
        t_mtime = os.stat(target).st_mtime_ns
        self.write_hours({BASE: original})
        self.s3.add_fault(method="GET", query_contains="list-type=2",
                          delay_s=3, times=1)
        p = self.start_amp("-u", "1", cmd="sync", env=self.s3_env())
        poll(lambda: p.poll() is not None or any(
            r["method"] == "GET" and "list-type=2" in r["query"]
            for r in self.proxy_log()), 20, "the listing request")
        self.assertIsNone(p.poll(), "sync ended before its listing ended")
        link = self.data / ".swap-link"
        os.symlink(target, link)
        os.replace(link, self.hour_path(BASE))
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            self.fail("sync did not finish")
        self.assertEqual(target.read_bytes(), secret)
        self.assertEqual(os.stat(target).st_mtime_ns, t_mtime)
        objs = self.objects()
        self.assertNotEqual(objs.get(self.key(BASE)), secret,
                            "the symlink's target was uploaded")
        self.assertIn(objs.get(self.key(BASE)), (None, original))


# ============================================= 3. a nested (zip + gzip) bomb

class NestedBomb(SafetyCase):
    """A zip member, deflated, holding a gzip (level 9) of ~85 MB of one
    repeated line: each layer compresses a few hundred times, together
    ~95,000 times, in an answer of about 1 KB.  The 1000x cap counts the
    inflated lines against the member's compressed bytes in the zip."""

    LINE = {"event_type": "bomb", "user_id": "u-0001", "n": 1}
    COUNT = 85 * 1000 * 1000 // 48          # 48 bytes a line with "\n"

    def bomb_scenario(self, **extra):
        sc = {"hours": {
            F(BASE): [{"part": 0, "repeat": self.LINE, "count": self.COUNT,
                       "gzip_level": 9}],
            F(BASE + 1): [['{"ok":1}', '{"ok":2}']]}}
        sc.update(extra)
        return sc

    # today: exit 0 and an 85 MB hour 00 committed: the streaming reader
    # holds the inflated bytes only against the gzip bytes (~340x).
    def test_nested_bomb_refused_by_the_streaming_reader(self):
        srv = self.server(self.bomb_scenario())
        res = self.fetch_range(srv, BASE, BASE + 1, "-j", "2",
                               "--max-window-hours", "1", "--max-attempts",
                               "2", *self.FAST, timeout=60)
        bomb = [e for e in srv.requests() if e["start"] == F(BASE)]
        self.assertTrue(bomb)
        self.assertTrue(all(e["bytes_sent"] < 4000 for e in bomb),
                        [e["bytes_sent"] for e in bomb])
        self.assertAbsent(BASE)
        self.assertHoursExact(srv, [BASE + 1])
        self.assertOnlyHours([BASE + 1])
        self.assertNoTemporaries()
        self.assertRc(res, 1)

    # today: passes (regression check: members out of order go to the
    # libzip reader, which already counts against the zip's compressed
    # size).
    def test_nested_bomb_refused_by_the_libzip_reader(self):
        srv = self.server(self.bomb_scenario(zip={"member_order":
                                                  "reverse"}))
        res = self.fetch_range(srv, BASE, BASE + 1, "-j", "1",
                               "--max-window-hours", "2", "--max-attempts",
                               "2", *self.FAST, timeout=60)
        self.assertEqual(self.hour_files(), [], self.explain(res))
        self.assertNoTemporaries()
        self.assertRc(res, 1)


# ================================================= 4. a 200 that is no zip

class NotAZip(SafetyCase):

    # today: exit 5 ("File too large"): the 40 MB body is written to the
    # temporary until RLIMIT_FSIZE stops it, a local disk error that
    # cancels every worker.
    def test_forty_megabytes_of_garbage_refused_at_the_first_bytes(self):
        srv = self.server(gen_scenario(BASE, 2, empty_every=0, rules=[
            rule({"kind": "garbage", "bytes": 40 * 1000 * 1000},
                 contains=F(BASE))]))
        res = self.fetch_range(srv, BASE, BASE + 1, "-j", "2",
                               "--max-window-hours", "1", "--max-attempts",
                               "2", *self.FAST, timeout=60,
                               preexec=preexec(fsize=8 * MiB))
        self.assertAbsent(BASE)
        self.assertHoursExact(srv, [BASE + 1])
        self.assertOnlyHours([BASE + 1])
        self.assertNoTemporaries()
        self.assertRc(res, 1)
        garbage = [e for e in srv.requests() if e["action"] == "garbage"]
        self.assertTrue(garbage)
        for e in garbage:
            self.assertTrue(e["client_gone"], e)
            self.assertLess(e["bytes_sent"], 1000 * 1000,
                            "the client took %d bytes of garbage"
                            % e["bytes_sent"])


    # added with the fix (fails without it: the client takes all 80 MB,
    # then retries): an answer that starts like a zip but holds more than
    # the window's hours can (here 1 hour of --max-hour-mb 1, plus the
    # 64 MiB allowed for the zip's own framing) is refused as it arrives,
    # whether it announces its length or not, and not asked again.
    def test_answer_beyond_the_windows_bound_is_refused(self):
        body = self.tmp / "big.zip"
        total = 80 * 1000 * 1000
        with open(body, "wb") as f:
            f.write(b"PK\x03\x04")
            f.truncate(total)
        for chunked in (False, True):
            with self.subTest(chunked=chunked):
                srv = self.server(gen_scenario(BASE, 2, empty_every=0, rules=[
                    rule({"kind": "raw", "body_file": str(body),
                          "chunked": chunked}, contains=F(BASE))]),
                    name="server-%d" % chunked)
                res = self.fetch_range(srv, BASE, BASE + 1, "-j", "2",
                                       "--max-window-hours", "1",
                                       "--max-hour-mb", "1",
                                       "--max-attempts", "3", *self.FAST,
                                       timeout=60)
                self.assertAbsent(BASE)
                self.assertHoursExact(srv, [BASE + 1])
                self.assertOnlyHours([BASE + 1])
                self.assertNoTemporaries()
                self.assertRc(res, 1)
                raw = [e for e in srv.requests() if e["action"] == "raw"]
                self.assertEqual(len(raw), 1, "asked again: %s" % raw)
                self.assertTrue(raw[0]["client_gone"], raw)
                self.assertLess(raw[0]["bytes_sent"], total - 5 * MiB,
                                raw)


# ========================================== 5. a transfer that trickles

class Trickle(SafetyCase):
    """One byte a second after the headers: --stall-timeout S abandons a
    transfer that received less than --min-speed bytes/s over the last S
    seconds."""

    TRICKLE = {"kind": "trickle", "bytes_per_s": 1, "after_bytes": 100}

    def check(self, res, srv):
        self.assertLess(res.elapsed, 12, "took %.1fs" % res.elapsed)
        self.assertAbsent(BASE)
        self.assertNoTemporaries()
        self.assertRc(res, 1)
        reqs = srv.requests()
        self.assertEqual(len(reqs), 2, "one request per attempt")
        for e in reqs:
            self.assertTrue(e["client_gone"])
            self.assertLess(e["t_end"] - e["t_start"], 5)

    # today: exit 2, "--min-speed" is not an option.
    def test_trickle_abandoned_with_min_speed(self):
        srv = self.server(gen_scenario(BASE, 1, empty_every=0,
                                       rules=[rule(self.TRICKLE)]))
        res = self.fetch_range(srv, BASE, BASE, "--stall-timeout", "2",
                               "--min-speed", "1024", "--max-attempts", "2",
                               *self.FAST, timeout=15)
        self.check(res, srv)

    # today: never ends in time (at 100 bytes/s the old floor of 1 byte/s
    # is met, and the ~3 KB answer takes ~30 s); killed after the 15 s
    # timeout, which fails the test.  (At 1 byte/s, as TRICKLE sends, the
    # old floor sat on the edge: whether a 2 s window held 1 or 2 bytes
    # decided, so the old binary sometimes passed.)
    def test_trickle_abandoned_with_the_default_min_speed(self):
        srv = self.server(gen_scenario(BASE, 1, empty_every=0, rules=[
            rule(dict(self.TRICKLE, bytes_per_s=100))]))
        res = self.fetch_range(srv, BASE, BASE, "--stall-timeout", "2",
                               "--max-attempts", "2", *self.FAST,
                               timeout=15)
        self.check(res, srv)


class FaultS3Case(S3Case, SafetyCase):
    """S3Case with tests/s3/fault_proxy.py in front of the verifying
    proxy (one per class): amp2s3 talks to the fault proxy."""

    fp = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fp = FaultProxy(cls.s3.endpoint.split("//", 1)[1], cls.s3.dir)
        cls.addClassCleanup(cls.fp.stop)

    def setUp(self):
        super().setUp()
        self.fp.clear()

    def s3_env(self, server=None, **over):
        return super().s3_env(server, AWS_ENDPOINT_URL_S3=self.fp.endpoint,
                              **over)

    def listings(self):
        """The ListObjectsV2 requests the fault proxy saw."""
        return [e for e in self.fp.log() if e["method"] == "GET" and
                "list-type=2" in e["query"]]


class TrickleS3(FaultS3Case):
    """The same rule for S3: a listing that trickles below --min-speed
    (default 4096 bytes/s) over --stall-timeout is abandoned and
    retried."""

    # today: the listing is taken at 50 bytes/s (above the old 1 byte/s
    # floor), once, in ~8 s: one listing request, none abandoned.
    def test_s3_listing_trickle_abandoned_and_retried(self):
        local = {BASE: lines("a", 3)}
        self.put(self.key(BASE + 1), lines("b", 40))  # a longer listing
        self.write_hours(local)
        self.fp.add({"kind": "trickle", "bytes_per_s": 50,
                     "after_bytes": 20}, times=1, method="GET",
                    query_contains="list-type=2")
        res = self.run_amp("--stall-timeout", "2", cmd="sync",
                           env=self.s3_env(), timeout=30)
        lists = self.listings()
        self.assertEqual(len(lists), 2, lists)
        self.assertTrue(lists[0]["client_gone"], lists[0])
        self.assertLess(res.elapsed, 8, "took %.1fs" % res.elapsed)
        self.assertRc(res, 0)
        self.assertObjectsExact({self.key(BASE): local[BASE],
                                 self.key(BASE + 1): lines("b", 40)})
        self.assertEqual(self.hour_files(), [])


class ListingS3(FaultS3Case):
    """A listing is trusted only when it is sane: every continuation
    token new to it, every key under the prefix asked for.  A failed
    listing deletes and uploads nothing."""

    @staticmethod
    def page(keys, token=None):
        contents = "".join("<Contents><Key>%s</Key><Size>%d</Size>"
                           "</Contents>" % kv for kv in keys)
        more = ("<IsTruncated>true</IsTruncated><NextContinuationToken>%s"
                "</NextContinuationToken>" % token if token else
                "<IsTruncated>false</IsTruncated>")
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/'
                '2006-03-01/"><Name>b</Name><KeyCount>%d</KeyCount>%s%s'
                '</ListBucketResult>' % (len(keys), more, contents))

    def body(self, xml):
        return {"kind": "body", "status": 200, "body": xml}

    def assertNothingTouched(self, res, local):
        self.assertEqual(self.local_bytes(),
                         {api.hour_file_name(h): b for h, b in local.items()},
                         "local hours" + self.explain(res))
        self.assertEqual([e for e in self.fp.log() if e["method"] == "PUT"],
                         [], "an upload was made")
        self.assertObjectsExact({})
        self.assertRc(res, 1)

    # today: lists for ever (only a token repeated back to back was
    # caught); killed after the 20 s timeout, which fails the test.
    def test_continuation_tokens_that_loop_fail_the_listing(self):
        local = {BASE: lines("a", 3), BASE + 1: lines("b", 4)}
        self.write_hours(local)
        size0 = len(local[BASE])
        self.fp.add(self.body(self.page([], "B")), method="GET",
                    query_contains="continuation-token=A&")
        self.fp.add(self.body(self.page([], "A")), method="GET",
                    query_contains="continuation-token=B&")
        self.fp.add(self.body(self.page([(self.key(BASE), size0)], "A")),
                    method="GET", query_contains="list-type=2")
        res = self.run_amp(cmd="sync", env=self.s3_env(), timeout=20)
        lists = self.listings()
        self.assertEqual(len(lists), 3, [r["query"] for r in lists])
        self.assertNothingTouched(res, local)

    # today: exit 0; the January listing's answer names the February
    # hour with its local size, so the local February hour is deleted as
    # "already stored" (and January's uploaded).
    def test_a_key_outside_the_prefix_fails_the_listing(self):
        feb = api.parse_hour("20240201T00")
        local = {BASE: lines("jan", 3), feb: lines("feb", 5)}
        self.write_hours(local)
        self.fp.add(self.body(self.page([(self.key(feb),
                                          len(local[feb]))])),
                    method="GET", query_contains="2024-01")
        res = self.run_amp(cmd="sync", env=self.s3_env(), timeout=20)
        # January's listing got the foreign key; February's may not have
        # started (no listing starts after one failed)
        self.assertEqual([e["query"] for e in self.listings()
                          if e["action"] == "body"],
                         ["list-type=2&prefix=python-import%2F2024-01-01_"
                          "00.jsonl"], self.listings())
        self.assertNothingTouched(res, local)


# ============================================================ 6. file modes

class FileModes(SafetyCase):
    """Hour files hold end users' personal data: the data directory is
    created 0700 and hours 0600 whatever the umask (--file-mode widens it
    for a group)."""

    def scenario(self):
        # two hours with events, one empty (the API's 404)
        return {"hours": {F(BASE): [['{"a":1}']], F(BASE + 1): [['{"b":2}']],
                          F(BASE + 2): []}}

    def hour_modes(self, d):
        return {n: mode(os.path.join(d, n)) for n in sorted(os.listdir(d))
                if n.endswith(".jsonl") and not n.startswith(".")}

    # today: the data directory is 0755 and the hours 0644.
    def test_fetch_data_dir_0700_hours_0600_under_umask_022(self):
        srv = self.server(self.scenario())
        res = self.fetch_range(srv, BASE, BASE + 2, "-j", "3",
                               "--max-window-hours", "1",
                               preexec=preexec(umask=0o022))
        self.assertRc(res, 0)
        self.assertEqual(len(self.hour_files()), 3)
        self.assertEqual(oct(mode(self.data)), oct(0o700))
        self.assertEqual(self.hour_modes(self.data),
                         {n: 0o600 for n in self.hour_files()})

    # today: s3_dev's hour files are 0644 (and the data directory 0755).
    def test_dev_store_files_0600_under_umask_022(self):
        srv = self.server(self.scenario())
        res = self.run_amp("--start-date", F(BASE), "--end-date",
                           F(BASE + 2), "--dev", "-j", "3",
                           "--max-window-hours", "1", cmd="all", server=srv,
                           preexec=preexec(umask=0o022))
        self.assertRc(res, 0)
        store = self.work / "s3_dev" / PREFIX
        want = {api.hour_file_name(h): 0o600 for h in range(BASE, BASE + 3)}
        self.assertEqual(self.hour_modes(store), want)
        self.assertEqual(oct(mode(self.data)), oct(0o700))

    # today: exit 2, "--file-mode" is not an option.
    def test_file_mode_0640_gives_a_group_read_access(self):
        srv = self.server(self.scenario())
        res = self.fetch_range(srv, BASE, BASE + 2, "-j", "3",
                               "--max-window-hours", "1", "--file-mode",
                               "0640", preexec=preexec(umask=0o022))
        self.assertRc(res, 0)
        self.assertEqual(oct(mode(self.data)), oct(0o750))
        self.assertEqual(self.hour_modes(self.data),
                         {n: 0o640 for n in self.hour_files()})
        self.assertEqual(len(self.hour_files()), 3)


# ============================================================== 7. signals

class OtherSignals(SafetyCase):

    # today: SIGUSR1 ends the signal thread; SIGTERM then stays blocked and
    # the run goes on holding its transfers (the test times out after 10 s).
    def test_sigusr1_then_sigterm_exits_143(self):
        srv = self.server(gen_scenario(BASE, 4, events=200, empty_every=0,
                                       rules=[rule({"kind": "stall",
                                                    "seconds": 60,
                                                    "after_fraction": 0.5})]))
        p = self.start_amp("--start-date", F(BASE), "--end-date",
                           F(BASE + 3), "-j", "4", "--max-window-hours", "1",
                           "--stall-timeout", "60", *self.FAST, server=srv)
        poll(lambda: p.poll() is not None or
             (srv.status()["inflight"] >= 4 and
              sum(n.startswith(".tmp-") for n in self.listing()) >= 4),
             20, "four held transfers")
        self.assertIsNone(p.poll(), "amp2s3 ended before the signals")
        p.send_signal(signal.SIGUSR1)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(10)
        except subprocess.TimeoutExpired:
            self.fail("SIGTERM after SIGUSR1 did not end the run within "
                      "10 s")
        self.assertEqual(rc, 143)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertNoTemporaries()
        self.assertEqual(self.hour_files(), [])

    # today: SIGHUP is neither blocked nor handled: its default action
    # kills the run (exit status -1, the held window never completes).
    def test_sighup_reopens_the_log_file(self):
        srv = self.server(gen_scenario(BASE, 3, events=20, empty_every=0,
                                       rules=[rule({"kind":
                                                    "slow_first_byte",
                                                    "seconds": 3}, n=2)]))
        log = self.work / "amp.log"
        p = self.start_amp("--start-date", F(BASE), "--end-date",
                           F(BASE + 2), "-j", "1", "--max-window-hours", "1",
                           "--log-file", str(log), *self.FAST, server=srv)
        poll(lambda: p.poll() is not None or
             (srv.status()["requests"] >= 2 and srv.status()["inflight"] >= 1
              and log.exists()), 20, "the second request held")
        self.assertIsNone(p.poll(), "amp2s3 ended before the signal")
        rotated = self.work / "amp.log.1"
        os.rename(log, rotated)
        size0 = rotated.stat().st_size
        self.assertGreater(size0, 0)
        p.send_signal(signal.SIGHUP)
        try:
            rc = p.wait(20)
        except subprocess.TimeoutExpired:
            self.fail("the run did not end after SIGHUP")
        self.assertEqual(rc, 0, (self.tmp / "amp.stderr").read_text())
        self.assertHoursExact(srv, range(BASE, BASE + 3))
        self.assertTrue(log.exists(), "no new log file after SIGHUP")
        self.assertGreater(log.stat().st_size, 0, "the new log is empty")
        self.assertEqual(mode(log), 0o600)


# ================================== 8. the --dev folder on the data directory

class StoreOnTheDataDir(SafetyCase):
    """A store folder that is, contains or is inside the data directory
    (or a data directory inside --dev-dir) is refused before anything is
    listed or deleted."""

    def check_refused(self, *args, data=None):
        data = data or self.data
        data.mkdir(parents=True)
        hours = {BASE + i: lines("h%d" % i, 5) for i in range(3)}
        for h, b in hours.items():
            (data / api.hour_file_name(h)).write_bytes(b)
        res = self.run_amp("--dev", *args, cmd="sync")
        for h, b in hours.items():
            p = data / api.hour_file_name(h)
            self.assertTrue(p.exists(), "%s deleted%s"
                            % (p.name, self.explain(res)))
            self.assertEqual(p.read_bytes(), b)
        self.assertRc(res, 2)
        return res

    # today: exit 0; every local hour is taken for "already stored" and
    # deleted.
    def test_dev_dir_is_the_data_dir(self):
        self.check_refused("--dev-dir", "data", "--s3-prefix", "")

    # today: exit 0; the hours are linked into data/store/python-import/
    # and removed from the data directory.
    def test_dev_dir_inside_the_data_dir(self):
        self.check_refused("--dev-dir", "data/store")

    # today: exit 0; the hours move into store/python-import/.
    def test_data_dir_inside_the_dev_dir(self):
        self.check_refused("--dev-dir", "store", "--data-dir", "store/data",
                           data=self.work / "store" / "data")


# ========================================================== also found

class AlsoFound(SafetyCase):

    # today: exit 0 (S3 would refuse every part but the last with
    # EntityTooSmall, at upload time).
    def test_part_size_below_5_exits_2_at_start(self):
        srv = self.server(gen_scenario(BASE, 1))
        for how, args, env in (
                ("flag", ("--part-size-mb", "4"), {}),
                ("environment", (), {"AMP_PART_SIZE_MB": "1"})):
            with self.subTest(how=how):
                res = self.fetch_range(srv, BASE, BASE, *args,
                                       env=self.env(srv, **env))
                self.assertRc(res, 2)
                self.assertEqual(len([x for x in res.stderr.splitlines()
                                      if x.strip()]), 1, res.stderr)
        self.assertEqual(srv.requests(), [], "a request was sent")
        self.assertEqual(self.hour_files(), [])
        res = self.fetch_range(srv, BASE, BASE, "--part-size-mb", "5")
        self.assertRc(res, 0)

    # today: passes (regression check: the scan skips symlinks, so sync
    # never reaches the upload path for one; the race where it does is
    # SizeConflictS3.test_hour_swapped_for_a_symlink_during_the_listing).
    def test_symlinked_hour_is_not_followed_by_sync(self):
        target = self.tmp / "elsewhere.jsonl"
        secret = lines("secret", 5)
        target.write_bytes(secret)
        t_mtime = os.stat(target).st_mtime_ns
        self.data.mkdir()
        os.symlink(target, self.hour_path(BASE))
        self.hour_path(BASE + 1).write_bytes(lines("own", 3))
        res = self.run_amp("--dev", cmd="sync")
        self.assertRc(res, 0)
        self.assertEqual(target.read_bytes(), secret)
        self.assertEqual(os.stat(target).st_mtime_ns, t_mtime)
        self.assertEqual(self.dev_files(), {
            os.path.join(PREFIX.rstrip("/"), api.hour_file_name(BASE + 1)):
                lines("own", 3)})
