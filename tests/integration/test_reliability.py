"""amp2s3 under hostile conditions: storms of Export API faults across many
windows, S3 faults injected by tests/s3/fault_proxy.py, signals and kill -9
mid-run, file-size limits and a full disk, two runs at once, hostile zips,
odd .env files, and secrets kept out of every log.

Every outcome is checked on disk (hour files byte-exact against the
server's data set, no temporaries) and in S3 (boto3 through the verifying
proxy), never from log text alone.  Waits are bounded polls; every process
started here is stopped by PID in a cleanup.
"""

import base64
import gzip
import json
import os
import random
import resource
import shutil
import signal
import string
import struct
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse
import urllib.request
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import (API_KEY, BASE, BASIC, F, H, PY, SECRET, TESTS,
                     FetchCase, Result, api, gen_scenario, poll,
                     window_of)

sys.path.insert(0, str(TESTS / "s3"))
import s3env  # noqa: E402

FAULT_PROXY = TESTS / "s3" / "fault_proxy.py"
PROJECT = api.DEFAULT_PROJECT
MiB = 1 << 20


def rule(action, times=None, **match):
    r = {"match": match, "action": action}
    if times is not None:
        r["times"] = times
    return r


def gz(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


def mname(h, part):
    return api.member_name(PROJECT, h, part)


def raw_zip(members, deflate=False, bad_crc=()):
    """A zip built by hand, so that any name bytes (NUL included) and any
    CRC can be written.  ${members}: [(name bytes|str, data bytes)];
    ${bad_crc}: indexes whose CRC field is wrong."""
    out, cd = bytearray(), bytearray()
    for i, (name, data) in enumerate(members):
        if isinstance(name, str):
            name = name.encode("utf-8")
        crc = zlib.crc32(data) & 0xFFFFFFFF
        if i in bad_crc:
            crc ^= 0x5A5A5A5A
        if deflate:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            cdata, method = c.compress(data) + c.flush(), 8
        else:
            cdata, method = data, 0
        off = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 20, 0, method, 0,
                           0x5821, crc, len(cdata), len(data), len(name),
                           0) + name + cdata
        cd += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 20, 20, 0,
                          method, 0, 0x5821, crc, len(cdata), len(data),
                          len(name), 0, 0, 0, 0, 0, off) + name
    n = len(members)
    eocd = struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, n, n, len(cd),
                       len(out), 0)
    return bytes(out + cd + eocd)


def limit_fsize(nbytes):
    def pre():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return pre


# ---------------------------------------------------------------- helpers --

class RawExport:
    """An Export API stand-in inside this process for answers the scripted
    server cannot build (hand-made zips, NUL in names, honest
    Content-Length on a truncated zip, huge members).

    ${answers}: {(first_hour, last_hour): body bytes or (status, bytes)};
    a window not listed answers 404 (empty hours)."""

    def __init__(self, tc, answers):
        self.answers = answers
        self.log = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(u.query)
                auth = self.headers.get("Authorization", "")
                ok = auth == "Basic " + BASIC
                try:
                    win = (H(q["start"][0]), H(q["end"][0]))
                except (KeyError, ValueError):
                    win = None
                if not ok:
                    status, body = 403, b"Invalid API key or secret key"
                else:
                    a = outer.answers.get(win, (404, api.NOT_FOUND.encode()))
                    status, body = a if isinstance(a, tuple) else (200, a)
                entry = {"window": win, "status": status, "auth_ok": ok,
                         "client_gone": False}
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/zip"
                                     if status == 200 else "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    self.wfile.flush()
                except OSError:
                    entry["client_gone"] = True
                    self.close_connection = True
                with outer.lock:
                    outer.log.append(entry)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d/api/2/export" % \
            self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        tc.addCleanup(self.stop)

    def requests(self):
        with self.lock:
            return list(self.log)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class FaultProxy:
    """tests/s3/fault_proxy.py as a subprocess in front of ${upstream}."""

    def __init__(self, upstream, logdir):
        self.proc = s3env._Proc("fault_proxy", [
            PY, str(FAULT_PROXY), "--upstream", upstream], logdir)
        line = self.proc.wait_line("PORT ", time.monotonic() + 15)
        self.endpoint = "http://127.0.0.1:%d" % int(line.split()[1])

    def _ctl(self, method, path, body=None):
        req = urllib.request.Request(
            self.endpoint + "/__fault__/" + path, method=method,
            data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=10) as r:
            data = r.read()
        return json.loads(data) if data else None

    def add(self, action, times=None, delay_s=None, **match):
        r = dict(match, action=action)
        if times is not None:
            r["times"] = times
        if delay_s is not None:
            r["delay_s"] = delay_s
        self._ctl("POST", "rules", r)

    def clear(self):
        self._ctl("DELETE", "rules")
        self._ctl("DELETE", "log")

    def log(self):
        return self._ctl("GET", "log")

    def status(self):
        return self._ctl("GET", "status")

    def stop(self):
        self.proc.stop()


class RelCase(FetchCase):
    """FetchCase plus processes with their own output files, resource
    limits, and exact-outcome checks."""

    FAST = ["--retry-base-ms", "10", "--retry-max-ms", "100"]

    def run_with(self, *args, cmd="fetch", env=None, server=None,
                 preexec=None, timeout=90, defaults=True):
        args = [str(a) for a in args]
        given = {self.ALIASES.get(a.split("=")[0], a.split("=")[0])
                 for a in args if a.startswith("-")}
        argv = [self.bin, cmd]
        if defaults:
            for flag, val in self.DEFAULTS:
                if flag not in given:
                    argv += [flag, val]
        argv += args
        t0 = time.monotonic()
        try:
            p = subprocess.run(argv, cwd=str(self.work),
                               env=env if env is not None
                               else self.env(server),
                               stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=timeout,
                               preexec_fn=preexec)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("amp2s3 did not finish within %ss: %s\n"
                                 "stderr: %s" % (timeout, argv,
                                                 (e.stderr or b"")[-2000:]))
        res = Result(p.returncode, p.stdout.decode("utf-8", "replace"),
                     p.stderr.decode("utf-8", "replace"),
                     time.monotonic() - t0, argv)
        self._last = res
        return res

    def spawn(self, name, *args, cmd="fetch", env=None, server=None):
        """Start amp2s3 in the background; output in self.tmp/name.*;
        killed (by PID) in a cleanup if still running."""
        args = [str(a) for a in args]
        given = {self.ALIASES.get(a.split("=")[0], a.split("=")[0])
                 for a in args if a.startswith("-")}
        argv = [self.bin, cmd]
        for flag, val in self.DEFAULTS:
            if flag not in given:
                argv += [flag, val]
        argv += args
        out = open(self.tmp / (name + ".stdout"), "wb")
        err = open(self.tmp / (name + ".stderr"), "wb")
        p = subprocess.Popen(argv, cwd=str(self.work),
                             env=env if env is not None
                             else self.env(server),
                             stdin=subprocess.DEVNULL, stdout=out,
                             stderr=err)
        p.name, p.argv = name, argv

        def reap():
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(10)
            out.close()
            err.close()
        self.addCleanup(reap)
        return p

    def stderr_of(self, p):
        return (self.tmp / (p.name + ".stderr")).read_text(errors="replace")

    def wait_exit(self, p, timeout, what="amp2s3 to exit"):
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("timed out after %ss waiting for %s; "
                                 "stderr: %s" % (timeout, what,
                                                 self.stderr_of(p)[-1500:]))

    def assertNoTemporariesIn(self, d):
        left = [n for n in (os.listdir(d) if os.path.isdir(d) else [])
                if n.startswith(".tmp-")]
        self.assertEqual(left, [], "temporaries left in %s" % d)

    def assertPresentHoursExact(self, server):
        """Every hour file on disk is byte-exact (complete or absent)."""
        present = [H(n[:10].replace("-", "") + "T" + n[11:13])
                   for n in self.hour_files()]
        self.assertHoursExact(server, present)
        return present

    def assertCleanOutcome(self, server, done, failed=()):
        """${done} hours exact, ${failed} absent, nothing else, no
        temporaries."""
        self.assertHoursExact(server, done)
        for h in failed:
            self.assertFalse(self.hour_path(h).exists(),
                             "%s exists although its window failed%s"
                             % (self.hour_path(h).name, self.explain()))
        self.assertOnlyHours(done)
        self.assertNoTemporaries()

    def snapshot_outside(self, *exclude):
        out = set()
        for root, dirs, files in os.walk(self.tmp):
            for f in files + dirs:
                p = os.path.join(root, f)
                if not any(p == str(d) or p.startswith(str(d) + os.sep)
                           for d in exclude):
                    out.add(p)
        return out


# ======================================================= Export API storms ==

class ExportStorms(RelCase):
    """Bursts of faults across many windows with -j 4: the final data set
    is exact, or failed hours are absent and reported (exit 1)."""

    def _storm(self, n_hours, rules, *args, events=20, empty_every=5,
               timeout=90):
        srv = self.server(gen_scenario(BASE, n_hours, events=events,
                                       empty_every=empty_every,
                                       rules=rules))
        res = self.fetch_range(srv, BASE, BASE + n_hours - 1, "-j", "4",
                               *self.FAST, *args, timeout=timeout)
        return srv, res

    def _assert_all_done(self, srv, res, n_hours):
        self.assertRc(res, 0)
        hours = range(BASE, BASE + n_hours)
        self.assertCleanOutcome(srv, hours)
        good = [e for e in srv.requests()
                if e["status"] in (200, 404) and e["rule"] is None]
        self.assertCoversExactly(good, hours)

    def test_429_burst_with_and_without_retry_after(self):
        rules = [rule({"status": 429, "headers": {"Retry-After": "1"}},
                      n=[1, 3, 5, 7, 9]),
                 rule({"status": 429}, n=[2, 4, 6, 8, 10]),
                 rule({"status": 429, "headers": {"Retry-After": "0"}},
                      n=[11, 12])]
        srv, res = self._storm(16, rules, "--max-window-hours", "2",
                               "--max-attempts", "16")
        self._assert_all_done(srv, res, 16)
        self.assertEqual(sum(e["status"] == 429 for e in srv.requests()),
                         12)

    def test_5xx_storm_with_splits(self):
        codes = [500, 502, 503, 504, 500, 503, 504, 502, 500, 504, 503,
                 500, 502, 504]
        rules = [rule({"status": c}, n=i + 1) for i, c in enumerate(codes)]
        srv, res = self._storm(24, rules, "--max-window-hours", "3",
                               "--max-attempts", "16")
        self._assert_all_done(srv, res, 24)
        reqs = srv.requests()
        self.assertEqual(sum(e["status"] in (500, 502, 503, 504)
                             for e in reqs), len(codes))

    def test_broken_bodies_storm(self):
        acts = [{"kind": "reset"},
                {"kind": "reset", "after_fraction": 0.5},
                {"kind": "truncate", "fraction": 0.3},
                {"kind": "not_zip"},
                {"kind": "corrupt_member", "where": "gzip_crc"},
                {"kind": "corrupt_member", "where": "deflate"},
                {"kind": "corrupt_member", "where": "zip_crc",
                 "zip": {"compression": "stored"}},
                {"kind": "truncate", "fraction": 0.9},
                {"kind": "reset", "after_fraction": 0.1},
                {"kind": "not_zip"}]
        rules = [rule(a, n=i + 1) for i, a in enumerate(acts)]
        srv, res = self._storm(12, rules, "--max-window-hours", "1",
                               "--max-attempts", "12", events=150,
                               empty_every=0)
        self._assert_all_done(srv, res, 12)
        self.assertEqual(sum(e["rule"] is not None for e in srv.requests()),
                         len(acts))

    def test_answers_slower_than_the_timeouts(self):
        """Stalls mid-body and a missing first byte on several windows at
        once: each transfer is aborted after --stall-timeout and retried;
        the server sees the client hang up."""
        acts = [{"kind": "stall", "seconds": 60, "after_fraction": 0.3},
                {"kind": "stall", "seconds": 60, "after_fraction": 0.0},
                {"kind": "slow_first_byte", "seconds": 60},
                {"kind": "stall", "seconds": 60, "after_fraction": 0.8},
                {"kind": "slow_first_byte", "seconds": 60}]
        rules = [rule(a, n=i + 1) for i, a in enumerate(acts)]
        srv, res = self._storm(10, rules, "--max-window-hours", "2",
                               "--stall-timeout", "1", events=100,
                               timeout=60)
        self._assert_all_done(srv, res, 10)
        self.assertLess(res.elapsed, 30, "the stalls were waited out")
        slow = [e for e in srv.requests() if e["rule"] is not None]
        self.assertEqual(len(slow), len(acts))
        self.assertTrue(all(e["client_gone"] for e in slow),
                        "a stalled answer was not abandoned by the client")

    def test_stall_timeout_counts_from_the_last_byte(self):
        """--stall-timeout S aborts a transfer that received nothing for S
        seconds, also when part of the body came first (the server sends
        half the zip at once, then nothing)."""
        srv = self.server(gen_scenario(BASE, 2, events=200, rules=[
            rule({"kind": "stall", "seconds": 60, "after_fraction": 0.5},
                 n=1)]))
        res = self.fetch_range(srv, BASE, BASE + 1, "--stall-timeout", "2",
                               *self.FAST, timeout=60)
        self.assertRc(res, 0)
        self.assertCleanOutcome(srv, [BASE, BASE + 1])
        stalled = srv.requests()[0]
        self.assertTrue(stalled["client_gone"])
        self.assertGreater(stalled["bytes_sent"], 0)
        silent = stalled["t_end"] - stalled["t_start"]
        self.assertGreaterEqual(silent, 1.5)
        self.assertLess(silent, 2 + 2.5, "the transfer was abandoned %.1fs "
                        "after its last byte, with --stall-timeout 2"
                        % silent)

    def test_persistent_faults_fail_cleanly_then_rerun_completes(self):
        bad = {BASE + 1: {"status": 500},
               BASE + 4: {"kind": "not_zip"},
               BASE + 6: {"kind": "reset", "after_fraction": 0.5},
               BASE + 9: {"kind": "truncate", "fraction": 0.5},
               BASE + 10: {"kind": "corrupt_member", "where": "deflate"}}
        rules = [rule(a, contains=F(h)) for h, a in bad.items()]
        # and transient noise on the good windows (fewer than a window's
        # attempts, so that no good window can fail)
        rules.append(rule({"status": 503}, times=2))
        scen = gen_scenario(BASE, 12, events=80, empty_every=0, rules=rules)
        srv = self.server(scen)
        res = self.fetch_range(srv, BASE, BASE + 11, "-j", "4",
                               "--max-window-hours", "1", "--max-attempts",
                               "3", *self.FAST)
        self.assertRc(res, 1)
        good = [h for h in range(BASE, BASE + 12) if h not in bad]
        self.assertCleanOutcome(srv, good, failed=bad)
        per_hour = {}
        for e in srv.requests():
            per_hour.setdefault(H(e["start"]), []).append(e)
        for h in bad:
            self.assertEqual(len(per_hour[h]), 3,
                             "hour %s: tries %s" % (F(h), per_hour[h]))
            self.assertIn(F(h), res.stderr, "the failed hour is reported")
        # the same data set, healthy now: only the failed hours are asked
        scen2 = dict(scen)
        scen2.pop("rules")
        srv2 = self.server(scen2, name="healthy")
        res2 = self.fetch_range(srv2, BASE, BASE + 11, "-j", "4",
                                "--max-window-hours", "1", *self.FAST)
        self.assertRc(res2, 0)
        self.assertCoversExactly(srv2.requests(), bad)
        self.assertCleanOutcome(srv2, range(BASE, BASE + 12))


# ======================================================== hostile answers ==

class Hostile(RelCase):

    def test_hostile_member_names_absolute_and_control_bytes(self):
        def ctl(i, text):   # window i's member name with a control byte
            return text % (PROJECT, PROJECT, i)
        names = [
            str(self.tmp / "abs-escape.json.gz"),            # absolute
            "/etc/amp2s3-abs.json.gz",
            ctl(2, "%d/%d_2024-01-01_%d#7.json.gz\x01"),
            ctl(3, "%d/%d_2024-01-01_%d#7\n.json.gz"),
            ctl(4, "\x1b[2J%d/%d_2024-01-01_%d#7.json.gz"),
            ctl(5, "%d/%d_2024-01-01_%d#7.json.gz\x7f"),
            ctl(6, "%d\\%d_2024-01-01_%d#7.json.gz"),
            ctl(7, "%d/./%d_2024-01-01_%d#7.json.gz"),
        ]
        rules = [rule({"kind": "hostile_name", "name": n},
                      contains=F(BASE + i)) for i, n in enumerate(names)]
        srv = self.server(gen_scenario(BASE, len(names) + 1, events=10,
                                       parts=1, empty_every=0, rules=rules))
        before = self.snapshot_outside(self.data, srv.dir)
        res = self.fetch_range(srv, BASE, BASE + len(names), "-j", "4",
                               "--max-window-hours", "1", *self.FAST)
        self.assertRc(res, 1)
        self.assertEqual(self.snapshot_outside(self.data, srv.dir) - before,
                         set(), "files created outside the data dir")
        self.assertFalse(os.path.exists("/etc/amp2s3-abs.json.gz"))
        bad = range(BASE, BASE + len(names))
        self.assertCleanOutcome(srv, [BASE + len(names)], failed=bad)
        for line in res.stderr.splitlines():
            self.assertNotIn("\x1b", line, "a raw control byte was logged")

    def test_duplicate_member_names(self):
        """Two members for one (hour, part): written the same way, or
        spelled differently ("_6#0" and "_06#00").  The window fails with
        a message that says what is wrong."""
        names = {BASE: mname(BASE, 0),
                 BASE + 1: "%d/%d_2024-01-01_01#00.json.gz" % (PROJECT,
                                                               PROJECT)}
        rules = [rule({"kind": "hostile_name", "name": n}, contains=F(h))
                 for h, n in names.items()]
        srv = self.server(gen_scenario(BASE, 3, events=10, parts=1,
                                       empty_every=0, rules=rules))
        res = self.fetch_range(srv, BASE, BASE + 2, "-j", "3",
                               "--max-window-hours", "1", "--max-attempts",
                               "2", *self.FAST)
        self.assertRc(res, 1)
        self.assertCleanOutcome(srv, [BASE + 2], failed=names)
        for h in names:
            lines = [x for x in res.stderr.splitlines()
                     if "failed" in x and F(h) in x]
            self.assertEqual(len(lines), 1, res.stderr)
            self.assertIn("duplicate", lines[0].lower(),
                          "the failure of %s does not say what is wrong"
                          % F(h))

    def test_nul_in_member_name(self):
        """A name with a NUL: everything after it must not be silently
        dropped (the name is not an Export API member name)."""
        good = [b'{"n":1}\n', b'{"n":2}\n']
        zbody = raw_zip([
            (mname(BASE, 0), gz(good[0])),
            (mname(BASE, 1).encode() + b"\x00/../../nul-escape",
             gz(b'{"smuggled":true}\n'))])
        ctrl = raw_zip([(mname(BASE + 1, 0), gz(good[1]))])
        srv = RawExport(self, {(BASE, BASE): zbody,
                               (BASE + 1, BASE + 1): ctrl})
        before = self.snapshot_outside(self.data)
        res = self.run_with("--start-date", F(BASE), "--end-date",
                            F(BASE + 1), "-j", "2", "--max-window-hours",
                            "1", *self.FAST, env=self.env(None,
                                                          AMP_API_URL=srv.url))
        self.assertEqual(self.snapshot_outside(self.data) - before, set())
        got = self.hour_path(BASE).read_bytes() \
            if self.hour_path(BASE).exists() else None
        self.assertIsNone(got, "an hour was written from a zip whose member "
                          "name holds a NUL; content: %r" % (got,))
        self.assertRc(res, 1)
        self.assertEqual(self.hour_path(BASE + 1).read_bytes(), good[1])
        self.assertOnlyHours([BASE + 1])
        self.assertNoTemporaries()

    def test_zip_bomb_is_refused_without_filling_the_disk(self):
        # 64 MiB of zeros, gzip'ed (~65 KB), deflated again in the zip
        # (a few hundred bytes): >100000x.  A file-size limit of 8 MiB
        # proves amp2s3 never wrote anything near the inflated size: it
        # would otherwise fail with EFBIG (exit 5) instead of refusing.
        bomb = gz(b"\0" * (64 * MiB))
        zbody = raw_zip([(mname(BASE, 0), bomb)], deflate=True)
        self.assertLess(len(zbody), 2000)
        ok = raw_zip([(mname(BASE + 1, 0), gz(b'{"ok":1}\n'))])
        srv = RawExport(self, {(BASE, BASE): zbody,
                               (BASE + 1, BASE + 1): ok})
        res = self.run_with("--start-date", F(BASE), "--end-date",
                            F(BASE + 1), "-j", "2", "--max-window-hours",
                            "1", *self.FAST,
                            env=self.env(None, AMP_API_URL=srv.url),
                            preexec=limit_fsize(8 * MiB), timeout=60)
        self.assertRc(res, 1)
        self.assertFalse(self.hour_path(BASE).exists())
        self.assertEqual(self.hour_path(BASE + 1).read_bytes(), b'{"ok":1}\n')
        self.assertOnlyHours([BASE + 1])
        self.assertNoTemporaries()
        self.assertRegex(res.stderr, r"1000|inflat", "a clear reason")
        self.assertIn("20240101T00", res.stderr)

    def test_corrupt_answers_persistently(self):
        """Each window broken in another way, every time it is asked: the
        broken windows fail (exit 1), the good one is exact, nothing partial
        is left."""
        h = [BASE + i for i in range(9)]
        line = b'{"event_type":"x","n":%d}\n'
        good = b"".join(line % i for i in range(50))
        g = gz(good)
        bad_deflate = bytearray(g)
        bad_deflate[10 + (len(g) - 18) // 2] ^= 0xFF
        bad_gzcrc = bytearray(g)
        bad_gzcrc[-8] ^= 0x01
        full = raw_zip([(mname(h[4], 0), g), (mname(h[4], 1), g)])
        answers = {
            (h[0], h[0]): raw_zip([(mname(h[0], 0), g)]),          # control
            (h[1], h[1]): raw_zip([(mname(h[1], 0), bytes(bad_deflate))]),
            (h[2], h[2]): raw_zip([(mname(h[2], 0), bytes(bad_gzcrc))]),
            (h[3], h[3]): raw_zip([(mname(h[3], 0), g)], bad_crc={0}),
            (h[4], h[4]): full[:int(len(full) * 0.6)],   # honest length
            (h[5], h[5]): raw_zip([(mname(h[5], 0), good)]),  # not gzip
            (h[6], h[6]): raw_zip([(mname(h[6], 0),
                                    gz(good + b"not json at all\n"))]),
            (h[7], h[7]): raw_zip([(mname(h[7], 0),
                                    gz(b'{"a":1}\n{"b":\n'))]),
            (h[8], h[8]): raw_zip([(mname(h[8], 0), g[:-12])]),  # short gz
        }
        srv = RawExport(self, answers)
        res = self.run_with("--start-date", F(h[0]), "--end-date", F(h[8]),
                            "-j", "4", "--max-window-hours", "1",
                            "--max-attempts", "2", *self.FAST,
                            env=self.env(None, AMP_API_URL=srv.url))
        self.assertRc(res, 1)
        self.assertEqual(self.hour_path(h[0]).read_bytes(), good)
        self.assertOnlyHours([h[0]])
        self.assertNoTemporaries()
        for x in h[1:]:
            self.assertIn(F(x), res.stderr, "failure of %s reported" % F(x))

    def test_seventy_megabyte_line_fails_the_window_cleanly(self):
        rng = random.Random(7)
        block = "".join(rng.choice(string.ascii_letters)
                        for _ in range(20000)).encode()
        big = b'{"a":"' + block * (70 * 1000 * 1000 // len(block)) + b'"}\n'
        self.assertGreater(len(big), 64 * MiB)
        c = zlib.compressobj(1, zlib.DEFLATED, 31)
        biggz = c.compress(big) + c.flush()
        del big
        small = b'{"small":true}\n'
        srv = RawExport(self, {
            (BASE, BASE): raw_zip([(mname(BASE, 0), biggz)]),
            (BASE + 1, BASE + 1): raw_zip([(mname(BASE + 1, 0), gz(small))])})
        res = self.run_with("--start-date", F(BASE), "--end-date",
                            F(BASE + 1), "-j", "2", "--max-window-hours",
                            "1", "--max-attempts", "2", *self.FAST,
                            env=self.env(None, AMP_API_URL=srv.url),
                            timeout=120)
        self.assertRc(res, 1)
        self.assertFalse(self.hour_path(BASE).exists())
        self.assertEqual(self.hour_path(BASE + 1).read_bytes(), small)
        self.assertOnlyHours([BASE + 1])
        self.assertNoTemporaries()
        self.assertIn("20240101T00", res.stderr)


# ========================================================= configuration ==

class Config(RelCase):

    KEY = "key-Odd=#x"
    ODD_SECRET = 'S e"c\\r $t #n'

    def test_dotenv_quoting_crlf_bom(self):
        k, s = self.KEY, self.ODD_SECRET
        dq = s.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
        variants = {
            "bom-crlf-double": "\ufeffAMP_API_KEY=\"%s\"\r\n"
                               "AMP_SECRET_KEY=\"%s\"\r\n" % (k, dq),
            "single-export-comments": "# settings\n\nexport AMP_API_KEY='%s'"
                                      "\n  # indented comment\n"
                                      "AMP_SECRET_KEY='%s'\n" % (k, s),
            "unquoted-trailing-comment-crlf":
                "\ufeff# c\r\nAMP_API_KEY=%s   # the key\r\n\r\n"
                "export AMP_SECRET_KEY=\"%s\"   # the secret\r\n" % (k, dq),
        }
        srv = self.server(gen_scenario(BASE, 1, events=5),
                          args=["--api-key", k, "--secret-key", s])
        env = self.env(srv, AMP_API_KEY=None, AMP_SECRET_KEY=None)
        for name, text in variants.items():
            with self.subTest(variant=name):
                path = self.tmp / (name + ".env")
                path.write_bytes(text.encode("utf-8"))
                os.chmod(path, 0o600)
                n0 = len(srv.requests())
                ddir = self.work / ("d-" + name)
                res = self.fetch_range(srv, BASE, BASE, "--env-file",
                                       str(path), "--data-dir", str(ddir),
                                       env=env)
                self.assertRc(res, 0)
                reqs = srv.requests()[n0:]
                self.assertTrue(reqs)
                self.assertTrue(all(e["auth_ok"] and e["auth_user"] == k
                                    for e in reqs), reqs)
                self.assertEqual((ddir / api.hour_file_name(BASE))
                                 .read_bytes(), srv.dataset.expected(BASE))
                self.assertNotIn(s, res.stderr)

    def test_dates_out_of_range_exit_2(self):
        srv = self.server(gen_scenario(BASE, 2))
        cases = [("99999999T99", F(BASE)), (F(BASE), "99999999T99"),
                 ("20240230T00", F(BASE + 48 * 24)), ("20240101T24",
                                                      F(BASE + 30)),
                 ("2024010100", F(BASE)), ("20241301T00", "20241301T01"),
                 ("0", F(BASE)), ("", F(BASE)),
                 (F(BASE + 5), F(BASE + 4))]
        for a, b in cases:
            with self.subTest(start=a, end=b):
                res = self.run_amp("--start-date", a, "--end-date", b,
                                   server=srv)
                self.assertRc(res, 2)
                lines = [x for x in res.stderr.splitlines() if x.strip()]
                self.assertEqual(len(lines), 1, res.stderr)
        self.assertEqual(srv.requests(), [])
        self.assertEqual(self.hour_files(), [])


# =================================================================== lock ==

class Lock(RelCase):

    def test_second_run_exits_4_and_wait_lock_waits_then_succeeds(self):
        # run a's first request gets no answer: a holds the lock until its
        # --stall-timeout aborts that request and the retry succeeds
        srv = self.server(gen_scenario(BASE, 4, events=30, rules=[
            rule({"kind": "slow_first_byte", "seconds": 60}, n=1)]))
        a = self.spawn("a", "--start-date", F(BASE), "--end-date",
                       F(BASE + 1), "--max-window-hours", "2",
                       "--stall-timeout", "2", *self.FAST, server=srv)
        # run a holds the lock and is held by the server
        poll(lambda: srv.status()["inflight"] >= 1 or a.poll() is not None,
             20, "run a's request to be held")
        self.assertIsNone(a.poll(), "run a ended early")
        b = self.run_amp("--start-date", F(BASE), "--end-date", F(BASE + 3),
                         server=srv, timeout=20)
        self.assertRc(b, 4)
        self.assertIn(".amp2s3.lock", b.stderr)
        self.assertEqual(len([x for x in b.stderr.splitlines()
                              if x.strip()]), 1, b.stderr)
        c = self.spawn("c", "--start-date", F(BASE), "--end-date",
                       F(BASE + 3), "--wait-lock", "-j", "2",
                       "--max-window-hours", "1", *self.FAST, server=srv)
        self.assertEqual(srv.status()["requests"], 1,
                         "run b or c sent a request while a held the lock")
        self.assertEqual(self.wait_exit(a, 30, "run a"), 0,
                         self.stderr_of(a))
        t_a_done = time.time()
        self.assertEqual(self.wait_exit(c, 30, "run c"), 0,
                         self.stderr_of(c))
        reqs = srv.requests()
        a_reqs = [e for e in reqs if window_of(e) == (BASE, BASE + 1)]
        c_reqs = [e for e in reqs if window_of(e) != (BASE, BASE + 1)]
        self.assertEqual(len(a_reqs), 2, "a: the stalled try and a retry")
        self.assertCoversExactly(c_reqs, [BASE + 2, BASE + 3])
        for e in c_reqs:
            self.assertGreaterEqual(e["t_start"], max(x["t_end"]
                                                      for x in a_reqs),
                                    "run c fetched while a held the lock")
            self.assertLessEqual(e["t_start"], t_a_done + 30)
        self.assertCleanOutcome(srv, range(BASE, BASE + 4))


# ================================================================ signals ==

class Signals(RelCase):

    def _interrupt_slow_transfers(self, sig, rc):
        held = [BASE + 4, BASE + 5, BASE + 6, BASE + 7]
        srv = self.server(gen_scenario(BASE, 8, events=200, empty_every=0,
                                       rules=[rule({"kind": "stall",
                                                    "seconds": 60,
                                                    "after_fraction": 0.5},
                                                   contains=[F(h) for h in
                                                             held])]))
        p = self.spawn("amp", "--start-date", F(BASE), "--end-date",
                       F(BASE + 7), "-j", "4", "--max-window-hours", "1",
                       "--stall-timeout", "60", *self.FAST, server=srv)

        def held_now():
            if p.poll() is not None:
                return True
            zips = [n for n in self.listing() if n.startswith(".tmp-")]
            return (srv.status()["inflight"] >= 4 and len(zips) >= 4 and
                    len(self.hour_files()) >= 4)
        poll(held_now, 30, "four held transfers and four hours done")
        self.assertIsNone(p.poll(), "amp2s3 ended before the signal: %s"
                          % self.stderr_of(p))
        self.assertTrue(any(n.startswith(".tmp-") for n in self.listing()),
                        "no partial download on disk at the signal")
        t0 = time.monotonic()
        p.send_signal(sig)
        got = self.wait_exit(p, 10, "exit after the signal")
        self.assertEqual(got, rc, self.stderr_of(p))
        self.assertLess(time.monotonic() - t0, 5)
        present = self.assertPresentHoursExact(srv)
        self.assertEqual(sorted(present), list(range(BASE, BASE + 4)))
        self.assertNoTemporaries()

    def test_sigint_during_slow_transfers(self):
        self._interrupt_slow_transfers(signal.SIGINT, 130)

    def test_sigterm_during_slow_transfers(self):
        self._interrupt_slow_transfers(signal.SIGTERM, 143)

    def test_two_signals_in_a_row_exit_at_once(self):
        srv = self.server(gen_scenario(BASE, 4, events=50),
                          args=["--hold-ms", "60000"])
        p = self.spawn("amp", "--start-date", F(BASE), "--end-date",
                       F(BASE + 3), "-j", "4", "--max-window-hours", "1",
                       "--stall-timeout", "120", *self.FAST, server=srv)
        poll(lambda: srv.status()["inflight"] >= 4 or p.poll() is not None,
             20, "four held requests")
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(p, 10), 143)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertEqual(self.hour_files(), [])

    def _kill9_iteration(self, seed):
        rng = random.Random(seed)
        n, hold = 10, 0.3
        srv = self.server(gen_scenario(BASE, n, events=40, empty_every=4,
                                       seed=seed), name="srv%d" % seed,
                          args=["--hold-ms", str(int(hold * 1000))])
        j, maxw = rng.choice([2, 3, 4]), rng.choice([1, 2])
        size = min(maxw, -(-n // j))
        target = rng.randint(1, -(-n // size))     # one of the windows
        p = self.spawn("k%d" % seed, "--start-date", F(BASE), "--end-date",
                       F(BASE + n - 1), "-j", str(j), "--max-window-hours",
                       str(maxw), *self.FAST, server=srv)
        poll(lambda: srv.status()["requests"] >= target or
             p.poll() is not None, 30, "request %d" % target)
        # a random point within that request (the server holds it for
        # ${hold}; the margin keeps the kill inside the run)
        t = time.monotonic() + rng.random() * hold / 3
        while time.monotonic() < t and p.poll() is None:
            time.sleep(0.005)
        self.assertIsNone(p.poll(), "the run ended before the kill")
        os.kill(p.pid, signal.SIGKILL)
        self.assertEqual(p.wait(10), -signal.SIGKILL)
        present = self.assertPresentHoursExact(srv)
        before = len(srv.requests())
        res = self.fetch_range(srv, BASE, BASE + n - 1, "-j", "4",
                               *self.FAST)
        self.assertRc(res, 0)
        missing = sorted(set(range(BASE, BASE + n)) - set(present))
        self.assertCoversExactly(srv.requests()[before:], missing)
        self.assertCleanOutcome(srv, range(BASE, BASE + n))
        shutil.rmtree(self.data)
        return len(present)

    def test_kill9_at_random_points_then_rerun(self):
        for seed in (11, 12, 13, 14):
            with self.subTest(seed=seed):
                self._kill9_iteration(seed)


# =================================================================== disk ==

class Disk(RelCase):

    def _big_hours_scenario(self, hours, lines, width, seed=3):
        rng = random.Random(seed)
        data = {}
        for h in hours:
            data[F(h)] = [["%s" % json.dumps(
                {"n": i, "pad": "".join(rng.choice(string.ascii_letters)
                                        for _ in range(width))})
                for i in range(lines)]]
        return {"hours": data}

    def test_file_size_limit_names_the_file_exit_5(self):
        scen = gen_scenario(BASE, 4, events=20, empty_every=0)
        scen.update(self._big_hours_scenario([BASE + 2], 300, 720))
        srv = self.server(scen)
        self.assertGreater(len(srv.dataset.expected(BASE + 2)), 192 * 1024)
        res = self.run_with("--start-date", F(BASE), "--end-date",
                            F(BASE + 3), "-j", "1", "--max-window-hours",
                            "1", *self.FAST, server=srv,
                            preexec=limit_fsize(192 * 1024))
        self.assertRc(res, 5)
        self.assertIn("2024-01-01_02", res.stderr, "the file is named")
        self.assertIn(os.strerror(27), res.stderr)   # EFBIG
        self.assertFalse(self.hour_path(BASE + 2).exists())
        present = self.assertPresentHoursExact(srv)
        self.assertNotIn(BASE + 2, present)
        self.assertNoTemporaries()

    def test_full_filesystem_exit_5(self):
        mnt = self.tmp / "small"
        mnt.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                            str(mnt)], capture_output=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs: %s" % r.stderr.decode()
                          .strip())
        self.addCleanup(subprocess.run, ["umount", "-l", str(mnt)],
                        capture_output=True)
        hours = [BASE + i for i in range(6)]
        srv = self.server(self._big_hours_scenario(hours, 200, 1500))
        ddir = mnt / "data"
        res = self.run_with("--start-date", F(hours[0]), "--end-date",
                            F(hours[-1]), "-j", "2", "--max-window-hours",
                            "1", "--data-dir", str(ddir), *self.FAST,
                            server=srv)
        self.assertRc(res, 5)
        self.assertIn(os.strerror(28), res.stderr)   # ENOSPC
        self.assertIn(str(ddir), res.stderr, "the file is named")
        names = sorted(n for n in os.listdir(ddir) if n.endswith(".jsonl")
                       and not n.startswith("."))
        self.assertLess(len(names), len(hours))
        for h in hours:
            p = ddir / api.hour_file_name(h)
            if p.exists():
                self.assertEqual(p.read_bytes(), srv.dataset.expected(h),
                                 p.name)
        self.assertNoTemporariesIn(ddir)


# ===================================================================== S3 ==

class S3Faults(RelCase):
    """amp2s3 -> fault_proxy -> sigv4_proxy -> s3rver."""

    s3 = fp = None

    @classmethod
    def setUpClass(cls):
        binary = os.environ.get("AMP2S3_BIN")
        if not (binary and os.access(binary, os.X_OK)):
            raise unittest.SkipTest("AMP2S3_BIN is not set to an "
                                    "executable (%r)" % (binary,))
        cls.s3 = s3env.S3Env().start()
        try:
            cls.fp = FaultProxy(cls.s3.endpoint.split("//", 1)[1],
                                cls.s3.dir)
        except BaseException:
            cls.s3.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.fp is not None:
            cls.fp.stop()
        if cls.s3 is not None:
            cls.s3.stop()

    def setUp(self):
        super().setUp()
        self.fp.clear()
        self.prefix = "rel-%s/" % self._testMethodName[5:40]
        self.pending0 = set(self.s3.pending_uploads())

    def s3_env(self, server=None, **over):
        e = dict(AWS_BUCKET_NAME=self.s3.bucket, AWS_REGION=self.s3.region,
                 AWS_ENDPOINT_URL_S3=self.fp.endpoint,
                 AWS_ACCESS_KEY_ID=self.s3.access_key,
                 AWS_SECRET_ACCESS_KEY=self.s3.secret_key,
                 AWS_S3_PREFIX=self.prefix)
        e.update(over)
        return self.env(server, **e)

    def key(self, h):
        return self.prefix + api.hour_file_name(h)

    def objects(self):
        return self.s3.list_keys(self.prefix)

    def assertObjectsExact(self, want):
        """${want}: {hour: bytes}; the prefix holds exactly these."""
        got = self.objects()
        self.assertEqual(sorted(got), sorted(self.key(h) for h in want),
                         "objects under %s%s" % (self.prefix,
                                                 self.explain()))
        for h, data in want.items():
            self.assertEqual(self.s3.get_bytes(self.key(h)), data,
                             "object %s differs" % self.key(h))

    def assertNoNewPendingUploads(self):
        self.assertEqual(set(self.s3.pending_uploads()) - self.pending0,
                         set(), "orphan multipart uploads in s3rver")

    def write_local(self, h, data):
        self.data.mkdir(exist_ok=True)
        self.hour_path(h).write_bytes(data)

    def expected_all(self, srv, hours):
        return {h: srv.dataset.expected(h) for h in hours}

    # -- bursts -------------------------------------------------------

    def test_500_and_slowdown_bursts(self):
        hours = range(BASE, BASE + 8)
        srv = self.server(gen_scenario(BASE, 8, events=30, empty_every=3))
        self.fp.add({"kind": "status", "status": 500,
                     "headers": {"Retry-After": "0"}}, times=4, method="PUT")
        self.fp.add({"kind": "status", "status": 503, "code": "SlowDown"},
                    times=2, method="PUT")
        self.fp.add({"kind": "status", "status": 503, "code": "SlowDown",
                     "headers": {"Retry-After": "0"}}, times=4,
                    method="PUT")
        self.fp.add({"kind": "status", "status": 500}, times=1,
                    method="GET")
        res = self.run_with("--start-date", F(BASE), "--end-date",
                            F(BASE + 7), "-j", "4", "-u", "4",
                            "--max-attempts", "12", *self.FAST,
                            cmd="all", env=self.s3_env(srv))
        self.assertRc(res, 0)
        self.assertObjectsExact(self.expected_all(srv, hours))
        self.assertEqual(self.hour_files(), [], "uploaded files not removed")
        self.assertNoTemporaries()
        log = self.fp.log()
        self.assertEqual(sum(e["status"] in (500, 503) for e in log), 11)
        puts = [e for e in log if e["method"] == "PUT" and
                e["status"] == 200]
        self.assertEqual(sorted(e["path"] for e in puts),
                         sorted("/%s/%s" % (self.s3.bucket, self.key(h))
                                for h in hours), "one good PUT per hour")

    def test_resets_during_upload(self):
        hours = range(BASE, BASE + 6)
        srv = self.server(gen_scenario(BASE, 6, events=80, empty_every=0))
        self.fp.add({"kind": "reset", "after_fraction": 0.5}, times=3,
                    method="PUT")
        self.fp.add({"kind": "reset"}, times=2, method="PUT")
        res = self.run_with("--start-date", F(BASE), "--end-date",
                            F(BASE + 5), "-j", "3", "-u", "3", *self.FAST,
                            cmd="all", env=self.s3_env(srv))
        self.assertRc(res, 0)
        self.assertObjectsExact(self.expected_all(srv, hours))
        self.assertEqual(self.hour_files(), [])
        resets = [e for e in self.fp.log() if e["status"] == "reset"]
        self.assertEqual(len(resets), 5)
        self.assertTrue(any(e["body_bytes"] > 0 for e in resets),
                        "no reset happened mid-body")

    # -- failures -----------------------------------------------------

    def test_failed_uploads_keep_local_files_exit_1_rerun_completes(self):
        rng = random.Random(5)
        data = {BASE + i: b"".join(b'{"i":%d,"r":%d}\n' % (j, rng.random()
                                                             * 1e9)
                                   for j in range(100)) for i in range(5)}
        data[BASE + 2] = b""                                 # empty hour
        for h, d in data.items():
            self.write_local(h, d)
        stuck = [BASE + 1, BASE + 3]
        for h in stuck:
            self.fp.add({"kind": "status", "status": 500}, method="PUT",
                        path_contains=api.hour_file_name(h))
        res = self.run_with("-u", "3", "--max-attempts", "2", cmd="sync",
                            env=self.s3_env())
        self.assertRc(res, 1)
        for h in stuck:
            self.assertEqual(self.hour_path(h).read_bytes(), data[h])
            self.assertIn(api.hour_file_name(h), res.stderr)
        self.assertEqual(sorted(self.hour_files()),
                         sorted(api.hour_file_name(h) for h in stuck))
        self.assertObjectsExact({h: d for h, d in data.items()
                                 if h not in stuck})
        self.fp.clear()
        res = self.run_with(cmd="sync", env=self.s3_env())
        self.assertRc(res, 0)
        self.assertObjectsExact(data)
        self.assertEqual(self.hour_files(), [])
        self.assertNoTemporaries()

    def test_multipart_part_failing_halfway_is_aborted_and_retried(self):
        rng = random.Random(9)
        big = b"".join(b'{"n":%d,"pad":"%s"}\n' % (i, "".join(
            rng.choice(string.ascii_letters) for _ in range(100)).encode())
            for i in range(30000))
        self.assertGreater(len(big), 3 * MiB)
        small = b'{"small":1}\n'
        self.write_local(BASE, big)
        self.write_local(BASE + 1, small)
        self.fp.add({"kind": "status", "status": 500}, method="PUT",
                    query_contains="partNumber=2&")
        mp = ["--multipart-threshold-mb", "1"]
        res = self.run_with("--max-attempts", "2", *mp, cmd="sync",
                            env=self.s3_env(AMP2S3_S3_PART_SIZE_MB="1"))
        self.assertRc(res, 1)
        self.assertEqual(self.hour_path(BASE).read_bytes(), big)
        self.assertObjectsExact({BASE + 1: small})
        self.assertNoNewPendingUploads()
        log = self.fp.log()
        parts = [e for e in log if "partNumber=" in e["query"]]
        self.assertTrue(any(e["query"].startswith("partNumber=1&") and
                            e["status"] == 200 for e in parts),
                        "the upload did not fail halfway")
        self.assertFalse(any(e["query"].startswith("partNumber=3&")
                             for e in parts), "went on after part 2 failed")
        aborts = [e for e in log if e["method"] == "DELETE" and
                  e["query"].startswith("uploadId=")]
        self.assertEqual([e["status"] for e in aborts], [204])
        # healthy again: the next run uploads it cleanly
        self.fp.clear()
        res = self.run_with(*mp, cmd="sync", env=self.s3_env())
        self.assertRc(res, 0)
        self.assertObjectsExact({BASE: big, BASE + 1: small})
        self.assertEqual(self.hour_files(), [])
        self.assertNoNewPendingUploads()

    # -- listings -----------------------------------------------------

    def _listing_fault_variants(self):
        k = self.key(BASE)
        head = '<?xml version="1.0" encoding="UTF-8"?>\n' \
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/' \
            '2006-03-01/"><Name>%s</Name>' % self.s3.bucket
        contents = "".join("<Contents><Key>%s</Key><Size>1</Size></Contents>"
                           % self.key(BASE + i) for i in range(4))
        unit = "<Contents><Key>%sx</Key><Size>1</Size></Contents>" % \
            self.prefix
        return {
            "not-xml": {"kind": "body", "body": "<html><body>502 Bad "
                        "Gateway</body></html>", "content_type":
                        "text/html"},
            "truncated-xml": {"kind": "body",
                              "body": head + contents[:-30]},
            "bad-size": {"kind": "body", "body": head + "<Contents><Key>%s"
                         "</Key><Size>-1</Size></Contents>"
                         "</ListBucketResult>" % k},
            "truncated-without-token": {
                "kind": "body", "body": head + contents +
                "<IsTruncated>true</IsTruncated></ListBucketResult>"},
            "enormous": {"kind": "fill", "prefix": head +
                         "<IsTruncated>false</IsTruncated>", "unit": unit,
                         "repeat": (17 * MiB) // len(unit) + 1,
                         "suffix": "</ListBucketResult>"},
            "error-in-200": {"kind": "body", "body":
                             "<Error><Code>AccessDenied</Code><Message>no"
                             "</Message></Error>"},
        }

    def test_malformed_and_enormous_listings_delete_nothing(self):
        """A ListObjectsV2 answer that is not a listing: the run stops
        (exit non-zero, a message), deletes nothing, uploads nothing and
        fetches nothing, whatever the command."""
        local = {BASE + i: b'{"local":%d}\n' % i for i in range(4)}
        srv = self.server(gen_scenario(BASE, 4))
        for name in self._listing_fault_variants():
            for cmd in ("sync", "all"):
                with self.subTest(listing=name, cmd=cmd):
                    self.prefix = "rel-listing-%s-%s/" % (name, cmd)
                    act = self._listing_fault_variants()[name]
                    shutil.rmtree(self.data, ignore_errors=True)
                    for h, d in local.items():
                        self.write_local(h, d)
                    # hours 0 and 1 really are in S3: a good listing
                    # would make amp2s3 remove their local copies
                    stored = {BASE: local[BASE], BASE + 1: local[BASE + 1]}
                    for h, d in stored.items():
                        self.s3.put_bytes(self.key(h), d)
                    self.fp.clear()
                    self.fp.add(act, method="GET",
                                query_contains="list-type=2")
                    n0 = len(srv.requests())
                    res = self.run_with("--start-date", F(BASE),
                                        "--end-date", F(BASE + 3),
                                        "--max-attempts", "2", cmd=cmd,
                                        env=self.s3_env(srv), timeout=60)
                    self.assertNotEqual(res.rc, 0, "a broken listing was "
                                        "taken for a good one; %s"
                                        % self.explain(res))
                    self.assertLessEqual(res.elapsed, 30)
                    self.assertTrue(res.stderr.strip())
                    for h, d in local.items():
                        self.assertTrue(self.hour_path(h).exists(),
                                        "local %s deleted" % F(h))
                        self.assertEqual(self.hour_path(h).read_bytes(), d)
                    self.assertEqual([e["method"] + " " + e["path"]
                                      for e in self.fp.log()
                                      if e["method"] != "GET"], [],
                                     "wrote to S3 after a failed listing")
                    self.assertEqual(srv.requests()[n0:], [],
                                     "fetched after a failed listing")
                    self.assertObjectsExact(stored)
        self.assertNoTemporaries()

    def test_second_listing_page_malformed_deletes_nothing(self):
        local = {BASE + i: b'{"p":%d}\n' % i for i in range(4)}
        for h, d in local.items():
            self.write_local(h, d)
            self.s3.put_bytes(self.key(h), d)
        self.fp.add({"kind": "body", "body": "<ListBucketResult><Contents>"},
                    method="GET", query_contains="continuation-token=")
        env = self.s3_env(AMP2S3_S3_MAX_KEYS="2")
        res = self.run_with("--max-attempts", "2", cmd="sync", env=env)
        self.assertNotEqual(res.rc, 0)
        for h, d in local.items():
            self.assertEqual(self.hour_path(h).read_bytes(), d)
        lists = [e for e in self.fp.log() if e["method"] == "GET"]
        self.assertGreaterEqual(len(lists), 2, "no second page was asked")
        self.fp.clear()
        res = self.run_with(cmd="sync", env=env)
        self.assertRc(res, 0)
        self.assertEqual(self.hour_files(), [], "stored hours not removed")
        self.assertObjectsExact(local)

    # -- signals with uploads in flight --------------------------------

    def test_sigterm_during_held_uploads_then_rerun(self):
        hours = range(BASE, BASE + 4)
        held = [BASE + 1, BASE + 3]
        srv = self.server(gen_scenario(BASE, 4, events=30, empty_every=0))
        for h in held:
            self.fp.add({"kind": "hold"}, method="PUT",
                        path_contains=api.hour_file_name(h))
        p = self.spawn("amp", "--start-date", F(BASE), "--end-date",
                       F(BASE + 3), "-j", "2", "-u", "4",
                       "--stall-timeout", "60", *self.FAST, cmd="all",
                       env=self.s3_env(srv))

        def state():
            if p.poll() is not None:
                return True
            # "Done": stored and the local copy removed (a signal between
            # the two leaves the copy, which is safe but not this case).
            return (self.fp.status()["inflight"] >= 2 and
                    len(self.objects()) >= 2 and
                    len(self.hour_files()) == len(held))
        poll(state, 30, "two uploads held, two done")
        self.assertIsNone(p.poll(), self.stderr_of(p))
        p.send_signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(p, 10), 143, self.stderr_of(p))
        self.assertObjectsExact({h: srv.dataset.expected(h) for h in hours
                                 if h not in held})
        self.assertEqual(sorted(self.hour_files()),
                         sorted(api.hour_file_name(h) for h in held))
        self.assertHoursExact(srv, held)
        self.assertNoTemporaries()
        self.fp.clear()
        n = len(srv.requests())
        res = self.run_with("--start-date", F(BASE), "--end-date",
                            F(BASE + 3), cmd="all", env=self.s3_env(srv))
        self.assertRc(res, 0)
        self.assertEqual(srv.requests()[n:], [], "refetched stored hours")
        self.assertObjectsExact(self.expected_all(srv, hours))
        self.assertEqual(self.hour_files(), [])

    def test_second_signal_exits_while_the_abort_is_held(self):
        """First SIGTERM: the held part upload is cancelled and amp2s3
        aborts the multipart upload, a request the server holds too.  The
        second SIGTERM ends the process at once."""
        rng = random.Random(4)
        big = bytes(rng.choice(b"abcdefgh") for _ in range(3 * MiB))
        big = big.replace(b"h", b"\n")
        self.write_local(BASE, big)
        self.fp.add({"kind": "hold"}, method="PUT",
                    query_contains="partNumber=2&")
        self.fp.add({"kind": "hold"}, method="DELETE",
                    query_contains="uploadId=")
        p = self.spawn("amp", "--multipart-threshold-mb", "1",
                       "--stall-timeout", "60", cmd="sync",
                       env=self.s3_env(AMP2S3_S3_PART_SIZE_MB="1"))

        def active(method, q):
            st = self.fp.status()
            return p.poll() is not None or any(
                e["method"] == method and q in e["query"]
                for e in st.get("active", []))
        poll(lambda: active("PUT", "partNumber=2&"), 30,
             "the held part upload")
        self.assertIsNone(p.poll(), self.stderr_of(p))
        p.send_signal(signal.SIGTERM)
        poll(lambda: active("DELETE", "uploadId="), 15,
             "the held abort request")
        self.assertIsNone(p.poll(), "amp2s3 exited without trying to "
                          "abort the upload: %s" % self.stderr_of(p))
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(p, 10), 143)
        self.assertLess(time.monotonic() - t0, 2.0,
                        "the second signal did not exit at once")
        self.assertEqual(self.hour_path(BASE).read_bytes(), big)
        self.assertObjectsExact({})
        self.assertNoTemporaries()
        # the next run uploads it; the upload the killed run could not
        # abort is left to the bucket's lifecycle rule
        self.fp.clear()
        res = self.run_with("--multipart-threshold-mb", "1", cmd="sync",
                            env=self.s3_env(AMP2S3_S3_PART_SIZE_MB="1"))
        self.assertRc(res, 0)
        self.assertObjectsExact({BASE: big})
        self.assertEqual(self.hour_files(), [])

    def _kill9_all_iteration(self, seed, which, lo, hi):
        """kill -9 inside a random export request (which="fetch") or S3
        request ("upload") numbered lo..hi."""
        rng = random.Random(seed)
        n = 8
        self.prefix = "rel-kill9-%d/" % seed
        srv = self.server(gen_scenario(BASE, n, events=30, empty_every=3,
                                       seed=seed), name="srv%d" % seed,
                          args=["--hold-ms", "150"])
        self.fp.clear()
        self.fp.add({"kind": "delay"}, delay_s=0.2, method="PUT")
        target = rng.randint(lo, hi)
        s3_before = self.fp.status()["requests"]
        p = self.spawn("k%d" % seed, "--start-date", F(BASE), "--end-date",
                       F(BASE + n - 1), "-j", str(rng.choice([2, 4])),
                       "-u", str(rng.choice([1, 2])),
                       "--max-window-hours", "1", *self.FAST, cmd="all",
                       env=self.s3_env(srv))
        if which == "fetch":
            poll(lambda: srv.status()["requests"] >= target or
                 p.poll() is not None, 30, "export request %d" % target)
        else:
            # the listing, then one PUT per hour
            poll(lambda: self.fp.status()["requests"] - s3_before >=
                 target + 1 or p.poll() is not None, 30,
                 "S3 request %d" % (target + 1))
        t = time.monotonic() + rng.random() * 0.05   # inside that request
        while time.monotonic() < t and p.poll() is None:
            time.sleep(0.005)
        self.assertIsNone(p.poll(), "the run ended before the kill")
        os.kill(p.pid, signal.SIGKILL)
        self.assertEqual(p.wait(10), -signal.SIGKILL)
        local = self.assertPresentHoursExact(srv)
        remote = []
        for key in self.objects():
            h = H(key[len(self.prefix):][:10].replace("-", "") + "T" +
                  key[len(self.prefix):][11:13])
            self.assertEqual(self.s3.get_bytes(key), srv.dataset.expected(h),
                             "object %s after kill -9" % key)
            remote.append(h)
        before = len(srv.requests())
        self.fp.clear()
        res = self.run_with("--start-date", F(BASE), "--end-date",
                            F(BASE + n - 1), "-j", "4", *self.FAST,
                            cmd="all", env=self.s3_env(srv))
        self.assertRc(res, 0)
        missing = sorted(set(range(BASE, BASE + n)) - set(local) -
                         set(remote))
        self.assertCoversExactly(srv.requests()[before:], missing)
        self.assertObjectsExact(self.expected_all(srv, range(BASE,
                                                             BASE + n)))
        self.assertEqual(self.hour_files(), [])
        self.assertNoTemporaries()

    def test_kill9_at_random_points_of_all_then_rerun(self):
        # early and late in the fetching, early and late in the uploads
        for seed, which, lo, hi in ((21, "fetch", 1, 3), (22, "fetch", 4, 8),
                                    (23, "upload", 2, 4),
                                    (24, "upload", 5, 8)):
            with self.subTest(seed=seed, at=which):
                self._kill9_all_iteration(seed, which, lo, hi)

    # -- secrets ------------------------------------------------------

    def _assert_no_secret(self, texts, secrets):
        for where, text in texts.items():
            for s in secrets:
                self.assertNotIn(s, text, "a secret in the %s" % where)

    def test_secrets_never_logged(self):
        srv = self.server(gen_scenario(BASE, 3, events=10, rules=[
            rule({"status": 500}, n=1), rule({"status": 429}, n=2)]))
        amp_wrong = "Amp-Wrong-Secret-7hQ2"
        aws_wrong = "Aws-Wrong-Secret-Kp4Z"
        # (s3rver's secret is also its access key id: neither is logged)
        secrets = [SECRET, BASIC, amp_wrong, aws_wrong, self.s3.secret_key,
                   base64.b64encode(("%s:%s" % (API_KEY, amp_wrong))
                                    .encode()).decode()]
        for fmt in ("text", "json"):
            with self.subTest(fmt=fmt):
                self.prefix = "rel-secrets-%s/" % fmt
                logf = self.tmp / ("amp-%s.log" % fmt)
                common = ["--log-level", "debug", "--log-format", fmt,
                          "--log-file", str(logf), "--start-date", F(BASE),
                          "--end-date", F(BASE + 2), *self.FAST]
                self.fp.clear()
                self.fp.add({"kind": "status", "status": 500}, times=1,
                            method="PUT")
                ok = self.run_with(*common, cmd="all", env=self.s3_env(srv))
                self.assertRc(ok, 0)
                self.assertObjectsExact(self.expected_all(
                    srv, range(BASE, BASE + 3)))
                # Amplitude refuses the secret
                srv2 = self.server(gen_scenario(BASE + 10, 2),
                                   name="auth-" + fmt)
                amp = self.run_with(*common[:6], "--start-date",
                                    F(BASE + 10), "--end-date", F(BASE + 11),
                                    cmd="all", env=self.s3_env(
                                        srv2, AMP_SECRET_KEY=amp_wrong))
                self.assertRc(amp, 3)
                self.assertFalse(any(e["auth_ok"] for e in srv2.requests()))
                # S3 refuses the secret (stderr this time, no log file)
                aws = self.run_with("--log-level", "debug", "--log-format",
                                    fmt, "--start-date", F(BASE + 10),
                                    "--end-date", F(BASE + 11), cmd="all",
                                    env=self.s3_env(
                                        srv2,
                                        AWS_SECRET_ACCESS_KEY=aws_wrong))
                self.assertRc(aws, 3)
                self.assertIn("SignatureDoesNotMatch", aws.stderr)
                text = logf.read_text(errors="replace")
                self.assertIn("debug", text.lower())
                self._assert_no_secret({
                    "stderr": ok.stderr + amp.stderr + aws.stderr,
                    "stdout": ok.stdout + amp.stdout + aws.stdout,
                    "log file": text}, secrets)
                if fmt == "json":
                    for line in text.splitlines():
                        json.loads(line)


if __name__ == "__main__":
    unittest.main()
