"""Shared machinery of the integration suite.

* ServerProc: the scripted Export API stand-in (tests/server/export_api.py)
  as a subprocess: started with a scenario, ready when its port file
  appears (bounded poll), stopped by PID in a cleanup.
* FetchCase: a unittest.TestCase with a temporary work directory per test
  and run_amp(), which runs $AMP2S3_BIN with a fixed environment, cwd = the
  work directory and a timeout (start_amp(): the same in the background).
  Both take preexec=preexec(umask=..., fsize=...) to run the binary under
  a umask or a file-size limit.
Every wait is bounded; nothing sleeps to synchronise (polls have
deadlines).
"""

import base64
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
from collections import namedtuple
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
SERVER = TESTS / "server" / "export_api.py"
sys.path.insert(0, str(TESTS / "server"))
import export_api as api  # noqa: E402

PY = "/usr/bin/python3"
API_KEY = "itkey-5b7e0c2d9a41"
SECRET = "itsecret-Qw8rT3zLm0Xv"
BASIC = base64.b64encode(("%s:%s" % (API_KEY, SECRET)).encode()).decode()

H = api.parse_hour          # "YYYYMMDDTHH" -> int hour
F = api.fmt_hour            # int hour -> "YYYYMMDDTHH"
BASE = H("20240101T00")     # the hours most tests use

Result = namedtuple("Result", "rc stdout stderr elapsed argv")


def resident_pages(path):
    """(pages of ${path} in the page cache, its pages), by mincore(2);
    reading nothing, so the check does not bring pages in."""
    import ctypes
    import mmap
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                          ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t,
                             ctypes.c_char_p]
    size = os.path.getsize(path)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap " + str(path))
        try:
            vec = ctypes.create_string_buffer(pages)
            if libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore " + str(path))
            return sum(b & 1 for b in vec.raw[:pages]), pages
        finally:
            libc.munmap(addr, size)
    finally:
        os.close(fd)


def preexec(umask=None, fsize=None):
    """A preexec_fn for run_amp / start_amp: set the child's umask
    (${umask}) and RLIMIT_FSIZE (${fsize} bytes), each if given."""
    def pre():
        if umask is not None:
            os.umask(umask)
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return pre


def poll(cond, timeout, what, interval=0.01):
    """Call cond() until it returns a true value or ${timeout} seconds pass
    (then AssertionError naming ${what})."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


def gen_scenario(first, n, events=20, parts=2, empty_every=0, seed=1,
                 **extra):
    """A scenario generating ${n} hours from ${first} (int hour)."""
    sc = {"generate": {"start": F(first), "end": F(first + n - 1),
                       "events_per_hour": events, "parts_per_hour": parts,
                       "empty_every": empty_every, "seed": seed}}
    sc.update(extra)
    return sc


class ServerProc:
    def __init__(self, tc, scenario, name="server", args=()):
        self.dir = tc.tmp / name
        self.dir.mkdir()
        self.scenario = scenario
        self.scenario_path = self.dir / "scenario.json"
        self.scenario_path.write_text(json.dumps(scenario, indent=1))
        self.port_file = self.dir / "port"
        self.log_path = self.dir / "requests.jsonl"
        self._err = open(self.dir / "stderr.txt", "wb")
        argv = [PY, str(SERVER), "--port-file", str(self.port_file),
                "--scenario", str(self.scenario_path),
                "--request-log", str(self.log_path),
                "--api-key", API_KEY, "--secret-key", SECRET] + list(args)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=self._err)
        tc.addCleanup(self.stop)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("server exited %s: %s" % (
                    self.proc.returncode, self.stderr_text()))
            return self.port_file.exists()
        poll(ready, 15, "the server's port file")
        self.port = int(self.port_file.read_text())
        self.root = "http://127.0.0.1:%d" % self.port
        self.url = self.root + "/api/2/export"
        self.dataset = api.Dataset(scenario)

    def stderr_text(self):
        self._err.flush()
        return (self.dir / "stderr.txt").read_text(errors="replace")

    def status(self):
        with urllib.request.urlopen(self.root + "/_status", timeout=5) as r:
            return json.loads(r.read())

    def wait_idle(self, timeout=15):
        """Until every request received is answered and logged."""
        def idle():
            s = self.status()
            return s["inflight"] == 0 and s["logged"] == s["requests"]
        poll(idle, timeout, "the server to be idle")

    def requests(self):
        """The request log (after the server is idle), ordered by n."""
        self.wait_idle()
        if not self.log_path.exists():
            return []
        out = [json.loads(x) for x in
               self.log_path.read_text().splitlines() if x.strip()]
        return sorted(out, key=lambda e: e["n"])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._err.close()


def window_of(e):
    return (H(e["start"]), H(e["end"]))


def hours_of(e):
    a, b = window_of(e)
    return list(range(a, b + 1))


class FetchCase(unittest.TestCase):
    """Base class: a temp dir per test; helpers to run amp2s3."""

    needs_binary = True
    maxDiff = 4000

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="amp2s3-it-"))
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.work = self.tmp / "work"
        self.work.mkdir()
        self.data = self.work / "data"
        self.bin = os.environ.get("AMP2S3_BIN")
        if self.bin:
            self.bin = os.path.abspath(self.bin)
        if self.needs_binary and not (self.bin and os.path.isfile(self.bin)
                                      and os.access(self.bin, os.X_OK)):
            self.skipTest("AMP2S3_BIN is not set to an executable (%r)"
                          % (self.bin,))

    # -- processes ---------------------------------------------------------
    def server(self, scenario=None, **kw):
        return ServerProc(self, scenario or {}, **kw)

    def env(self, server=None, **over):
        e = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.tmp),
             "LANG": "C.UTF-8", "TZ": "UTC",
             "AMP_API_KEY": API_KEY, "AMP_SECRET_KEY": SECRET}
        if server is not None:
            e["AMP_API_URL"] = server.url
        for k, v in over.items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        return e

    DEFAULTS = [("--retry-base-ms", "10"), ("--retry-max-ms", "200"),
                ("--connect-timeout", "5"), ("--stall-timeout", "10"),
                ("--fetch-workers", "1")]
    ALIASES = {"-j": "--fetch-workers"}

    def run_amp(self, *args, server=None, env=None, cmd="fetch",
                defaults=True, timeout=60, cwd=None, preexec=None):
        """Run amp2s3 ${cmd} ${args} (plus the test defaults for any flag
        not given).  ${env}: the complete environment (default
        self.env(server)); ${preexec}: run in the child before exec (see
        preexec()).  A run that outlives ${timeout} seconds is killed and
        fails the test."""
        args = [str(a) for a in args]
        given = {self.ALIASES.get(a.split("=")[0], a.split("=")[0])
                 for a in args if a.startswith("-")}
        argv = [self.bin] + ([cmd] if cmd else [])
        if defaults:
            for flag, val in self.DEFAULTS:
                if flag not in given:
                    argv += [flag, val]
        argv += args
        t0 = time.monotonic()
        try:
            p = subprocess.run(argv, cwd=str(cwd or self.work),
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

    def start_amp(self, *args, server=None, env=None, cmd="fetch",
                  preexec=None):
        """Start amp2s3 without waiting (for signal tests); killed in a
        cleanup if still running.  Output goes to files in self.tmp
        (amp.stdout, amp.stderr)."""
        args = [str(a) for a in args]
        given = {self.ALIASES.get(a.split("=")[0], a.split("=")[0])
                 for a in args if a.startswith("-")}
        argv = [self.bin, cmd]
        for flag, val in self.DEFAULTS:
            if flag not in given:
                argv += [flag, val]
        argv += args
        out = open(self.tmp / "amp.stdout", "wb")
        err = open(self.tmp / "amp.stderr", "wb")
        p = subprocess.Popen(argv, cwd=str(self.work),
                             env=env if env is not None else self.env(server),
                             stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                             preexec_fn=preexec)
        p.argv = argv

        def reap():
            if p.poll() is None:
                p.kill()
                p.wait(10)
            out.close()
            err.close()
        self.addCleanup(reap)
        return p

    def fetch_range(self, server, first, last, *args, **kw):
        return self.run_amp("--start-date", F(first), "--end-date",
                            F(last), *args, server=server, **kw)

    # -- data directory ----------------------------------------------------
    def hour_path(self, h):
        return self.data / api.hour_file_name(h)

    def listing(self):
        if not self.data.exists():
            return []
        return sorted(os.listdir(self.data))

    def hour_files(self):
        return sorted(n for n in self.listing()
                      if n.endswith(".jsonl") and not n.startswith("."))

    def explain(self, res=None):
        res = res or getattr(self, "_last", None)
        if res is None:
            return ""
        return "\n  argv: %s\n  rc=%s elapsed=%.2fs\n  stderr (tail): %s" % (
            " ".join(res.argv), res.rc, res.elapsed, res.stderr[-1500:])

    def assertRc(self, res, rc):
        self.assertEqual(res.rc, rc, "exit status" + self.explain(res))

    def assertNoTemporaries(self):
        left = [n for n in self.listing() if n.startswith(".tmp-")]
        self.assertEqual(left, [], "temporaries left in the data dir")

    def assertHourExact(self, server, h):
        p = self.hour_path(h)
        self.assertTrue(p.is_file(), "%s missing; data dir: %s%s"
                        % (p.name, self.listing(), self.explain()))
        got = p.read_bytes()
        want = server.dataset.expected(h)
        if got != want:
            i = next((k for k in range(min(len(got), len(want)))
                      if got[k] != want[k]), min(len(got), len(want)))
            self.fail("%s differs: %d bytes, expected %d; first difference "
                      "at byte %d: got %r, want %r%s"
                      % (p.name, len(got), len(want), i, got[i:i + 60],
                         want[i:i + 60], self.explain()))
        if got:
            self.assertTrue(got.endswith(b"\n"), p.name)

    def assertHoursExact(self, server, hours):
        for h in hours:
            self.assertHourExact(server, h)

    def assertOnlyHours(self, hours):
        want = sorted(api.hour_file_name(h) for h in hours)
        self.assertEqual(self.hour_files(), want,
                         "hour files in the data dir" + self.explain())

    def assertCoversExactly(self, reqs, hours, disjoint=True):
        """The windows of ${reqs} cover exactly ${hours}; if ${disjoint},
        no hour is asked twice."""
        got = [h for e in reqs for h in hours_of(e)]
        self.assertEqual(sorted(set(got)), sorted(set(hours)),
                         "hours requested: %s" % [(e["start"], e["end"])
                                                  for e in reqs])
        if disjoint:
            self.assertEqual(len(got), len(set(got)),
                             "an hour was requested twice: %s"
                             % [(e["start"], e["end"]) for e in reqs])


class ServerCase(FetchCase):
    needs_binary = False
