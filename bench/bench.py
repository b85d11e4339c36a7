#!/usr/bin/python3
"""amp2s3 benchmark driver.  Stdlib only; run with /usr/bin/python3.

    bench/bench.py TARGET [--runs N] [--quick] [--bin PATH] [--tmpdir DIR]
    TARGET: smoke | limits | capacity | latency | cpu | memory | upload |
            linear | sweep | adaptive | all | compare (--against OTHER_AMP2S3)

Every data set and metric is fixed in bench/BENCHMARKS.md; bench/README.md
says how to run.  Each target starts what it needs (the bench Export API
server bench/out/bin/export_server, s3rver, the latency proxy) on
127.0.0.1, runs amp2s3 ($AMP2S3_BIN, default ./amp2s3 at the repo root) in
fresh temporary directories N times per configuration (default 5, --quick
1), prints a table of medians and writes CSV (every run, and the medians)
to bench/out/.  Every process it starts is stopped by PID when it ends,
also on Ctrl-C.

Benchmarks are programs, not tests: no target asserts on timings.  The
targets print the figures and the ratios they are meant to show; `smoke`
(seconds, for CI) exits non-zero only when a piece does not work.
"""
import argparse
import atexit
import csv
import datetime
import glob
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
BINDIR = os.path.join(OUT, "bin")
CACHE = os.path.join(OUT, "cache")
SERVER = os.path.join(BINDIR, "export_server")
LIMITS = os.path.join(BINDIR, "limits")
PROXY = os.path.join(HERE, "s3_latency_proxy.js")
LISTER = os.path.join(HERE, "s3_list_server.js")
S3RVER = os.path.join(ROOT, "tests", "s3", "node_modules", "s3rver", "bin",
                      "s3rver.js")
MB = 1e6

# The fixed data sets (bench/BENCHMARKS.md).  Hours of the same
# (events, parts, seed) are byte-identical whatever the range, and share
# the generator cache in bench/out/cache.
DATASETS = {
    "latency": dict(start="20240101T00", hours=168, events=2000, parts=2),
    "linear": dict(start="20240101T00", hours=240, events=2000, parts=2),
    "sweep": dict(start="20240101T00", hours=48, events=2000, parts=2),
    "cpu": dict(start="20240101T00", hours=16, events=80000, parts=4),
    "memory": dict(start="20240101T00", hours=1, events=800000, parts=1),
    "smoke": dict(start="20240101T00", hours=6, events=50, parts=2),
}
SEED = 1
LATENCY_KNOBS = dict(ttfb_ms=1000, bandwidth=8_000_000)


# ---- processes ---------------------------------------------------------

class Procs:
    """Every process started here, stopped by PID at exit."""

    def __init__(self):
        self.live = []

    def start(self, argv, log, **kw):
        f = open(log, "ab")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, **kw)
        f.close()
        p.log = log
        self.live.append(p)
        return p

    def stop(self, p, timeout=10):
        if p.returncode is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        if p in self.live:
            self.live.remove(p)

    def stop_all(self):
        for p in list(reversed(self.live)):
            self.stop(p)


PROCS = Procs()
TMPDIRS = []  # fresh run directories, removed at exit whatever happened


def _cleanup():
    PROCS.stop_all()
    for d in TMPDIRS:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def _on_signal(sig, _frame):
    PROCS.stop_all()
    sys.exit(128 + sig)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def say(msg):
    print(msg, flush=True)


def fail(msg):
    raise BenchError(msg)


class BenchError(Exception):
    pass


def wait_file(path, proc, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                txt = f.read().strip()
            if txt:
                return txt
        if proc.poll() is not None:
            fail(f"{what} exited with {proc.returncode} before it was "
                 f"ready; log: {tail(proc.log)}")
        time.sleep(0.05)
    fail(f"{what} not ready after {timeout} s; log: {tail(proc.log)}")


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


def http_json(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


# ---- setup -------------------------------------------------------------

def apt_install(pkgs):
    """Install Debian packages if missing (idempotent)."""
    missing = [p for p in pkgs if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
        text=True).stdout.find("install ok installed") < 0]
    if not missing:
        return
    say(f"bench: installing {' '.join(missing)} (apt-get)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], env=env,
                   stdout=subprocess.DEVNULL, check=False)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq",
                           "--no-install-recommends"] + missing, env=env,
                   stdout=subprocess.DEVNULL, check=True)


def ensure_built():
    need = ["zlib1g-dev", "libyajl-dev", "pkg-config", "make", "gcc", "curl"]
    if not (shutil.which("pkg-config") and shutil.which("make") and
            shutil.which("curl") and
            subprocess.run(["pkg-config", "--exists", "zlib", "yajl"]).
            returncode == 0):
        apt_install(need)
    r = subprocess.run(["make", "-s", "-C", HERE], capture_output=True,
                       text=True)
    if r.returncode != 0:
        fail(f"make -C bench failed:\n{r.stdout}{r.stderr}")


def ensure_gnuplot():
    if not shutil.which("gnuplot"):
        apt_install(["gnuplot-nox"])
    if not shutil.which("gnuplot"):
        fail("gnuplot is missing and could not be installed")


def ensure_s3rver():
    if not os.path.exists(S3RVER):
        setup = os.path.join(ROOT, "tests", "s3", "setup.sh")
        if os.access(setup, os.X_OK):
            subprocess.run([setup], check=False)
    if not os.path.exists(S3RVER):
        fail(f"s3rver not installed ({S3RVER}); run tests/s3/setup.sh")
    if not shutil.which("node"):
        fail("node is missing")


def amp2s3_bin(args):
    b = args.bin or os.environ.get("AMP2S3_BIN") or os.path.join(ROOT,
                                                                 "amp2s3")
    b = os.path.abspath(b)
    if not os.access(b, os.X_OK):
        fail(f"amp2s3 binary not found at {b} (build it with `make`, or "
             f"set AMP2S3_BIN / --bin)")
    return b


# ---- servers -----------------------------------------------------------

class ExportServer:
    """bench/out/bin/export_server on data set ${ds}.  Knobs as its flags;
    ${cap_schedule}: [(seconds after the first request, cap), ...] (cap 0:
    none), ${cap_retry_after}: the 429s' Retry-After (None: the server's
    default of 1, "none": no header)."""

    def __init__(self, ds, workdir, ttfb_ms=0, bandwidth=0, max_concurrent=0,
                 fault_rate=0.0, cap_schedule=None, cap_retry_after=None):
        self.ds = ds
        self.bandwidth = bandwidth
        self.ttfb_ms = ttfb_ms
        os.makedirs(workdir, exist_ok=True)
        pf = os.path.join(workdir, "export.port")
        self.stats_file = os.path.join(workdir, "export.stats.json")
        argv = [SERVER, "--hours-start", ds["start"],
                "--hours", str(ds["hours"]),
                "--events-per-hour", str(ds["events"]),
                "--parts-per-hour", str(ds["parts"]), "--seed", str(SEED),
                "--ttfb-ms", str(ttfb_ms),
                "--bandwidth-bytes-per-s", str(int(bandwidth)),
                "--max-concurrent", str(max_concurrent),
                "--fault-rate", str(fault_rate),
                "--port-file", pf, "--stats-file", self.stats_file,
                "--cache-dir", CACHE]
        if cap_schedule:
            argv += ["--cap-schedule",
                     ",".join(f"{t:g}:{int(c)}" for t, c in cap_schedule)]
        if cap_retry_after is not None:
            argv += ["--cap-retry-after", str(cap_retry_after)]
        self.proc = PROCS.start(argv, os.path.join(workdir, "export.log"))
        self.port = int(wait_file(pf, self.proc, 900, "export_server"))
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/api/2/export"
        self.info = http_json(self.base + "/_info")

    def stats(self, reset=False):
        return http_json(self.base + "/_stats" + ("?reset=1" if reset else ""))

    def capacity(self, start, end, tries=3):
        """Unthrottled single-connection pull of [start, end]: MB/s."""
        best = 0.0
        for _ in range(tries):
            r = subprocess.run(
                ["curl", "-s", "-o", "/dev/null", "-H",
                 "X-Bench-Unthrottled: 1", "-w",
                 "%{http_code} %{size_download} %{time_total}",
                 f"{self.url}?start={start}&end={end}"],
                capture_output=True, text=True)
            code, size, secs = r.stdout.split()
            if code != "200":
                fail(f"capacity probe answered {code}")
            best = max(best, int(size) / max(float(secs), 1e-6) / MB)
        return best

    def stop(self):
        PROCS.stop(self.proc)


def s3_env(bucket, port, key):
    """amp2s3's environment for a loopback S3 side on ${port}."""
    return {"AWS_BUCKET_NAME": bucket, "AWS_REGION": "eu-west-2",
            "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": key,
            "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}"}


class S3Side:
    """s3rver on loopback (fresh directory), optionally behind the proxy."""

    def __init__(self, workdir, bucket="bench", delay_ms=None):
        ensure_s3rver()
        self.bucket = bucket
        self.dir = os.path.join(workdir, "s3rver")
        os.makedirs(self.dir, exist_ok=True)
        log = os.path.join(workdir, "s3rver.log")
        env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
        self.s3 = PROCS.start(["node", S3RVER, "-d", self.dir, "-a",
                               "127.0.0.1", "-p", "0", "--configure-bucket",
                               bucket, "--silent"], log, env=env)
        deadline = time.monotonic() + 60
        self.s3port = None
        while time.monotonic() < deadline and self.s3port is None:
            with open(log, errors="replace") as f:
                for line in f:
                    if "listening on" in line:
                        self.s3port = int(line.rsplit(":", 1)[1])
            if self.s3proc_dead():
                fail(f"s3rver exited: {tail(log)}")
            time.sleep(0.05)
        if self.s3port is None:
            fail(f"s3rver not ready: {tail(log)}")
        self.port = self.s3port
        self.proxy = None
        self.proxy_stats = None
        if delay_ms is not None:
            pf = os.path.join(workdir, "proxy.port")
            self.proxy_stats = os.path.join(workdir, "proxy.stats.json")
            self.proxy = PROCS.start(
                ["node", PROXY, "--upstream",
                 f"http://127.0.0.1:{self.s3port}", "--delay-ms",
                 str(delay_ms), "--port-file", pf, "--stats-file",
                 self.proxy_stats], os.path.join(workdir, "proxy.log"))
            self.port = int(wait_file(pf, self.proxy, 30, "s3_latency_proxy"))

    def cpu(self):
        """CPU seconds of s3rver and the proxy so far."""
        return proc_cpu(self.s3.pid) + (proc_cpu(self.proxy.pid)
                                         if self.proxy else 0.0)

    def s3proc_dead(self):
        return self.s3.poll() is not None

    def env(self):
        return s3_env(self.bucket, self.port, "S3RVER")

    def objects(self):
        """Keys stored by s3rver (its on-disk layout)."""
        n = 0
        for _dp, _dn, files in os.walk(os.path.join(self.dir, self.bucket)):
            n += sum(1 for f in files if f.endswith("._S3rver_object"))
        return n

    def requests(self):
        if not self.proxy_stats or not os.path.exists(self.proxy_stats):
            return None
        with open(self.proxy_stats) as f:
            return json.load(f)["requests"]

    def stop(self):
        if self.proxy:
            PROCS.stop(self.proxy)
        PROCS.stop(self.s3)


class ListStandIn:
    """s3_list_server.js: ListObjectsV2 over ${keys} ({key: size, or
    key: (size, MD5 hex) for an ETag that proves the bytes}) from
    memory, +${delay_ms} per request; the S3 side of a planning run whose
    server must not be what is measured."""

    def __init__(self, workdir, keys, bucket="bench", delay_ms=0):
        if not shutil.which("node"):
            fail("node is missing")
        self.bucket = bucket
        kf = os.path.join(workdir, "list.keys")
        with open(kf, "w") as f:
            for k, v in keys.items():
                f.write("\t".join([k] + [str(x) for x in (
                    v if isinstance(v, tuple) else (v,))]) + "\n")
        pf = os.path.join(workdir, "list.port")
        self.stats_file = os.path.join(workdir, "list.stats.json")
        self.proc = PROCS.start(
            ["node", LISTER, "--keys-file", kf, "--bucket", bucket,
             "--delay-ms", str(delay_ms), "--port-file", pf,
             "--stats-file", self.stats_file],
            os.path.join(workdir, "list.log"))
        self.port = int(wait_file(pf, self.proc, 30, "s3_list_server"))

    def stats(self):
        with open(self.stats_file) as f:
            return json.load(f)

    def cpu(self):
        return proc_cpu(self.proc.pid)

    def requests(self):
        return self.stats()["requests"]

    def env(self):
        return s3_env(self.bucket, self.port, "BENCH")

    def stop(self):
        PROCS.stop(self.proc)


# ---- amp2s3 runs -------------------------------------------------------

def hour_add(h, n):
    t = datetime.datetime.strptime(h, "%Y%m%dT%H") + datetime.timedelta(
        hours=n)
    return t.strftime("%Y%m%dT%H")


def hour_file(h):
    t = datetime.datetime.strptime(h, "%Y%m%dT%H")
    return t.strftime("%Y-%m-%d_%H.jsonl")


def cpu_busy():
    """Seconds of CPU the whole machine has been busy (all cores)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """User + sys seconds of a live process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def children_cpu():
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def quiet_check(what, seconds=1.0, wait=0):
    """Warn when other processes keep the machine busy (shared machines);
    with ${wait} > 0, first wait up to that many seconds for 3 quiet
    seconds in a row."""
    deadline = time.monotonic() + wait
    quiet = 0
    while time.monotonic() < deadline and quiet < 3:
        b0 = cpu_busy()
        time.sleep(1)
        quiet = quiet + 1 if cpu_busy() - b0 < 0.2 else 0
    b0 = cpu_busy()
    time.sleep(seconds)
    other = (cpu_busy() - b0) / seconds
    if other > 0.2:
        say(f"WARNING: before {what}: other processes keep {other:.2f} of "
            f"{os.cpu_count()} cores busy; timings will be low and noisy")
    return other


def write_hours(d, names):
    """The planning data set's hour files ${names} in ${d}: `{}\\n` each."""
    for name in names:
        with open(os.path.join(d, name), "w") as f:
            f.write("{}\n")


def hour_files(dirs):
    """{file name: size} of the hour files in ${dirs} (first one wins)."""
    out = {}
    for d in dirs:
        for x in glob.glob(os.path.join(d, "????-??-??_??.jsonl")):
            out.setdefault(os.path.basename(x), os.path.getsize(x))
    return out


def base_env():
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TZ")
           if k in os.environ}
    env.update(AMP_API_KEY="bench-key", AMP_SECRET_KEY="bench-secret")
    return env


class Runner:
    def __init__(self, args, target):
        self.args = args
        self.target = target
        self.bin = amp2s3_bin(args)
        self.rows = []
        self.tmpbase = args.tmpdir or tempfile.gettempdir()

    def fresh(self):
        d = tempfile.mkdtemp(prefix=f"amp2s3-bench-{self.target}-",
                             dir=self.tmpbase)
        TMPDIRS.append(d)
        return d

    def run(self, config, argv, cwd, env, server=None, s3=None,
            data_dir="data", expect_rc=0, extra=None, binary=None):
        """One timed amp2s3 run (of ${binary}, default --bin); returns
        its row (metrics)."""
        log = os.path.join(cwd, "amp2s3.log")
        # `all` and `sync` remove local files once stored, so the hours of
        # a run are those in data/ before or after it and in s3_dev/.
        dirs = [os.path.join(cwd, data_dir),
                os.path.join(cwd, "s3_dev", "python-import")]
        before = hour_files(dirs[:1])
        if server:
            server.stats(reset=True)
        cpu0 = server.stats() if server else None
        req0 = s3.requests() if s3 else None
        s3cpu0 = s3.cpu() if s3 else 0.0
        busy0 = cpu_busy()
        with open(log, "ab") as f:
            t0 = time.monotonic()
            p = subprocess.Popen([binary or self.bin] + argv, cwd=cwd,
                                 env=env,
                                 stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
            p.log = log
            PROCS.live.append(p)
            _pid, status, ru = os.wait4(p.pid, 0)
            wall = time.monotonic() - t0
            p.returncode = os.waitstatus_to_exitcode(status)
            PROCS.live.remove(p)
        if p.returncode != expect_rc:
            fail(f"{config}: amp2s3 {' '.join(argv)} exited "
                 f"{p.returncode} (expected {expect_rc}); log "
                 f"{log}:\n{tail(log)}")
        after = hour_files(dirs)
        for k, v in before.items():
            after.setdefault(k, v)
        files = after
        jsonl = sum(after.values())
        row = dict(target=self.target, config=config,
                   run=sum(1 for r in self.rows if r["config"] == config) + 1,
                   rc=p.returncode, wall_s=wall, hours=len(files),
                   hours_per_s=len(files) / wall,
                   jsonl_mb=jsonl / MB, mb_s_jsonl=jsonl / MB / wall,
                   peak_rss_mib=ru.ru_maxrss / 1024.0,
                   cpu_s=ru.ru_utime + ru.ru_stime,
                   gzip_mb="", mb_s_gzip="", requests="", retries="",
                   server_cpu_s="", server_mb_s="", serve_vs_cap="",
                   s3_cpu_s="")
        if server:
            st = server.stats()
            row.update(gzip_mb=st["bytes_served"] / MB,
                       mb_s_gzip=st["bytes_served"] / MB / wall,
                       requests=st["requests"],
                       retries=st["requests"] - st["windows"],
                       server_cpu_s=(st["cpu_user_s"] + st["cpu_sys_s"]) -
                       (cpu0["cpu_user_s"] + cpu0["cpu_sys_s"]),
                       server_mb_s=st["bytes_served"] / MB / wall,
                       _stats=st)
            if server.bandwidth and st["bytes_served"]:
                # >1: answers took longer than the cap alone explains.
                row["serve_vs_cap"] = st["serve_seconds"] / (
                    st["bytes_served"] / server.bandwidth)
        busy = cpu_busy() - busy0
        if s3:
            row["s3_cpu_s"] = s3.cpu() - s3cpu0
        ours = row["cpu_s"] + (row["server_cpu_s"] or 0) + (
            row["s3_cpu_s"] or 0)
        other = max(0.0, busy - ours)
        # Short runs: ignore under 0.2 s of foreign CPU (kernel flushes).
        row["other_cores"] = other / wall if other > 0.2 else 0.0
        if s3 is not None and req0 is not None:
            row["requests"] = s3.requests() - req0
        if extra:
            row.update(extra)
        row["argv"] = " ".join(argv)
        self.rows.append(row)
        say(f"  {config:<22} run {row['run']}: {wall:7.2f} s  "
            f"rss {row['peak_rss_mib']:6.1f} MiB  cpu {row['cpu_s']:6.2f} s"
            + (f"  req {row['requests']}" if row['requests'] != "" else "")
            + (f"  [busy machine: {row['other_cores']:.2f} cores used by "
               f"others]" if row["other_cores"] > 0.2 else ""))
        return row

    def medians(self):
        out = []
        configs = []
        for r in self.rows:
            if r["config"] not in configs:
                configs.append(r["config"])
        for c in configs:
            rs = [r for r in self.rows if r["config"] == c]
            m = dict(target=self.target, config=c, runs=len(rs),
                     argv=rs[0]["argv"])
            for k in COLS:
                vals = [r[k] for r in rs if isinstance(r.get(k), (int, float))]
                m[k] = statistics.median(vals) if vals else ""
            out.append(m)
        return out

    def report(self, title):
        med = self.medians()
        say("")
        say(f"== {title} (medians of {med[0]['runs'] if med else 0} "
            f"run(s); amp2s3 = {self.bin})")
        hdr = ("config", "wall_s", "hours/s", "MB/s gz", "MB/s jsonl",
               "req", "retries", "RSS MiB", "CPU s")
        w = max([24] + [len(m["config"]) + 1 for m in med])
        fmt_row = "%-" + str(w) + "s %8s %9s %8s %10s %6s %7s %8s %7s"
        say(fmt_row % hdr)
        for m in med:
            say(fmt_row % (
                m["config"], fmt(m["wall_s"], 3), fmt(m["hours_per_s"], 1),
                fmt(m["mb_s_gzip"], 1), fmt(m["mb_s_jsonl"], 1),
                fmt(m["requests"], 0), fmt(m["retries"], 0),
                fmt(m["peak_rss_mib"], 1), fmt(m["cpu_s"], 2)))
        noisy = [m["config"] for m in med
                 if isinstance(m.get("other_cores"), float) and
                 m["other_cores"] > 0.2]
        if noisy:
            say(f"WARNING: other processes used CPU during {', '.join(noisy)}"
                f" (median over 0.2 cores; column other_cores in the CSV): "
                f"these figures understate amp2s3")
        stamp = datetime.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
        os.makedirs(OUT, exist_ok=True)
        runs_csv = os.path.join(OUT, f"{self.target}-{stamp}.csv")
        med_csv = os.path.join(OUT, f"{self.target}-{stamp}-medians.csv")
        write_csv(runs_csv, ["target", "config", "run", "rc"] + COLS +
                  ["argv"], self.rows)
        write_csv(med_csv, ["target", "config", "runs"] + COLS + ["argv"],
                  med)
        shutil.copyfile(runs_csv, os.path.join(OUT, f"{self.target}-latest.csv"))
        shutil.copyfile(med_csv,
                        os.path.join(OUT, f"{self.target}-latest-medians.csv"))
        say(f"CSV: {os.path.relpath(runs_csv, ROOT)} (runs), "
            f"{os.path.relpath(med_csv, ROOT)} (medians)")
        return {m["config"]: m for m in med}


COLS = ["wall_s", "hours", "hours_per_s", "gzip_mb", "mb_s_gzip", "jsonl_mb",
        "mb_s_jsonl", "requests", "retries", "peak_rss_mib", "cpu_s",
        "server_cpu_s", "server_mb_s", "serve_vs_cap", "s3_cpu_s",
        "other_cores", "probe_mb_s", "pct_of_probe"]


def fmt(v, nd):
    if v == "" or v is None:
        return "-"
    return f"{v:.{nd}f}"


def write_csv(path, cols, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v)
                        for k, v in r.items()})


def server_check(server, med, capacity):
    """Say whether the bench server could have been the limit."""
    worst = None
    for m in med.values():
        if m["server_mb_s"] == "":
            continue
        util = m["server_mb_s"] / capacity if capacity else 0
        cpu = m["server_cpu_s"] / m["wall_s"] if m["wall_s"] else 0
        if worst is None or util > worst[1]:
            worst = (m["config"], util, cpu, m["server_mb_s"])
    if worst is None:
        return
    cfg, util, cpu, rate = worst
    msg = (f"server check: busiest config {cfg} pulled {rate:.1f} MB/s; the "
           f"server alone serves {capacity:.0f} MB/s on one connection "
           f"({100 * util:.0f}%), server CPU {100 * cpu:.0f}% of a core")
    pace = [m["serve_vs_cap"] for m in med.values()
            if m.get("serve_vs_cap") not in ("", None)]
    if pace:
        msg += (f"; answers took {min(pace):.2f}-{max(pace):.2f}x the time "
                f"the bandwidth cap alone allows (1.00 = paced exactly; "
                f"more: the reader was slower)")
    if util > 0.5 or cpu > 0.5:
        say("WARNING: " + msg + " -- the bench server may have been the "
            "bottleneck; these figures understate amp2s3")
    else:
        say(msg + " -- not the bottleneck")


def dev_env(server):
    env = base_env()
    env["AMP_API_URL"] = server.url
    return env


def runs_of(args, default=5):
    if args.runs:
        return args.runs
    return 1 if args.quick else default


# ---- targets -----------------------------------------------------------

def t_limits(args, events=None, parts=None, quiet=False):
    ensure_built()
    ds = DATASETS["cpu"]
    argv = [LIMITS, "--events", str(events or ds["events"]), "--parts",
            str(parts or ds["parts"]), "--seed", str(SEED), "--runs",
            "1" if args.quick else "5", "--json"]
    res = {}
    for th in (1, 2):
        b0, c0, t0 = cpu_busy(), children_cpu(), time.monotonic()
        r = subprocess.run(argv + ["--threads", str(th)], capture_output=True,
                           text=True)
        if r.returncode != 0:
            fail(f"limits failed: {r.stderr}")
        res[th] = json.loads(r.stdout)
        other = (cpu_busy() - b0 - (children_cpu() - c0)) / (
            time.monotonic() - t0)
        res[th]["other_cores"] = max(0.0, other)
        if other > 0.2:
            say(f"WARNING: limits --threads {th}: other processes used "
                f"{other:.2f} cores meanwhile; the figures are low")
    one, two = res[1], res[2]
    if not quiet:
        say(f"== limits: one hour of the cpu data set ({one['events']} "
            f"events, {one['jsonl_bytes'] / MB:.1f} MB JSONL, "
            f"{one['gzip_bytes'] / MB:.1f} MB gzip)")
        for k in ("inflate", "inflate+yajl", "inflate+yajl-stream"):
            say(f"  {k:<20} {one[k + '_mb_s_per_core']:7.1f} MB/s/core "
                f"(1 thread)   {two[k + '_mb_s_total']:7.1f} MB/s with "
                f"2 threads ({two[k + '_mb_s_per_core']:.1f}/core)")
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "limits-latest.json"), "w") as f:
        json.dump({"1": one, "2": two}, f, indent=1)
    return res


class LimitsProbe:
    """`limits --probe`: the one-thread inflate+yajl rate on demand, from
    data generated once, so that the cpu target can measure the machine
    between amp2s3 runs (its speed moves from minute to minute)."""

    def __init__(self, events, parts, runs):
        self.p = subprocess.Popen(
            [LIMITS, "--events", str(events), "--parts", str(parts),
             "--seed", str(SEED), "--runs", str(runs), "--probe"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        PROCS.live.append(self.p)

    def rate(self):
        """MB/s of JSONL, one thread, now."""
        self.p.stdin.write("\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            fail(f"limits --probe ended (exit {self.p.wait()})")
        return json.loads(line)["mb_s"]

    def close(self):
        """End it by closing its input; fails unless it exits 0."""
        self.p.stdin.close()
        rc = self.p.wait(30)
        PROCS.live.remove(self.p)
        if rc != 0:
            fail(f"limits --probe exited {rc}")


def t_capacity(args):
    ensure_built()
    wd = tempfile.mkdtemp(prefix="amp2s3-bench-cap-",
                          dir=args.tmpdir or tempfile.gettempdir())
    try:
        ds = DATASETS["latency"]
        srv = ExportServer(ds, wd)
        end = hour_add(ds["start"], ds["hours"] - 1)
        cap1 = srv.capacity(ds["start"], end, tries=1 if args.quick else 5)
        # Two connections at once (the machine's 2 cores).
        t0 = time.monotonic()
        ps = [subprocess.Popen(
            ["curl", "-s", "-o", "/dev/null", "-H", "X-Bench-Unthrottled: 1",
             f"{srv.url}?start={ds['start']}&end={end}"]) for _ in range(2)]
        for p in ps:
            p.wait()
        cap2 = 2 * srv.info["gzip_bytes"] / MB / (time.monotonic() - t0)
        say(f"== capacity: export_server, {ds['hours']} hours "
            f"({srv.info['gzip_bytes'] / MB:.1f} MB gzip, "
            f"{srv.info['jsonl_bytes'] / MB:.1f} MB JSONL), unthrottled, "
            f"curl -o /dev/null")
        say(f"  1 connection:  {cap1:7.0f} MB/s of zip")
        say(f"  2 connections: {cap2:7.0f} MB/s of zip (total)")
        srv.stop()
        return cap1
    finally:
        shutil.rmtree(wd, ignore_errors=True)


def t_latency(args):
    """Target 1: -j 8 against the sequential configuration, same data."""
    ensure_built()
    ds = DATASETS["latency"]
    rn = Runner(args, "latency")
    sd = rn.fresh()
    srv = ExportServer(ds, sd, **LATENCY_KNOBS)
    end = hour_add(ds["start"], ds["hours"] - 1)
    common = ["all", "--dev", "--start-date", ds["start"], "--end-date", end,
              "--data-dir", "data"]
    configs = [
        ("sequential -j1 -u1 w168",
         common + ["-j", "1", "-u", "1", "--max-window-hours",
                   str(ds["hours"])]),
        ("-j8", common + ["-j", "8"]),
        ("-j8 -u8 w21", common + ["-j", "8", "-u", "8",
                                  "--max-window-hours", "21"]),
    ]
    say(f"latency: {ds['hours']} hours x {ds['events']} events, "
        f"{srv.info['gzip_bytes'] / MB:.1f} MB gzip, first byte "
        f"{LATENCY_KNOBS['ttfb_ms']} ms, {LATENCY_KNOBS['bandwidth'] / MB:.0f}"
        f" MB/s per connection, --dev")
    n = runs_of(args)
    for i in range(n):
        order = configs if i % 2 == 0 else list(reversed(configs))
        for name, argv in order:
            wd = rn.fresh()
            try:
                rn.run(name, argv, wd, dev_env(srv), server=srv)
            finally:
                shutil.rmtree(wd, ignore_errors=True)
    med = rn.report("latency-bound backfill")
    seq = med[configs[0][0]]["wall_s"]
    total = srv.info["gzip_bytes"]
    t_ideal = LATENCY_KNOBS["ttfb_ms"] / 1000 + total / (
        8 * LATENCY_KNOBS["bandwidth"])
    ideal = seq / t_ideal
    say(f"ideal speed-up = T_seq / (1 s + {total / MB:.1f} MB / (8 x 8 MB/s))"
        f" = {seq:.2f} / {t_ideal:.2f} = {ideal:.2f}x")
    for name, _ in configs[1:]:
        sp = seq / med[name]["wall_s"]
        say(f"  {name:<14} speed-up {sp:.2f}x = {100 * sp / ideal:.0f}% of "
            f"ideal (target >= 90%)")
    server_check(srv, med, srv.capacity(ds["start"], end))
    srv.stop()
    shutil.rmtree(sd, ignore_errors=True)
    return med


def cpu_fetch_setup(args, target):
    """The cpu data set's server and the fetch the cpu target runs (without
    -j): (ds, runner, server dir, server, last hour, argv)."""
    ds = DATASETS["cpu"]
    rn = Runner(args, target)
    sd = rn.fresh()
    srv = ExportServer(ds, sd)
    end = hour_add(ds["start"], ds["hours"] - 1)
    common = ["fetch", "--start-date", ds["start"], "--end-date", end,
              "--data-dir", "data", "--max-window-hours", "1"]
    return ds, rn, sd, srv, end, common


def t_cpu(args):
    """Target 2: end-to-end fetch throughput against inflate+yajl x cores."""
    ensure_built()
    lim = t_limits(args)
    ds, rn, sd, srv, end, common = cpu_fetch_setup(args, "cpu")
    cores = os.cpu_count() or 1
    configs = [(f"-j{j} w1", common + ["-j", str(j)], min(j, cores))
               for j in (1, 2, 4)]
    say(f"cpu: {ds['hours']} hours x {ds['events']} events in {ds['parts']} "
        f"parts, {srv.info['jsonl_bytes'] / MB:.0f} MB JSONL, "
        f"{srv.info['gzip_bytes'] / MB:.0f} MB gzip, loopback, no throttle")
    # The machine's rate just before and just after each run (2 passes
    # each: about 1 s), the run set against their mean.
    probe = LimitsProbe(ds["events"], ds["parts"], 1 if args.quick else 2)
    rates = [probe.rate()]
    for i in range(runs_of(args)):
        for name, argv, c in configs:
            wd = rn.fresh()
            try:
                row = rn.run(name, argv, wd, dev_env(srv), server=srv)
            finally:
                shutil.rmtree(wd, ignore_errors=True)
            rates.append(probe.rate())
            row["probe_mb_s"] = (rates[-2] + rates[-1]) / 2
            row["pct_of_probe"] = 100 * row["mb_s_jsonl"] / (
                c * row["probe_mb_s"])
    probe.close()
    med = rn.report("CPU-bound fetch")
    per_core = lim[1]["inflate+yajl_mb_s_per_core"]
    say(f"one-pass inflate+yajl: {per_core:.1f} MB/s/core (limits, 1 "
        f"thread); {lim[2]['inflate+yajl_mb_s_total']:.1f} MB/s with 2 "
        f"threads")
    for name, _a, c in configs:
        got = med[name]["mb_s_jsonl"]
        say(f"  {name:<8} {got:7.1f} MB/s JSONL = "
            f"{100 * got / (per_core * c):.0f}% of {c} x {per_core:.0f} "
            f"(target >= 80%)")
    say(f"the same runs, each against the limits probe taken just before "
        f"and just after it ({min(rates):.1f}-{max(rates):.1f} MB/s/core "
        f"over the target):")
    for name, _a, c in configs:
        pcts = [r["pct_of_probe"] for r in rn.rows if r["config"] == name]
        say(f"  {name:<8} median {med[name]['pct_of_probe']:.0f}% of {c} x "
            f"the probe (runs {min(pcts):.0f}-{max(pcts):.0f}%); "
            f"{100 * med[name]['mb_s_jsonl'] / (c * max(rates)):.0f}% of {c} "
            f"x the fastest probe, {max(rates):.1f} (target >= 80%)")
    server_check(srv, med, srv.capacity(ds["start"], end))
    srv.stop()
    shutil.rmtree(sd, ignore_errors=True)
    return med


def t_compare(args, ds_name="cpu", against=None, runs=None, tag="compare"):
    """Two builds side by side: the cpu target's fetch, -j 1 and -j 2,
    --bin (A) against --against (B), alternating A/B and B/A run by run."""
    ensure_built()
    against = against or args.against
    if not against:
        fail("compare needs --against OTHER_AMP2S3 (the build to compare "
             "--bin with)")
    other = os.path.abspath(against)
    if not os.access(other, os.X_OK):
        fail(f"--against: no executable at {other}")
    ds = DATASETS[ds_name]
    rn = Runner(args, tag)
    sd = rn.fresh()
    srv = ExportServer(ds, sd)
    end = hour_add(ds["start"], ds["hours"] - 1)
    common = ["fetch", "--start-date", ds["start"], "--end-date", end,
              "--data-dir", "data", "--max-window-hours", "1"]
    builds = [("A", rn.bin), ("B", other)]
    say(f"compare: A = {rn.bin}, B = {other}; cpu data set "
        f"({srv.info['jsonl_bytes'] / MB:.0f} MB JSONL), loopback")
    jobs = (1, 2)
    for i in range(runs or runs_of(args, 3)):
        for j in jobs:
            for name, b in (builds if i % 2 == 0 else builds[::-1]):
                wd = rn.fresh()
                try:
                    row = rn.run(f"{name} -j{j}", common + ["-j", str(j)],
                                 wd, dev_env(srv), server=srv, binary=b)
                finally:
                    shutil.rmtree(wd, ignore_errors=True)
                if row["hours"] != ds["hours"]:
                    fail(f"{name} -j{j}: {row['hours']} hour files, "
                         f"expected {ds['hours']}")
    med = rn.report("two builds side by side (A = --bin, B = --against)")
    for j in jobs:
        a, b = med[f"A -j{j}"], med[f"B -j{j}"]
        say(f"  -j{j}: A {a['wall_s']:.3f} s, B {b['wall_s']:.3f} s: A is "
            f"{b['wall_s'] / a['wall_s']:.2f}x as fast as B "
            f"(CPU s {a['cpu_s']:.2f} vs {b['cpu_s']:.2f})")
    srv.stop()
    shutil.rmtree(sd, ignore_errors=True)
    return med


def t_memory(args):
    """Target 3: peak RSS fetching one 1 GB hour."""
    ensure_built()
    ds = DATASETS["memory"]
    rn = Runner(args, "memory")
    sd = rn.fresh()
    srv = ExportServer(ds, sd)
    common = ["fetch", "--start-date", ds["start"], "--end-date", ds["start"],
              "--data-dir", "data"]
    configs = [("-j1", common + ["-j", "1"]),
               ("-j4 (default)", common + ["-j", "4"])]
    say(f"memory: 1 hour of {ds['events']} events in {ds['parts']} part, "
        f"{srv.info['jsonl_bytes'] / MB:.0f} MB JSONL, "
        f"{srv.info['gzip_bytes'] / MB:.0f} MB gzip")
    for i in range(runs_of(args, 3)):
        for name, argv in configs:
            wd = rn.fresh()
            try:
                rn.run(name, argv, wd, dev_env(srv), server=srv)
            finally:
                shutil.rmtree(wd, ignore_errors=True)
    med = rn.report("memory, one 1 GB hour")
    for name, _ in configs:
        say(f"  {name:<14} peak RSS {med[name]['peak_rss_mib']:.1f} MiB "
            f"(target < 64 MiB)")
    srv.stop()
    shutil.rmtree(sd, ignore_errors=True)
    return med


def make_small_files(dd, start, n, size=2000):
    os.makedirs(dd, exist_ok=True)
    line = '{"event_type":"bench","pad":"' + "x" * 60 + '"}\n'
    body = (line * (size // len(line) + 1))[:size]
    body = body[:body.rfind("\n") + 1]
    for i in range(n):
        with open(os.path.join(dd, hour_file(hour_add(start, i))), "w") as f:
            f.write(body)
    return len(body)


def upload_runs(rn, configs, nfiles, delay_ms, runs):
    start = "20240101T00"
    end = hour_add(start, nfiles - 1)
    for i in range(runs):
        order = configs if i % 2 == 0 else list(reversed(configs))
        for name, u in order:
            wd = rn.fresh()
            try:
                make_small_files(os.path.join(wd, "data"), start, nfiles)
                s3 = S3Side(wd, delay_ms=delay_ms)
                env = base_env()
                env.update(s3.env())
                row = rn.run(name, ["sync", "--start-date", start,
                                    "--end-date", end, "--data-dir", "data",
                                    "-u", str(u)], wd, env, s3=s3,
                             extra={"upload_value": u})
                got = s3.objects()
                s3.stop()
                if got != nfiles:
                    fail(f"{name}: s3rver holds {got} objects, expected "
                         f"{nfiles}")
                row["files_per_s"] = nfiles / row["wall_s"]
            finally:
                shutil.rmtree(wd, ignore_errors=True)


def t_upload(args):
    """Target 4: 500 small files to s3rver behind a 50 ms proxy."""
    rn = Runner(args, "upload")
    configs = [("-u1", 1), ("-u8", 8)]
    say("upload: 500 files of 2,000 bytes, `sync` to s3rver behind the "
        "proxy (+50 ms per request)")
    upload_runs(rn, configs, 500, 50, runs_of(args, 3))
    med = rn.report("upload through a 50 ms proxy")
    sp = med["-u1"]["wall_s"] / med["-u8"]["wall_s"]
    say(f"  -u8 is {sp:.2f}x faster than -u1 (target >= 5x)")
    return med


def t_linear(args):
    """Target 5: 24 vs 240 hours; planning a year against full listings."""
    ensure_built()
    ds = DATASETS["linear"]
    rn = Runner(args, "linear")
    sd = rn.fresh()
    srv = ExportServer(ds, sd)
    say(f"linear: hours of {ds['events']} events, loopback, no added "
        f"latency, `all --dev --max-window-hours 1` (defaults -j 4 -u 4)")
    configs = []
    for h in (24, 240):
        configs.append((f"{h} hours", ["all", "--dev", "--start-date",
                                       ds["start"], "--end-date",
                                       hour_add(ds["start"], h - 1),
                                       "--data-dir", "data",
                                       "--max-window-hours", "1"]))
    for i in range(runs_of(args)):
        for name, argv in configs:
            wd = rn.fresh()
            try:
                rn.run(name, argv, wd, dev_env(srv), server=srv)
            finally:
                shutil.rmtree(wd, ignore_errors=True)
    # Planning a year: every hour present locally and in s3_dev/.
    ystart, yhours = "20230101T00", 8760
    yend = hour_add(ystart, yhours - 1)
    wd = rn.fresh()
    try:
        dd = os.path.join(wd, "data")
        rd = os.path.join(wd, "s3_dev", "python-import")
        os.makedirs(dd)
        os.makedirs(rd)
        names = [hour_file(hour_add(ystart, i)) for i in range(yhours)]

        def fill(d):
            write_hours(d, names)
        fill(rd)
        for i in range(runs_of(args)):
            fill(dd)  # `all` removes local hours the store has
            row = rn.run("plan a year (--dev)",
                         ["all", "--dev", "--start-date", ystart,
                          "--end-date", yend, "--data-dir", "data"], wd,
                         dev_env(srv), server=srv)
            if row["requests"]:
                fail("planning a year that is complete sent requests")
        bins = [(rn.bin, "")]
        if args.against:
            bins.append((os.path.abspath(args.against), " [B]"))
        # The same year against a listing served from memory: amp2s3's
        # own cost, then with a round trip per page.
        plan_standin_runs(rn, srv, wd, ystart, yhours, (0, 50), bins,
                          runs_of(args))
        # The same year against s3rver's listing (filled once, untimed).
        if not args.no_s3rver:
            # Behind the proxy with no delay: it counts the requests.
            s3 = S3Side(wd, delay_ms=0)
            env = dev_env(srv)
            env.update(s3.env())
            say("  (filling s3rver with 8,760 objects: untimed setup)")
            fill(dd)
            r = subprocess.run([rn.bin, "sync", "--start-date", ystart,
                                "--end-date", yend, "--data-dir", "data",
                                "-u", "8"], cwd=wd, env=env,
                               capture_output=True, text=True)
            if r.returncode != 0 or s3.objects() != yhours:
                fail(f"filling s3rver failed ({r.returncode}, "
                     f"{s3.objects()} objects): {r.stdout[-2000:]}"
                     f"{r.stderr[-2000:]}")
            # And an hourly cron's run over the bucket: the last 25 hours
            # of the year, complete in s3rver, nothing local.  With
            # --against, both builds, alternating.
            cron = ["fetch", "--start-date", hour_add(yend, -24),
                    "--end-date", yend, "--data-dir", "data"]
            for i in range(runs_of(args)):
                for b, tag in (bins if i % 2 == 0 else bins[::-1]):
                    fill(dd)
                    row = rn.run("plan a year (s3rver)" + tag,
                                 ["all", "--start-date", ystart,
                                  "--end-date", yend, "--data-dir", "data"],
                                 wd, env, server=srv, s3=s3, binary=b)
                    if row["_stats"]["requests"]:
                        fail("planning a year that is complete sent "
                             "export requests")
                    if hour_files([dd]):
                        fail("`all` left local hours the store has")
                    row = rn.run("cron's 25 hours (s3rver)" + tag, cron,
                                 wd, env, server=srv, s3=s3, binary=b)
                    if row["_stats"]["requests"]:
                        fail("a cron run over complete hours fetched")
            s3.stop()
    finally:
        shutil.rmtree(wd, ignore_errors=True)
    med = rn.report("linear cost")
    r = med["240 hours"]["wall_s"] / med["24 hours"]["wall_s"]
    rc = med["240 hours"]["cpu_s"] / med["24 hours"]["cpu_s"]
    say(f"  time ratio 240/24 hours = {r:.2f} (target 10 +- 2); CPU ratio "
        f"{rc:.2f}")
    for k in ("plan a year (--dev)", "plan a year (stand-in)",
              "plan a year (stand-in) [B]", "plan a year (stand-in, +50 ms)",
              "plan a year (stand-in, +50 ms) [B]", "plan a year (s3rver)",
              "plan a year (s3rver) [B]", "cron's 25 hours (s3rver)",
              "cron's 25 hours (s3rver) [B]"):
        if k in med:
            m = med[k]
            who = "the stand-in" if "stand-in" in k else "s3rver"
            s3c = (f"; {who} spent {m['s3_cpu_s']:.2f} s CPU answering "
                   f"{m['requests']} listing requests" if
                   m.get("s3_cpu_s") not in ("", None) else "")
            what = "for 8,760 hours" if "year" in k else \
                "in a bucket of 8,760"
            say(f"  {k}: {m['wall_s']:.3f} s {what}, amp2s3 CPU "
                f"{m['cpu_s']:.2f} s{s3c}" +
                (" (target < 1 s)" if "year" in k else ""))
    server_check(srv, {k: v for k, v in med.items() if "hours" in k},
                 srv.capacity(ds["start"], hour_add(ds["start"], 239)))
    srv.stop()
    shutil.rmtree(sd, ignore_errors=True)
    return med


def standin_refusals(wd):
    """The listing stand-in refuses what it does not serve, and counts it:
    a write (501), another bucket (404), a forged token (400)."""
    ls = ListStandIn(wd, {"python-import/2023-01-01_00.jsonl": 3})
    base = f"http://127.0.0.1:{ls.port}"
    try:
        for method, path, want in (
                ("PUT", "/bench/python-import/x", 501),
                ("GET", "/other?list-type=2", 404),
                ("GET", "/bench?list-type=2&continuation-token=eA%3D%3D%3D",
                 400),
                ("GET", "/bench?list-type=2&prefix=python-import/", 200)):
            req = urllib.request.Request(base + path, method=method,
                                         data=b"x" if method == "PUT" else None)
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    got = r.status
            except urllib.error.HTTPError as e:
                got = e.code
            if got != want:
                fail(f"listing stand-in: {method} {path} answered {got}, "
                     f"not {want}")
        st = ls.stats()
        if (st["errors"], st["keys"]) != (3, 1):
            fail(f"listing stand-in counted {st}, expected 3 errors and "
                 f"1 key listed")
    finally:
        ls.stop()


def plan_standin_runs(rn, srv, wd, ystart, nhours, delays, bins, runs):
    """Planning ${nhours} hours from ${ystart}, every one of them local
    and in the listing stand-in (one per delay in ${delays}, ms per
    request): `all`, which lists, finds every hour stored, fetches and
    uploads nothing and removes the local copies.  Rows "plan N hours
    (stand-in[, +D ms])" for each binary of ${bins} ((path, tag), taken
    in turn)."""
    dd = os.path.join(wd, "data")
    os.makedirs(dd, exist_ok=True)
    names = [hour_file(hour_add(ystart, i)) for i in range(nhours)]
    # Listed with the ETag S3 gives a single PUT of write_hours()'s bytes,
    # so that amp2s3 can prove them stored and remove the local copies.
    md5 = hashlib.md5(b"{}\n").hexdigest()
    keys = {"python-import/" + n: (3, md5) for n in names}
    yend = hour_add(ystart, nhours - 1)
    label = "a year" if nhours == 8760 else f"{nhours} hours"
    for delay in delays:
        sd = os.path.join(wd, f"standin-{delay}")
        os.makedirs(sd)
        ls = ListStandIn(sd, keys, delay_ms=delay)
        env = dev_env(srv)
        env.update(ls.env())
        name = f"plan {label} (stand-in" + (f", +{delay} ms)" if delay
                                             else ")")
        try:
            for i in range(runs):
                for b, tag in (bins if i % 2 == 0 else bins[::-1]):
                    write_hours(dd, names)
                    k0 = ls.stats()["keys"]
                    row = rn.run(name + tag, ["all", "--start-date", ystart,
                                              "--end-date", yend,
                                              "--data-dir", "data"],
                                 wd, env, server=srv, s3=ls, binary=b)
                    if row["_stats"]["requests"]:
                        fail(f"{name}: hours the store has were fetched")
                    if hour_files([dd]):
                        fail(f"{name}: `all` left local hours the store has")
                    listed = ls.stats()["keys"] - k0
                    if listed != nhours:
                        fail(f"{name}: {listed} keys listed in "
                             f"{row['requests']} requests, expected each of "
                             f"the {nhours} once")
            if ls.stats()["errors"]:
                fail(f"{name}: the stand-in refused a request "
                     f"(log {ls.proc.log})")
        finally:
            ls.stop()


def plot_sweep(series, png, title):
    """series: {name: (xlabel, ylabel, [(x, y)])} -> one PNG, one panel each."""
    ensure_gnuplot()
    d = tempfile.mkdtemp(prefix="amp2s3-bench-plot-")
    try:
        script = [f"set terminal pngcairo size {420 * len(series)},400 "
                  "noenhanced" if has_pngcairo() else
                  f"set terminal png size {420 * len(series)},400 noenhanced",
                  f"set output '{png}'",
                  f"set multiplot layout 1,{len(series)} title '{title}'",
                  "set logscale x 2", "set grid", "set key off",
                  "set yrange [0:*]"]
        for i, (name, (xl, yl, pts)) in enumerate(series.items()):
            dat = os.path.join(d, f"s{i}.dat")
            with open(dat, "w") as f:
                for x, y in pts:
                    f.write(f"{x} {y}\n")
            xs = [x for x, _ in pts]
            script += [f"set title '{name}'", f"set xlabel '{xl}'",
                       f"set ylabel '{yl}'",
                       f"set xrange [{min(xs) / 1.3}:{max(xs) * 1.3}]",
                       "set xtics (" + ", ".join(str(x) for x in xs) + ")",
                       f"plot '{dat}' using 1:2 with linespoints lw 2 pt 7"]
        script.append("unset multiplot")
        sp = os.path.join(d, "plot.gp")
        with open(sp, "w") as f:
            f.write("\n".join(script) + "\n")
        r = subprocess.run(["gnuplot", sp], capture_output=True, text=True)
        if r.returncode != 0 or not os.path.getsize(png):
            fail(f"gnuplot failed: {r.stderr}")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def has_pngcairo():
    r = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True,
                       text=True)
    return "pngcairo" in (r.stdout + r.stderr)


def t_sweep(args, ds_name="sweep", js=(1, 2, 4, 8, 16),
            windows=(1, 2, 4, 8, 12, 24, 48), us=(1, 2, 4, 8, 16),
            upload_files=100, delay_ms=50, knobs=None, tag="sweep"):
    """-j, --max-window-hours (fetch on the latency knobs) and -u (sync)."""
    ensure_built()
    ensure_gnuplot()
    knobs = LATENCY_KNOBS if knobs is None else knobs
    ds = DATASETS[ds_name]
    rn = Runner(args, tag)
    sd = rn.fresh()
    srv = ExportServer(ds, sd, **knobs)
    end = hour_add(ds["start"], ds["hours"] - 1)
    common = ["all", "--dev", "--start-date", ds["start"], "--end-date", end,
              "--data-dir", "data"]
    jw = min(6, ds["hours"])
    configs = [(f"-j{j} w{jw}", common + ["-j", str(j), "--max-window-hours",
                                          str(jw)], ("j", j)) for j in js]
    configs += [(f"-j8 w{w}", common + ["-j", "8", "--max-window-hours",
                                        str(w)], ("w", w)) for w in windows]
    say(f"{tag}: {ds['hours']} hours x {ds['events']} events "
        f"({srv.info['gzip_bytes'] / MB:.1f} MB gzip), first byte "
        f"{knobs.get('ttfb_ms', 0)} ms, "
        f"{knobs.get('bandwidth', 0) / MB:.0f} MB/s per connection")
    runs = runs_of(args, 3)
    for i in range(runs):
        for name, argv, (kind, v) in configs:
            wd = rn.fresh()
            try:
                rn.run(name, argv, wd, dev_env(srv), server=srv,
                       extra={"sweep": kind, "value": v})
            finally:
                shutil.rmtree(wd, ignore_errors=True)
    server_check(srv, {m["config"]: m for m in rn.medians()},
                 srv.capacity(ds["start"], end, tries=1))
    srv.stop()
    shutil.rmtree(sd, ignore_errors=True)
    say(f"{tag}: -u over {upload_files} files of 2,000 bytes, sync to "
        f"s3rver behind the proxy (+{delay_ms} ms)")
    upload_runs(rn, [(f"-u{u} sync", u) for u in us], upload_files,
                delay_ms, runs)
    med = rn.report(f"{tag} (-j, --max-window-hours, -u)")
    by = {}
    for name, _a, (kind, v) in configs:
        by.setdefault(kind, []).append((v, med[name]["hours_per_s"]))
    files_per_s = [(u, upload_files / med[f"-u{u} sync"]["wall_s"])
                   for u in us]
    stamp = datetime.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
    png = os.path.join(OUT, f"{tag}-{stamp}.png")
    plot_sweep({f"-j (--max-window-hours {jw})": ("-j", "hours/s",
                                                   by["j"]),
                "--max-window-hours (-j 8)": ("--max-window-hours",
                                              "hours/s", by["w"]),
                f"-u (sync, +{delay_ms} ms)": ("-u", "files/s",
                                               files_per_s)},
               png, f"amp2s3 sweep: {ds['hours']} hours, "
               f"{knobs.get('ttfb_ms', 0)} ms first byte, "
               f"{knobs.get('bandwidth', 0) / MB:.0f} MB/s per connection")
    shutil.copyfile(png, os.path.join(OUT, f"{tag}-latest.png"))
    say(f"plot: {os.path.relpath(png, ROOT)}")
    return med, png


# ---- adaptive concurrency ----------------------------------------------

# A stand-in for the Export API's concurrency cap, as issue 18 measured it:
# 0.5 s to the first byte, 4 MB/s per connection, 6-hour windows.
ADAPTIVE_KNOBS = dict(ttfb_ms=500, bandwidth=4_000_000)
ADAPTIVE_WINDOW = 6
# The cap over time (s after the first request): 4, then 2, then 5; the
# fourth phase (5 again) only marks where the measured third one ends.
ADAPTIVE_SCHEDULE = [(0, 4), (8, 2), (16, 5), (24, 5)]
# Today's fixed pool; above the cap its windows need more than the
# default 8 tries (each 429 is one), or some fail.
FIXED = ["--fixed-concurrency", "--max-attempts", "30"]
# smoke's miniature: seconds, not figures (refused windows come back
# after a short backoff instead of a Retry-After of 1 s).
ADAPTIVE_MINI = dict(knobs=dict(ttfb_ms=20, bandwidth=2_000_000,
                                cap_retry_after="none"), window=1,
                     schedule=[(0, 2), (0.05, 1), (0.1, 3), (0.2, 3)],
                     argv=["--retry-base-ms", "20", "--retry-max-ms", "100"])


def hour_digests(ds):
    """{file name: sha256 hex} of every hour of ${ds}, from the bench
    server's own --dump-hour."""
    import hashlib
    out = {}
    for i in range(ds["hours"]):
        h = hour_add(ds["start"], i)
        r = subprocess.run(
            [SERVER, "--hours-start", ds["start"], "--hours",
             str(ds["hours"]), "--events-per-hour", str(ds["events"]),
             "--parts-per-hour", str(ds["parts"]), "--seed", str(SEED),
             "--dump-hour", h], capture_output=True)
        if r.returncode != 0:
            fail(f"export_server --dump-hour {h} exited {r.returncode}")
        out[hour_file(h)] = hashlib.sha256(r.stdout).hexdigest()
    return out


def check_exact(config, wd, digests):
    """Fail unless ${wd}/data holds exactly the hours of ${digests}."""
    import hashlib
    d = os.path.join(wd, "data")
    got = sorted(n for n in os.listdir(d) if n.endswith(".jsonl")
                 and not n.startswith("."))
    if got != sorted(digests):
        fail(f"{config}: {len(got)} hour files, expected {len(digests)}")
    for name in got:
        with open(os.path.join(d, name), "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != digests[name]:
                fail(f"{config}: {name} differs from the server's data")


def read_prom(path):
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
    return out


def adaptive_runs(rn, srv, ds, configs, runs, digests, window, mini):
    """Each of ${configs} [(name, extra argv)] ${runs} times, the order
    alternating; each run checked exact; its metrics and the server's
    phases kept in the row."""
    end = hour_add(ds["start"], ds["hours"] - 1)
    common = ["fetch", "--start-date", ds["start"], "--end-date", end,
              "--data-dir", "data", "--max-window-hours", str(window)]
    if mini:
        common += ADAPTIVE_MINI["argv"]
    for i in range(runs):
        for name, extra in (configs if i % 2 == 0 else configs[::-1]):
            wd = rn.fresh()
            try:
                row = rn.run(name, common + ["--metrics-file", "m.prom"] +
                             extra, wd, dev_env(srv), server=srv)
                check_exact(name, wd, digests)
                m = read_prom(os.path.join(wd, "m.prom"))
                row["limit_end"] = m["amp2s3_fetch_concurrency_limit"]
                row["limit_down"] = m["amp2s3_fetch_limit_decreases"]
                row["limit_up"] = m["amp2s3_fetch_limit_increases"]
                row["status_429"] = row["_stats"]["status_429"]
                row["phases"] = row["_stats"].get("phases", [])
            finally:
                shutil.rmtree(wd, ignore_errors=True)


def rows_of(rn, config):
    return [r for r in rn.rows if r["config"] == config]


def adaptive_capped(args, rn, mini):
    """-j 4, 8 and 16 against a cap of 4 (2 for the miniature): the
    throughput of -j 8 and -j 16 against -j 4's, and the 429s."""
    ds = DATASETS["smoke" if mini else "latency"]
    knobs = ADAPTIVE_MINI["knobs"] if mini else ADAPTIVE_KNOBS
    window = ADAPTIVE_MINI["window"] if mini else ADAPTIVE_WINDOW
    cap = 2 if mini else 4
    ra = "none" if mini else "1"
    sd = rn.fresh()
    srv = ExportServer(ds, sd, max_concurrent=cap, **knobs)
    js = (2, 4) if mini else (4, 8, 16)
    configs = [(f"cap{cap} -j{j}", ["-j", str(j)]) for j in js]
    if not mini:
        configs += [(f"cap{cap} fixed -j{j}", FIXED + ["-j", str(j)])
                    for j in (8, 16)]
    say(f"adaptive, capped: {ds['hours']} hours x {ds['events']} events "
        f"({srv.info['gzip_bytes'] / MB:.1f} MB gzip), 429 beyond {cap} "
        f"in flight (Retry-After: {ra}), first byte {knobs['ttfb_ms']} ms, "
        f"{knobs['bandwidth'] / MB:.0f} MB/s per connection, "
        f"--max-window-hours {window}")
    digests = hour_digests(ds)
    adaptive_runs(rn, srv, ds, configs, runs_of(args, 3), digests,
                  window, mini)
    srv.stop()
    shutil.rmtree(sd, ignore_errors=True)
    return configs


def phase_rates(row, schedule):
    """MB/s of 200 answers per measured phase (all but the last) of a
    run's server stats, by request arrival."""
    out = []
    for k, ph in enumerate(row["phases"][:len(schedule) - 1]):
        length = schedule[k + 1][0] - schedule[k][0]
        out.append(ph["bytes_served"] / MB / length)
    return out


def adaptive_schedule(args, rn, mini):
    """The cap goes 4 -> 2 -> 5: each phase's throughput of -j 8 and
    -j 16 against the best of --fixed-concurrency -j 2, 4 and 5."""
    ds = (DATASETS["smoke"] if mini else
          dict(start="20240101T00", hours=504, events=2000, parts=2))
    knobs = ADAPTIVE_MINI["knobs"] if mini else ADAPTIVE_KNOBS
    window = ADAPTIVE_MINI["window"] if mini else ADAPTIVE_WINDOW
    sched = ADAPTIVE_MINI["schedule"] if mini else ADAPTIVE_SCHEDULE
    sd = rn.fresh()
    srv = ExportServer(ds, sd, cap_schedule=sched, **knobs)
    caps = "->".join(str(c) for _t, c in sched[:-1])
    fixed = sorted({c for _t, c in sched[:-1]})
    configs = [(f"sched fixed -j{j}", FIXED + ["-j", str(j)]) for j in fixed]
    configs += [(f"sched -j{j}", ["-j", str(j)])
                for j in ((4,) if mini else (8, 16))]
    say(f"adaptive, cap {caps} at "
        f"{', '.join(f'{t:g}' for t, _c in sched[:-1])} s (measured until "
        f"{sched[-1][0]:g} s): {ds['hours']} hours x {ds['events']} events "
        f"({srv.info['gzip_bytes'] / MB:.1f} MB gzip), same knobs")
    digests = hour_digests(ds)
    adaptive_runs(rn, srv, ds, configs, runs_of(args, 3), digests,
                  window, mini)
    srv.stop()
    shutil.rmtree(sd, ignore_errors=True)
    return configs, sched


def adaptive_uncapped(args, rn, mini):
    """No cap: -j 8 adaptive against --fixed-concurrency -j 8, in pairs
    (A B, then B A), the ratio pair by pair."""
    ds = DATASETS["smoke" if mini else "latency"]
    knobs = ADAPTIVE_MINI["knobs"] if mini else ADAPTIVE_KNOBS
    window = ADAPTIVE_MINI["window"] if mini else ADAPTIVE_WINDOW
    sd = rn.fresh()
    srv = ExportServer(ds, sd, **knobs)
    configs = [("nocap -j8", ["-j", "8"]),
               ("nocap fixed -j8", FIXED + ["-j", "8"])]
    say(f"adaptive, no cap: {ds['hours']} hours, same knobs, pairs")
    digests = hour_digests(ds)
    adaptive_runs(rn, srv, ds, configs, runs_of(args, 5), digests,
                  window, mini)
    srv.stop()
    shutil.rmtree(sd, ignore_errors=True)
    a, b = rows_of(rn, configs[0][0]), rows_of(rn, configs[1][0])
    return [rb["wall_s"] / ra["wall_s"] for ra, rb in zip(a, b)]


def t_adaptive(args, mini=False):
    """Issue 18's targets: the adaptive concurrency limit against a capped
    stand-in, a cap that changes mid-run, and no cap."""
    ensure_built()
    rn = Runner(args, "smoke-adaptive" if mini else "adaptive")
    capped = adaptive_capped(args, rn, mini)
    sched_configs, sched = adaptive_schedule(args, rn, mini)
    pairs = adaptive_uncapped(args, rn, mini)
    med = rn.report("adaptive concurrency")
    for name, _x in capped + sched_configs:
        rs = rows_of(rn, name)
        med_of = {k: statistics.median(r[k] for r in rs)
                  for k in ("status_429", "limit_end", "limit_down",
                            "limit_up")}
        say(f"  {name:<20} 429s {med_of['status_429']:5.0f}  limit at the "
            f"end {med_of['limit_end']:3.0f}  decreases "
            f"{med_of['limit_down']:4.0f}  increases "
            f"{med_of['limit_up']:4.0f} (medians)")
    base = capped[0][0]
    for name, _x in capped[1:]:
        ratio = med[base]["wall_s"] / med[name]["wall_s"]
        say(f"  {name:<20} throughput {100 * ratio:.0f}% of {base}'s "
            f"(target >= 90% adaptive)")
    # Per phase: the median run of each config, against the best fixed.
    rates = {n: [statistics.median(v) for v in
                 zip(*[phase_rates(r, sched) for r in rows_of(rn, n)])]
             for n, _x in sched_configs}
    fixed = [n for n, x in sched_configs if "--fixed-concurrency" in x]
    for k in range(len(sched) - 1):
        best = max(fixed, key=lambda n: rates[n][k])
        line = ", ".join(f"{n} {rates[n][k]:.2f}" for n, _x in sched_configs)
        say(f"  phase {k + 1} (cap {sched[k][1]}, {sched[k][0]:g}-"
            f"{sched[k + 1][0]:g} s) MB/s: {line}")
        for n, _x in sched_configs:
            if n not in fixed and rates[best][k] > 0:
                say(f"    {n}: {100 * rates[n][k] / rates[best][k]:.0f}% of "
                    f"the best fixed ({best}) (target >= 80%)")
    say(f"  no cap: fixed -j8 wall / adaptive -j8 wall, pair by pair: "
        f"{', '.join(f'{x:.3f}' for x in pairs)}; median "
        f"{statistics.median(pairs):.3f} (1.000 = as fast)")
    return med


def t_smoke(args):
    """Every piece, tiny data, seconds.  Non-zero exit when one is broken."""
    args.runs = 1
    args.quick = True
    t0 = time.monotonic()
    ensure_built()
    say("smoke: bench programs built")
    r = subprocess.run([LIMITS, "--events", "2000", "--parts", "2", "--runs",
                        "1", "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"limits failed: {r.stderr}")
    lj = json.loads(r.stdout)
    say(f"smoke: limits ran ({lj['inflate+yajl_mb_s_per_core']:.0f} MB/s/core"
        f" inflate+yajl on a tiny sample)")
    probe = LimitsProbe(2000, 2, 1)
    rates = [probe.rate(), probe.rate()]
    probe.close()
    if not all(x > 0 for x in rates):
        fail(f"limits --probe gave {rates}")
    say(f"smoke: limits --probe answered twice ({rates[0]:.0f}, "
        f"{rates[1]:.0f} MB/s) and ended with its input")
    ds = DATASETS["smoke"]
    end = hour_add(ds["start"], ds["hours"] - 1)
    rn = Runner(args, "smoke")
    sd = rn.fresh()
    try:
        # The server's knobs: 429 beyond 2, first-byte delay, pacing, faults.
        srv = ExportServer(ds, sd, ttfb_ms=20, bandwidth=2_000_000,
                           max_concurrent=2, fault_rate=0.2)
        cap = srv.capacity(ds["start"], end, tries=1)
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w",
                            "%{http_code}", "-u", "k:s",
                            f"{srv.url}?start=20300101T00&end=20300101T05"],
                           capture_output=True, text=True)
        if r.stdout != "404":
            fail(f"a range without data answered {r.stdout}, not 404")
        say(f"smoke: export_server up ({srv.info['gzip_bytes']} bytes gzip, "
            f"capacity probe {cap:.0f} MB/s, 404 outside the data)")
        wd = rn.fresh()
        row = rn.run("fetch -j4 w1 faults", [
            "all", "--dev", "--start-date", ds["start"], "--end-date", end,
            "--data-dir", "data", "-j", "4", "-u", "2",
            "--max-window-hours", "1", "--retry-base-ms", "20",
            "--retry-max-ms", "100"], wd, dev_env(srv), server=srv)
        for i in range(ds["hours"]):
            h = hour_add(ds["start"], i)
            want = subprocess.run(
                [SERVER, "--hours-start", ds["start"], "--hours",
                 str(ds["hours"]), "--events-per-hour", str(ds["events"]),
                 "--parts-per-hour", str(ds["parts"]), "--seed", str(SEED),
                 "--dump-hour", h], capture_output=True).stdout
            # `all` removes a local hour once it is stored.
            d = os.path.join("s3_dev", "python-import")
            try:
                with open(os.path.join(wd, d, hour_file(h)), "rb") as f:
                    got = f.read()
            except OSError as e:
                fail(f"{d}/{hour_file(h)}: {e}")
            if got != want:
                fail(f"{d}/{hour_file(h)} differs from the server's data")
        say(f"smoke: amp2s3 all --dev fetched {row['hours']} hours "
            f"byte-exact through 429s and 500s ({row['requests']} requests, "
            f"{row['retries']} retries)")
        shutil.rmtree(wd, ignore_errors=True)
        srv.stop()
    finally:
        shutil.rmtree(sd, ignore_errors=True)
    # Upload through s3rver + proxy.
    upload_runs(rn, [("sync -u2 proxy", 2)], 5, 5, 1)
    say("smoke: sync uploaded 5 files to s3rver through the latency proxy")
    # Planning a year against the listing stand-in: 9 pages.
    ds = DATASETS["smoke"]
    sd = rn.fresh()
    try:
        standin_refusals(sd)
        srv = ExportServer(ds, sd)
        plan_standin_runs(rn, srv, sd, "20230101T00", 8760, (0, 5),
                          [(rn.bin, "")], 1)
        srv.stop()
    finally:
        shutil.rmtree(sd, ignore_errors=True)
    say("smoke: planned a year (8,760 hours) against the listing stand-in")
    # A sweep in miniature, with its plot.
    _med, png = t_sweep(args, ds_name="smoke", js=(1, 2), windows=(1, 6),
                        us=(1, 2), upload_files=3, delay_ms=5,
                        knobs=dict(ttfb_ms=10, bandwidth=4_000_000),
                        tag="smoke-sweep")
    say(f"smoke: sweep and plot ran ({os.path.getsize(png)} bytes PNG)")
    # Two builds side by side, in miniature (the same binary twice).
    t_compare(args, ds_name="smoke", against=rn.bin, runs=1,
              tag="smoke-compare")
    say("smoke: compare ran")
    # The adaptive target in miniature: a cap of 2, a changing cap, none.
    t_adaptive(args, mini=True)
    say("smoke: adaptive ran (every run's hours exact)")
    rn.report("smoke")
    say(f"smoke: OK in {time.monotonic() - t0:.1f} s (no timing is asserted)")


PASS_DSOS = ("libz.so", "libyajl.so")


def perf_shares(data, comm):
    """{(comm, dso): % of all samples} of `perf report` on ${data}, and the
    share of ${comm}'s samples in the inflate+yajl pass (zlib, yajl)."""
    r = subprocess.run(["perf", "report", "-i", data, "--stdio", "-q",
                        "-g", "none", "--sort", "comm,dso"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"perf report failed: {r.stderr.strip()}")
    got = {}
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) >= 3 and f[0].endswith("%"):
            got[(f[1], f[2])] = got.get((f[1], f[2]), 0.0) + float(f[0][:-1])
    if not any(c == comm for c, _d in got):
        fail(f"perf recorded no sample of {comm}")
    share = sum(v for (c, d), v in got.items()
                if c == comm and d.startswith(PASS_DSOS))
    return got, share


def t_share(args):
    """The cpu target's runs under `perf record -a` (cpu-clock sampling of
    every CPU, idle included): the share of the cores in use that amp2s3
    spent in zlib and yajl, i.e. in the limits program's own pass.  Unlike
    a throughput ratio it does not depend on how fast the machine was."""
    ensure_built()
    if not shutil.which("perf"):
        fail("share needs perf (Debian package linux-perf)")
    ds, rn, sd, srv, _end, common = cpu_fetch_setup(args, "share")
    cores = os.cpu_count() or 1
    comm = os.path.basename(rn.bin)[:15]
    say(f"share: the cpu target's fetch under perf record -a -e cpu-clock "
        f"-F 2000, {ds['hours']} hours x {ds['events']} events")
    shares = {}
    for i in range(runs_of(args, 3)):
        for j in ((1, 2) if i % 2 == 0 else (2, 1)):
            wd = rn.fresh()
            try:
                data = os.path.join(wd, "perf.data")
                perf = ["record", "-q", "-a", "-e", "cpu-clock", "-F",
                        "2000", "-o", data, "--"]
                row = rn.run(f"-j{j} w1", perf + [rn.bin] + common +
                             ["-j", str(j)], wd, dev_env(srv), server=srv,
                             binary="perf")
                if row["hours"] != ds["hours"]:
                    fail(f"-j{j}: {row['hours']} hours written, not "
                         f"{ds['hours']}")
                got, share = perf_shares(data, comm)
            finally:
                shutil.rmtree(wd, ignore_errors=True)
            c = min(j, cores)
            pct = share * cores / c
            kern = got.get((comm, "[kernel.kallsyms]"), 0.0) * cores / c
            idle = got.get(("swapper", "[kernel.kallsyms]"), 0.0)
            shares.setdefault(j, []).append(pct)
            say(f"  -j{j}: {pct:.1f}% of {c} core(s) in zlib+yajl, amp2s3's "
                f"kernel time {kern:.1f}%, idle {idle:.1f}% of all "
                f"{cores} CPUs")
    for j in sorted(shares):
        v = shares[j]
        say(f"  -j{j} w1   median {statistics.median(v):.1f}% of the cores "
            f"in use in the inflate+yajl pass (runs {min(v):.1f}-"
            f"{max(v):.1f}%; the cpu target read as time: >= 80%)")
    srv.stop()
    shutil.rmtree(sd, ignore_errors=True)


TARGETS = {
    "smoke": t_smoke, "limits": t_limits, "capacity": t_capacity,
    "latency": t_latency, "cpu": t_cpu, "memory": t_memory,
    "upload": t_upload, "linear": t_linear, "sweep": t_sweep,
    "compare": t_compare, "share": t_share, "adaptive": t_adaptive,
}


def main():
    ap = argparse.ArgumentParser(
        description="amp2s3 benchmarks (see bench/README.md)")
    ap.add_argument("target", choices=list(TARGETS) + ["all"])
    ap.add_argument("--runs", type=int, help="runs per configuration "
                    "(default 5; 3 for memory, upload, sweep and adaptive's "
                    "capped runs)")
    ap.add_argument("--quick", action="store_true", help="one run each")
    ap.add_argument("--bin", help="amp2s3 binary (default $AMP2S3_BIN, "
                    "else ./amp2s3 at the repo root)")
    ap.add_argument("--against", metavar="OTHER_AMP2S3", help="compare, "
                    "linear's s3rver planning: "
                    "the build to run side by side with --bin")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                    help="before each target, wait up to S seconds until "
                    "other processes leave the CPU idle")
    ap.add_argument("--no-s3rver", action="store_true", help="linear: "
                    "skip planning against s3rver's listing")
    ap.add_argument("--tmpdir", help="where the fresh run directories go "
                    "(default: the system temporary directory)")
    args = ap.parse_args()
    names = (["limits", "capacity", "latency", "cpu", "memory", "upload",
              "linear", "sweep", "adaptive"] if args.target == "all"
             else [args.target])
    try:
        for n in names:
            if n != "smoke":
                quiet_check(n, wait=args.wait_quiet)
            TARGETS[n](args)
    except BenchError as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        PROCS.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
