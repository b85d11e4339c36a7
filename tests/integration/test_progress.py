"""Progress: the live line on a terminal, the records in a log.

On a terminal the test owns a pseudo-terminal (pty) and feeds everything
amp2s3 writes to it into a terminal emulator (pyte, Debian's
python3-pyte), so what is checked is the screen a user would see, at the
terminal's width.  Every wait is a bounded poll of the pty's output.
Without a terminal the progress records are the feature, so the log is
what is read.
"""

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import termios
import time

from harness import BASE, F, FetchCase, gen_scenario

PROGRESS_ROW = re.compile(r"^hours (\d+)/(\d+)  ")
BYTES = re.compile(r"^hours \d+/\d+  (\d+(?:\.\d+)?) (kB|MB|GB)(?:  |$)")
UNIT = {"kB": 1e3, "MB": 1e6, "GB": 1e9}


def load_pyte():
    try:
        import pyte
    except ImportError:
        raise AssertionError("python3 cannot import pyte: install the Debian "
                             "package python3-pyte (scripts/install-deps.sh)")
    return pyte


class PtyRun:
    """amp2s3 with a pseudo-terminal of ${cols} x ${rows} as its stdout and
    stderr; what it writes goes to a pyte screen (and to self.raw)."""

    def __init__(self, tc, argv, env, cwd, cols, rows=30):
        pyte = load_pyte()
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ,
                    struct.pack("HHHH", rows, cols, 0, 0))
        try:
            self.proc = subprocess.Popen(argv, cwd=cwd, env=env,
                                         stdin=subprocess.DEVNULL,
                                         stdout=slave, stderr=slave)
        finally:
            os.close(slave)
        self.master = master
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self.eof = False
        tc.addCleanup(self.close)

    def pump(self, timeout):
        """Take what the program wrote, waiting up to ${timeout} s for it."""
        if self.eof:
            return
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return
        try:
            data = os.read(self.master, 65536)
        except OSError:         # EIO: the program closed the terminal
            data = b""
        if not data:
            self.eof = True
            return
        self.raw += data
        self.stream.feed(data)

    def until(self, cond, timeout, what):
        """Pump until cond() is true (returns its value) or ${timeout} s
        pass, or the program ends first (AssertionError naming ${what})."""
        deadline = time.monotonic() + timeout
        while True:
            v = cond()
            if v:
                return v
            left = deadline - time.monotonic()
            if self.eof or left <= 0:
                raise AssertionError(
                    "%s waiting for %s; screen:\n%s" % (
                        "output ended" if self.eof else
                        "timed out after %.1fs" % timeout, what,
                        "\n".join(r.rstrip() for r in self.screen.display)))
            self.pump(min(left, 0.05))

    def finish(self, timeout=30):
        """Pump to the end of the output; the exit status."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self.pump(0.05)
        return self.proc.wait(max(0.1, deadline - time.monotonic()))

    def cursor_row(self):
        return self.screen.display[self.screen.cursor.y].rstrip()

    def rows(self):
        return [r.rstrip() for r in self.screen.display]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.master)


def frames(raw):
    """Every progress line drawn in ${raw}: the text between a "\\r" and
    the "\\033[K" that ends it."""
    return [m.decode() for m in re.findall(rb"\r(hours [^\r\n\x1b]*)\x1b\[K",
                                           bytes(raw))]


def kb(row):
    m = BYTES.match(row)
    return float(m.group(1)) * UNIT[m.group(2)] if m else None


class LiveLine(FetchCase):
    """On a terminal: a line that moves while answers arrive and while the
    pool waits, fits the width and is gone at the end."""

    COLS = 72

    def pty_amp(self, srv, *args):
        argv = [self.bin, "fetch", "--start-date", F(BASE), "--end-date",
                F(BASE + 1), "-j", "1", "--stall-timeout", "10",
                "--connect-timeout", "5"] + [str(a) for a in args]
        return PtyRun(self, argv, self.env(srv), str(self.work), self.COLS)

    def assertClearedAndFitting(self, run):
        """The final screen holds no progress line, nothing was drawn after
        the summary, and every line drawn fitted the width."""
        self.assertEqual([r for r in run.rows() if PROGRESS_ROW.match(r)],
                         [], "a progress line is left on the screen")
        self.assertEqual(run.cursor_row(), "", "the cursor's row")
        tail = bytes(run.raw).rsplit(b"amp2s3 info: fetch: ", 1)
        self.assertEqual(len(tail), 2, "no summary: %r" % bytes(run.raw))
        self.assertNotIn(b"\rhours", tail[1], "drawn after the summary")
        self.assertIn(b"\r\x1b[K", tail[0], "the line is never cleared")
        drawn = frames(run.raw)
        self.assertTrue(drawn, "no progress line drawn")
        wide = [f for f in drawn if len(f) > self.COLS - 1]
        self.assertEqual(wide, [], "lines wider than the terminal")

    def test_bytes_grow_on_screen_before_the_first_hour_completes(self):
        srv = self.server(gen_scenario(
            BASE, 2, events=3000, parts=2,
            rules=[{"action": {"kind": "slow_body", "seconds": 2.5}}]))
        run = self.pty_amp(srv)
        seen = []

        def growing():
            row = run.cursor_row()
            b = kb(row)
            # Observed first, then checked: no hour is complete yet.
            if b and row.startswith("hours 0/2") and \
                    not self.hour_files() and (not seen or b > seen[-1][0]):
                seen.append((b, row))
            return len(seen) >= 3
        run.until(growing, 15, "the downloaded bytes to grow on screen")
        self.assertTrue(any("1 in flight" in r for _, r in seen), seen)
        self.assertEqual(run.finish(), 0, bytes(run.raw)[-2000:])
        self.assertHoursExact(srv, [BASE, BASE + 1])
        self.assertClearedAndFitting(run)

    def test_429_pause_and_503_retry_are_shown_while_they_last(self):
        srv = self.server(gen_scenario(
            BASE, 2, events=20,
            rules=[{"match": {"n": 1}, "action": {
                        "status": 429, "headers": {"Retry-After": "2"}}},
                   {"match": {"n": 2}, "action": {"status": 503}}]))
        # The 503's backoff is 1 to 2 s (jitter); the 429 pause 2 s.
        run = self.pty_amp(srv, "--retry-base-ms", "1000", "--retry-max-ms",
                           "5000")
        row = run.until(lambda: re.search(r"429: pausing [12] s$",
                                          run.cursor_row()) and
                        run.cursor_row(), 15, "the 429 pause on screen")
        # Seen while the pause lasts: the retry has not been sent yet.
        self.assertEqual(srv.status()["requests"], 1, row)
        row = run.until(lambda: re.search(
            r"retrying %s\.\.T01 in [12] s \(503\)$" % F(BASE),
            run.cursor_row()) and run.cursor_row(), 15,
            "the 503 retry on screen")
        self.assertEqual(srv.status()["requests"], 2, row)
        self.assertEqual(run.finish(), 0, bytes(run.raw)[-2000:])
        self.assertHoursExact(srv, [BASE, BASE + 1])
        self.assertClearedAndFitting(run)

    def test_never_drawn_into_a_log_file(self):
        srv = self.server(gen_scenario(
            BASE, 2, events=3000, parts=2,
            rules=[{"action": {"kind": "slow_body", "seconds": 2}}]))
        log = self.tmp / "amp.log"
        run = self.pty_amp(srv, "--log-file", log, "--progress-interval",
                           "1")
        self.assertEqual(run.finish(), 0, log.read_text())
        text = log.read_bytes()
        self.assertNotIn(b"\r", text)
        self.assertNotIn(b"\x1b", text)
        self.assertIn(b" info: progress: hours 0/2, ", text)
        self.assertEqual(frames(run.raw), [], "a line drawn on the terminal")


class Records(FetchCase):
    """Without a terminal: a record every --progress-interval seconds."""

    def slow_server(self):
        return self.server(gen_scenario(
            BASE, 2, events=3000, parts=2,
            rules=[{"action": {"kind": "slow_body", "seconds": 2.5}}]))

    def run_slow(self, srv, *args, **env):
        res = self.run_amp("--start-date", F(BASE), "--end-date",
                           F(BASE + 1), *args, server=srv,
                           env=self.env(srv, **env))
        self.assertRc(res, 0)
        self.assertHoursExact(srv, [BASE, BASE + 1])
        self.assertNotIn("\r", res.stderr)
        self.assertNotIn("\x1b", res.stderr)
        return res.stderr.splitlines()

    def first(self, lines, pred, what):
        for i, line in enumerate(lines):
            if pred(line):
                return i
        self.fail("no %s in the log:\n%s" % (what, "\n".join(lines)))

    def test_text_records_before_the_first_fetched_line(self):
        lines = self.run_slow(self.slow_server(), "--progress-interval", "1")
        fetched = self.first(lines, lambda x: " info: fetched " in x,
                             "fetched line")
        recs = [x for x in lines[:fetched]
                if re.search(r" info: progress: hours 0/2, ", x)]
        self.assertTrue(recs, "no progress record before the first "
                        "fetched line:\n" + "\n".join(lines))
        # While the answer arrives (the last record may fall between the
        # transfer's end and the window's commit: 0 in flight).
        ms = [re.search(r"progress: hours 0/2, ([\d.]+) (kB|MB), [\d.]+ "
                        r"(kB|MB)/s, 1 in flight(,|$)", r) for r in recs]
        ms = [m for m in ms if m]
        self.assertTrue(ms, recs)
        self.assertGreater(float(ms[-1].group(1)), 0, recs)

    def test_json_records_have_the_fields_as_members(self):
        lines = self.run_slow(self.slow_server(), "--log-format", "json",
                              AMP_PROGRESS_INTERVAL="1")
        objs = [json.loads(x) for x in lines]
        fetched = self.first(objs, lambda o: o["msg"].startswith("fetched "),
                             "fetched record")
        recs = [o for o in objs[:fetched] if o["msg"].startswith("progress")]
        self.assertTrue(recs, "no progress record before the first "
                        "fetched record:\n" + "\n".join(lines))
        for o in recs:
            self.assertEqual(o["level"], "info")
            # in_flight 0: between the transfer's end and the commit.
            self.assertIn((o["hours_done"], o["hours_total"],
                           o["hours_failed"], o["in_flight"]),
                          ((0, 2, 0, 1), (0, 2, 0, 0)), o)
            self.assertIsNone(o["eta_s"], o)
            self.assertIsNone(o["wait"], o)
            self.assertNotIn("uploads_done", o)
            self.assertIsInstance(o["elapsed_s"], int)
        self.assertTrue(any(o["in_flight"] == 1 for o in recs), recs)
        self.assertGreater(recs[-1]["bytes_downloaded"], 0, recs)
        self.assertGreater(recs[-1]["rate_bytes_per_s"], 0, recs)

    def test_interval_0_writes_none(self):
        # The environment asks for records every second; the flag wins.
        lines = self.run_slow(self.slow_server(), "--progress-interval", "0",
                              AMP_PROGRESS_INTERVAL="1")
        self.assertEqual([x for x in lines if "progress" in x], [])
        self.assertTrue(any(" info: fetched " in x for x in lines), lines)
