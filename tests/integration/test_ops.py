"""Operations: `amp2s3 status`, the --metrics-file, --shard/--shards, the
exit codes not covered elsewhere (4 between two amp2s3 runs, 5, a signal
while waiting for the lock), and the deployment files (contrib/) and the
man page (man/amp2s3.1), checked against the binary so they cannot drift.

Tools used (Debian packages): systemd (systemd-analyze), python3-yaml,
groff-base (groff), man-db (man), dpkg.  A missing tool fails its test with
the package to install: nothing here is skipped.
"""

import calendar
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from harness import (BASE, BASIC, F, FetchCase, api, gen_scenario,
                     hours_of, poll, window_of)

ROOT = Path(__file__).resolve().parents[2]
CONTRIB = ROOT / "contrib"
MANPAGE = ROOT / "man" / "amp2s3.1"
PREFIX = "python-import/"
SECRET_NAMES = ("AMP_API_KEY", "AMP_SECRET_KEY", "AWS_PYTHON_USER_ACCESS_KEY",
                "AWS_PYTHON_USER_SECRET_KEY", "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# Amplitude answers 429 beyond about 5 concurrent export requests/project.
MAX_CONCURRENT_EXPORTS = 5
# Long-lived AWS keys: the contrib examples for role-based platforms must
# not need them.
STATIC_AWS_KEYS = ("AWS_PYTHON_USER_ACCESS_KEY", "AWS_PYTHON_USER_SECRET_KEY",
                   "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def tool(name, package):
    """The path of ${name}, or an AssertionError naming the Debian package
    that provides it (these checks must run, not be skipped)."""
    p = shutil.which(name)
    if p is None:
        raise AssertionError("%s not found: install the Debian package %s "
                             "(scripts/install-deps.sh)" % (name, package))
    return p


def load_yaml_module():
    try:
        import yaml
    except ImportError:
        raise AssertionError("python3 cannot import yaml: install the Debian "
                             "package python3-yaml (scripts/install-deps.sh)")
    return yaml


# ------------------------------------------------------- Prometheus text --

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
_VALUE = re.compile(r"^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|"
                    r"[+-]?Inf|NaN)$")
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_prometheus(text):
    """Parse the Prometheus text exposition format strictly.  Returns
    ({(name, ((label, value), ...)): float}, {name: type}).  Raises
    ValueError naming the line for anything malformed: a sample without a
    TYPE before it, a family whose samples are not contiguous, a repeated
    HELP/TYPE/series, a bad name, label or value, no final newline."""
    if not text.endswith("\n"):
        raise ValueError("no newline at the end")
    samples, types, helps = {}, {}, set()
    finished, current = set(), None
    for no, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d %r" % (no, line)
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not _NAME.fullmatch(name):
                    raise ValueError("bad metric name: " + where)
                if parts[1] == "HELP":
                    if name in helps:
                        raise ValueError("second HELP: " + where)
                    helps.add(name)
                else:
                    if len(parts) != 4 or parts[3] not in _TYPES:
                        raise ValueError("bad TYPE: " + where)
                    if name in types:
                        raise ValueError("second TYPE: " + where)
                    if name in finished or name == current:
                        raise ValueError("TYPE after samples: " + where)
                    types[name] = parts[3]
            continue
        m = _NAME.match(line)
        if not m:
            raise ValueError("bad sample: " + where)
        name, pos, labels = m.group(0), m.end(), []
        if line[pos:pos + 1] == "{":
            pos += 1
            while line[pos:pos + 1] != "}":
                lm = _LABEL.match(line, pos)
                if not lm:
                    raise ValueError("bad label: " + where)
                labels.append((lm.group(1), lm.group(2)))
                pos = lm.end()
                if line[pos:pos + 1] == ",":
                    pos += 1
                elif line[pos:pos + 1] != "}":
                    raise ValueError("bad label list: " + where)
            pos += 1
            if len({k for k, _ in labels}) != len(labels):
                raise ValueError("repeated label: " + where)
        rest = line[pos:]
        if not rest.startswith(" "):
            raise ValueError("no value: " + where)
        fields = rest[1:].split(" ")
        if len(fields) not in (1, 2) or not _VALUE.match(fields[0]) or (
                len(fields) == 2 and not re.fullmatch(r"-?\d+", fields[1])):
            raise ValueError("bad value: " + where)
        if name not in types:
            raise ValueError("sample without a TYPE: " + where)
        if name != current:
            if name in finished:
                raise ValueError("samples of %s not together: %s"
                                 % (name, where))
            if current is not None:
                finished.add(current)
            current = name
        key = (name, tuple(sorted(labels)))
        if key in samples:
            raise ValueError("repeated series: " + where)
        samples[key] = float(fields[0])
    return samples, types


def metric(samples, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    if key not in samples:
        raise AssertionError("metric %s%s missing; have %s" % (
            name, labels or "", sorted(k[0] for k in samples)))
    return samples[key]


# ----------------------------------------------------------------- cron ---

_CRON_FIELDS = (("minute", 0, 59, None), ("hour", 0, 23, None),
                ("day of month", 1, 31, None),
                ("month", 1, 12, ["jan", "feb", "mar", "apr", "may", "jun",
                                  "jul", "aug", "sep", "oct", "nov",
                                  "dec"]),
                ("day of week", 0, 7, ["sun", "mon", "tue", "wed", "thu",
                                       "fri", "sat"]))
_CRON_SPECIAL = {"@hourly", "@daily", "@midnight", "@weekly", "@monthly",
                 "@yearly", "@annually", "@reboot"}


def check_cron_field(text, name, lo, hi, names):
    """Raise ValueError unless ${text} is a valid cron field (lists, ranges,
    steps, *, names) with every number in [lo, hi]."""
    def num(s):
        if names and s.lower() in names:
            return names.index(s.lower()) + (1 if name == "month" else 0)
        if not re.fullmatch(r"\d+", s):
            raise ValueError("%s: %r is not a number" % (name, s))
        v = int(s)
        if not lo <= v <= hi:
            raise ValueError("%s: %d not in %d..%d" % (name, v, lo, hi))
        return v
    for item in text.split(","):
        base, _, step = item.partition("/")
        if step and (not re.fullmatch(r"\d+", step) or int(step) == 0 or
                     int(step) > hi):
            raise ValueError("%s: bad step in %r" % (name, item))
        if base == "*":
            continue
        a, dash, b = base.partition("-")
        if dash:
            if num(a) > num(b):
                raise ValueError("%s: empty range %r" % (name, item))
        else:
            num(a)


def parse_crontab(text):
    """A user crontab: returns (environment {name: value}, jobs [(fields,
    command)]).  Raises ValueError for a malformed line."""
    if text and not text.endswith("\n"):
        raise ValueError("no newline after the last line (cron ignores it)")
    env, jobs = {}, []
    for no, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", s)
        if m and not re.match(r"[\d*@]", s):
            env[m.group(1)] = m.group(2)
            continue
        if s.startswith("@"):
            special, _, command = s.partition(" ")
            if special not in _CRON_SPECIAL:
                raise ValueError("line %d: unknown %s" % (no, special))
            jobs.append(([special], command.strip()))
            continue
        parts = s.split(None, 5)
        if len(parts) < 6:
            raise ValueError("line %d: fewer than 5 fields and a command"
                             % no)
        for text_, (name, lo, hi, names) in zip(parts[:5], _CRON_FIELDS):
            check_cron_field(text_, name, lo, hi, names)
        jobs.append((parts[:5], parts[5]))
    return env, jobs


def amp2s3_argv(command_line):
    """The arguments given to amp2s3 in a shell command line: the words after
    the first word naming amp2s3, up to a shell operator or redirection."""
    words = shlex.split(command_line.replace("\\\n", " "), comments=False)
    for i, w in enumerate(words):
        if os.path.basename(w) == "amp2s3" and (
                i == 0 or words[i - 1] in ("&&", "||", ";", "|", "exec",
                                           "nice", "then", "do")):
            out = []
            for x in words[i + 1:]:
                if x in ("&&", "||", ";", "|", "&") or re.match(r"\d*[<>]", x):
                    break
                out.append(x)
            return out
    raise AssertionError("no amp2s3 command in %r" % command_line)


def flag_value(argv, *names, default=None):
    """The value of the last --flag VALUE / --flag=VALUE / -jVALUE."""
    val = default
    for i, a in enumerate(argv):
        for n in names:
            if a == n and i + 1 < len(argv):
                val = argv[i + 1]
            elif a.startswith(n + "=") and n.startswith("--"):
                val = a[len(n) + 1:]
            elif not n.startswith("--") and a.startswith(n) and a != n:
                val = a[len(n):]
    return val


# ---------------------------------------------------------------- roff ----

def _roff_args(s):
    out, cur, q, i = [], "", False, 0
    while i < len(s):
        c = s[i]
        if c == '"':
            if q and s[i + 1:i + 2] == '"':
                cur += '"'
                i += 1
            else:
                q = not q
        elif c == " " and not q:
            if cur:
                out.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    if cur or q:
        out.append(cur)
    return out


def _roff_text(s):
    s = re.sub(r"\\f(\[[^]]*\]|\(..|.)", "", s)
    s = s.replace("\\-", "-").replace("\\e", "\\").replace("\\c", "")
    s = s.replace("\\(aq", "'").replace("\\(dq", '"').replace("\\&", "")
    s = s.replace("\\ ", " ")
    return s


def deroff(source):
    """The man page's source as lines of plain text (macros kept as
    '.XX', font macros' arguments joined like troff joins them)."""
    out = []
    for line in source.splitlines():
        if line.startswith('.\\"'):
            continue
        m = re.match(r"\.(B|I|BI|BR|IB|IR|RB|RI|SM|SB)(?:\s+(.*))?$", line)
        if m:
            args = _roff_args(m.group(2) or "")
            sep = " " if m.group(1) in ("B", "I", "SM", "SB") else ""
            out.append(_roff_text(sep.join(args)))
        else:
            out.append(_roff_text(line))
    return out


def man_paragraphs(source):
    """[(section, tag, body)] for every .TP paragraph of the man page."""
    lines, out, section, i = deroff(source), [], "", 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith(".SH"):
            section = ln[3:].strip().strip('"')
        if ln.startswith(".TP") and i + 1 < len(lines):
            tag, body, j = lines[i + 1], [], i + 2
            while j < len(lines) and not re.match(r"\.(TP|SH|SS|PP)\b",
                                                  lines[j]):
                if not lines[j].startswith("."):
                    body.append(lines[j])
                else:
                    body.append(lines[j].split(None, 1)[-1]
                                if " " in lines[j] else "")
                j += 1
            out.append((section, tag, " ".join(body)))
            i = j
            continue
        i += 1
    return out


def parse_help(text):
    """{--flag: (short or None, env or None, default or None)} from
    `amp2s3 --help`."""
    flags, last = {}, None
    for line in text.splitlines():
        m = re.match(r"\s{2}(?:-(\w), )?\s*(--[a-z][a-z0-9-]*)\b(.*)$", line)
        if m:
            rest = m.group(3)
            dm = re.search(r"\[([^]]+)\]", rest)
            em = re.search(r"\$([A-Z][A-Z0-9_]*)", rest)
            last = m.group(2)
            flags[last] = [m.group(1), em.group(1) if em else None,
                           dm.group(1) if dm else None]
            continue
        em = re.match(r"\s+\$([A-Z][A-Z0-9_]*)\s*$", line)
        if em and last:
            flags[last][1] = em.group(1)
            continue
        if not line.startswith(" "):
            last = None
    return {k: tuple(v) for k, v in flags.items()}


# ======================================================== status grid ====

class Status(FetchCase):
    """`amp2s3 status`: the grid and the JSON object for a known layout."""

    START, END = BASE + 5, BASE + 50          # 2024-01-01T05 .. 01-03T02

    def layout(self):
        """s3_dev + data/ as described in each test's expectation."""
        store = self.work / "s3_dev" / PREFIX
        store.mkdir(parents=True)
        self.data.mkdir()
        stored = [BASE + 4, BASE + 5, BASE + 6, BASE + 10, BASE + 11,
                  BASE + 12, BASE + 13, BASE + 48] + \
            [h for h in range(BASE + 24, BASE + 48) if h != BASE + 30]
        for h in stored:
            (store / api.hour_file_name(h)).write_bytes(b'{"s":%d}\n' % h)
        for h in (BASE + 7, BASE + 30):                 # stored, empty
            (store / api.hour_file_name(h)).write_bytes(b"")
        for h in (BASE + 8, BASE + 50, BASE + 51):
            self.hour_path(h).write_bytes(b'{"l":1}\n')
        # stored, and the same file locally (another size would be a
        # conflict, see test_datasafety.SizeConflictDev)
        self.hour_path(BASE + 13).write_bytes(b'{"s":%d}\n' % (BASE + 13))
        self.hour_path(BASE + 9).write_bytes(b"")       # local, empty
        # none of these is an hour
        for junk in (".tmp-2024-01-01_14.jsonl.99", "notes.txt",
                     "2024-01-01_15.jsonl.bak", "2024-01-01_16.json"):
            (self.data / junk).write_bytes(b"x\n")
        (store / "2024-01-01_17.jsonl.tmp").write_bytes(b"x\n")

    # the layout's grid, day by day
    ROWS = [("2024-01-01", "     ##.LL####----------", 9, 19),
            ("2024-01-02", "######.#################", 24, 24),
            ("2024-01-03", "#-L                     ", 2, 3)]
    TOTALS = "totals: 32 complete (2 empty), 3 local only, 11 missing, " \
        "of 46 hours"
    SOURCE = "dir:s3_dev/%s + data/" % PREFIX
    LEGEND = "legend: # stored  . empty (0 bytes)  L local only (not " \
        "uploaded)  - missing"

    def status(self, *args, env=None, **kw):
        return self.run_amp(*args, cmd="status", defaults=False,
                            env=env if env is not None else self.env(
                                AMP_API_KEY=None, AMP_SECRET_KEY=None),
                            **kw)

    def test_grid_text_exact(self):
        self.layout()
        res = self.status("--dev", "--start-date", F(self.START),
                          "--end-date", F(self.END), "--color=no")
        self.assertRc(res, 1)
        lines = res.stdout.split("\n")
        self.assertEqual(lines[-1], "", "no newline at the end")
        want = ["coverage 20240101T05..20240103T02 (46 hours) in "
                + self.SOURCE] + \
            ["%-11s%s  %2d/%d" % r for r in self.ROWS] + \
            [self.LEGEND, self.TOTALS, ""]
        self.assertEqual(lines[:1] + lines[2:], want[:1] + want[1:],
                         "grid (header line aside)\n" + res.stdout)
        self.assertEqual(res.stderr, "")

    def test_header_labels_align_with_their_hour_cells(self):
        self.layout()
        res = self.status("--dev", "--start-date", F(BASE),
                          "--end-date", F(BASE + 23), "--color=no")
        lines = res.stdout.split("\n")
        head, row = lines[1], lines[2]
        self.assertTrue(head.startswith("UTC"), head)
        col0 = len("2024-01-01 ")
        self.assertEqual(row[col0:col0 + 24], "----###.LL####----------")
        labels = {m.start(): int(m.group(0))
                  for m in re.finditer(r"\d\d", head)}
        self.assertEqual(sorted(labels.values()), list(range(0, 24, 3)),
                         head)
        for pos, hour in sorted(labels.items()):
            self.assertEqual(pos - col0, hour,
                             "the label %02d stands over the cell of hour %d:"
                             "\n%s\n%s" % (hour, pos - col0, head, row))
        self.assertEqual(head, head.rstrip(), "trailing blanks in %r" % head)

    def test_grid_json_exact(self):
        self.layout()
        res = self.status("--dev", "--json", "--start-date", F(self.START),
                          "--end-date", F(self.END))
        self.assertRc(res, 1)
        self.assertEqual(res.stdout.count("\n"), 1, "one line of JSON")
        got = json.loads(res.stdout)
        missing = [F(h) for h in range(BASE + 14, BASE + 24)] + \
            [F(BASE + 49)]
        self.assertEqual(got, {
            "start": "20240101T05", "end": "20240103T02",
            "source": self.SOURCE, "hours": 46, "complete": 32, "empty": 2,
            "local_only": 3, "missing": 11, "conflict": 0,
            "days": [{"date": d, "cells": c} for d, c, _, _ in self.ROWS],
            "missing_hours": missing, "conflict_hours": []})

    def test_color_marks_cells_and_nothing_else(self):
        self.layout()
        args = ("--dev", "--start-date", F(self.START), "--end-date",
                F(self.END))
        plain = self.status(*args, "--color=no")
        color = self.status(*args, "--color=yes")
        auto = self.status(*args)              # stdout is not a terminal
        self.assertRc(color, 1)
        self.assertIn("\033[", color.stdout)
        self.assertEqual(re.sub(r"\033\[[0-9;]*m", "", color.stdout),
                         plain.stdout)
        self.assertEqual(auto.stdout, plain.stdout)

    def test_without_a_store_local_files_count_as_complete(self):
        self.layout()
        res = self.status("--start-date", F(BASE + 8), "--end-date",
                          F(BASE + 14), "--color=no")
        self.assertRc(res, 1)
        lines = res.stdout.split("\n")
        self.assertEqual(lines[0], "coverage 20240101T08..20240101T14 "
                         "(7 hours) in data/")
        self.assertEqual(lines[2], "2024-01-01 " + " " * 8 + "#.---#-" +
                         " " * 9 + "   3/7")
        self.assertEqual(lines[4], "totals: 3 complete (1 empty), 0 local "
                         "only, 4 missing, of 7 hours")

    def test_exit_status_0_only_when_nothing_is_missing(self):
        self.layout()
        cases = [((BASE + 24, BASE + 47), 0),    # a whole stored day
                 ((BASE + 7, BASE + 9), 0),      # empty + local only
                 ((BASE + 13, BASE + 14), 1),
                 ((BASE + 49, BASE + 49), 1)]
        for (a, b), rc in cases:
            for fmt in ("--color=no", "--json"):
                with self.subTest(range=(F(a), F(b)), fmt=fmt):
                    res = self.status("--dev", fmt, "--start-date", F(a),
                                      "--end-date", F(b))
                    self.assertRc(res, rc)
        res = self.status("--dev", "--start-date", F(BASE + 24),
                          "--end-date", F(BASE + 47), "--color=no")
        self.assertIn("totals: 24 complete (1 empty), 0 local only, "
                      "0 missing, of 24 hours", res.stdout)

    def test_shard_shows_and_counts_only_its_days(self):
        """--shard K/N: only shard K's whole days are drawn, counted and
        decide the exit status; the shards together make the whole."""
        self.layout()
        day0 = BASE // 24                        # 2024-01-01
        whole = {"hours": 0, "complete": 0, "empty": 0, "local_only": 0,
                 "missing": 0}
        for k in range(3):
            rows = [r for i, r in enumerate(self.ROWS)
                    if (day0 + i) % 3 == k]
            self.assertEqual(len(rows), 1)
            cells = rows[0][1].replace(" ", "")
            want = {"hours": len(cells),
                    "complete": sum(c in "#." for c in cells),
                    "empty": cells.count("."), "local_only": cells.count("L"),
                    "missing": cells.count("-")}
            rc = 1 if want["missing"] else 0
            args = ("--dev", "--shard", "%d/3" % k, "--start-date",
                    F(self.START), "--end-date", F(self.END))
            with self.subTest(shard=k):
                res = self.status(*args, "--color=no")
                self.assertRc(res, rc)
                lines = res.stdout.split("\n")
                self.assertEqual(lines[0], "coverage 20240101T05..20240103T02"
                                 ", shard %d/3 (%d hours) in %s"
                                 % (k, want["hours"], self.SOURCE))
                self.assertEqual(lines[2:], ["%-11s%s  %2d/%d" % rows[0],
                                             self.LEGEND,
                                             "totals: %d complete (%d empty),"
                                             " %d local only, %d missing, of "
                                             "%d hours" % (
                                                 want["complete"],
                                                 want["empty"],
                                                 want["local_only"],
                                                 want["missing"],
                                                 want["hours"]), ""],
                                 res.stdout)
                res = self.status(*args, "--json")
                self.assertRc(res, rc)
                got = json.loads(res.stdout)
                start = (day0 + self.ROWS.index(rows[0])) * 24
                self.assertEqual(got, dict(
                    want, start="20240101T05", end="20240103T02",
                    source=self.SOURCE, shard="%d/3" % k, conflict=0,
                    conflict_hours=[],
                    days=[{"date": rows[0][0], "cells": rows[0][1]}],
                    missing_hours=[F(h) for h in range(start, start + 24)
                                   if self.START <= h <= self.END and
                                   rows[0][1][h - start] == "-"]))
                for key in whole:
                    whole[key] += want[key]
        self.assertEqual(whole, {"hours": 46, "complete": 32, "empty": 2,
                                 "local_only": 3, "missing": 11},
                         "the three shards do not add up to the range")

    def test_no_request_no_lock_no_cleaning(self):
        srv = self.server(gen_scenario(BASE, 48))
        self.layout()
        before = sorted(os.listdir(self.data))
        env = self.env(srv, AMP_API_KEY=None, AMP_SECRET_KEY=None)
        for args in (("--color=no",), ("--json",), ("--dev", "--json")):
            res = self.status(*args, "--start-date", F(self.START),
                              "--end-date", F(self.END), env=env)
            self.assertRc(res, 1)
        self.assertEqual(srv.requests(), [], "status sent an export request")
        self.assertEqual(sorted(os.listdir(self.data)), before,
                         "status changed the data directory (lock file, "
                         "temporaries removed?)")
        # a data directory that does not exist is not created
        res = self.status("--data-dir", "nowhere", "--start-date", F(BASE),
                          "--end-date", F(BASE), "--color=no", env=env)
        self.assertRc(res, 1)
        self.assertFalse((self.work / "nowhere").exists())


# ============================================================ metrics =====

class Metrics(FetchCase):

    FAMILIES = ["amp2s3_hours_fetched", "amp2s3_hours_empty",
                "amp2s3_hours_failed", "amp2s3_hours_uploaded",
                "amp2s3_uploads_failed", "amp2s3_local_removed",
                "amp2s3_hours_conflict", "amp2s3_hours_checked",
                "amp2s3_hours_unchanged", "amp2s3_hours_replaced",
                "amp2s3_hours_new", "amp2s3_hours_changed",
                "amp2s3_bytes_downloaded", "amp2s3_answers_reread",
                "amp2s3_bytes_written",
                "amp2s3_bytes_uploaded", "amp2s3_events", "amp2s3_requests",
                "amp2s3_window_splits", "amp2s3_retries",
                "amp2s3_fetch_limit_decreases",
                "amp2s3_fetch_limit_increases",
                "amp2s3_upload_limit_decreases",
                "amp2s3_upload_limit_increases",
                "amp2s3_fetch_concurrency_limit",
                "amp2s3_fetch_concurrency_ceiling",
                "amp2s3_upload_concurrency_limit",
                "amp2s3_upload_concurrency_ceiling",
                "amp2s3_run_duration_seconds", "amp2s3_exit_code",
                "amp2s3_last_run_timestamp_seconds",
                "amp2s3_last_success_timestamp_seconds"]

    def read_metrics(self, path):
        text = path.read_text()
        try:
            samples, types = parse_prometheus(text)
        except ValueError as e:
            self.fail("%s is not valid Prometheus text: %s\n%s"
                      % (path, e, text))
        self.assertEqual(sorted(types), sorted(self.FAMILIES), text)
        return samples

    def assertNoMetricsTemporaries(self, d):
        left = [n for n in os.listdir(d) if n != "amp2s3.prom"]
        self.assertEqual(left, [], "files beside the metrics file")

    def zip_bytes(self, srv, first, last):
        req = urllib.request.Request(
            "%s?start=%s&end=%s" % (srv.url, F(first), F(last)),
            headers={"Authorization": "Basic " + BASIC})
        with urllib.request.urlopen(req, timeout=10) as r:
            return len(r.read())

    def test_after_a_run_with_one_503(self):
        srv = self.server(gen_scenario(BASE, 6, events=5, parts=2,
                                       empty_every=4, rules=[
                                           {"match": {"n": 1}, "times": 1,
                                            "action": {"status": 503}}]))
        mdir = self.tmp / "textfile"
        mdir.mkdir()
        prom = mdir / "amp2s3.prom"
        t0 = time.time()
        res = self.run_amp("--dev", "--start-date", F(BASE), "--end-date",
                           F(BASE + 5), "--metrics-file", prom, cmd="all",
                           server=srv)
        t1 = time.time()
        self.assertRc(res, 0)
        self.assertEqual([e["status"] for e in srv.requests()], [503, 200])
        m = self.read_metrics(prom)
        data = [h for h in range(BASE, BASE + 6) if h % 4]
        size = sum(len(srv.dataset.expected(h)) for h in range(BASE,
                                                               BASE + 6))
        events = sum(len(srv.dataset.expected(h).splitlines())
                     for h in range(BASE, BASE + 6))
        self.assertEqual(len(data), 4)
        want = {"amp2s3_hours_fetched": 4, "amp2s3_hours_empty": 2,
                "amp2s3_hours_failed": 0, "amp2s3_hours_uploaded": 6,
                "amp2s3_uploads_failed": 0, "amp2s3_local_removed": 0,
                "amp2s3_hours_conflict": 0,
                "amp2s3_bytes_written": size, "amp2s3_bytes_uploaded": size,
                "amp2s3_events": events, "amp2s3_requests": 2,
                "amp2s3_window_splits": 0, "amp2s3_exit_code": 0,
                # -j 1 (the suite's default) and -u 4; a 503 is no
                # reason to change either limit.
                "amp2s3_fetch_concurrency_ceiling": 1,
                "amp2s3_fetch_concurrency_limit": 1,
                "amp2s3_fetch_limit_decreases": 0,
                "amp2s3_fetch_limit_increases": 0,
                "amp2s3_upload_concurrency_ceiling": 4,
                "amp2s3_upload_concurrency_limit": 4,
                "amp2s3_upload_limit_decreases": 0,
                "amp2s3_upload_limit_increases": 0}
        self.assertEqual({k: metric(m, k) for k in want}, want)
        self.assertEqual(metric(m, "amp2s3_retries", code="503"), 1)
        self.assertEqual(metric(m, "amp2s3_retries", code="0"), 0)
        self.assertEqual(sorted(lab for (n, lab) in m
                                if n == "amp2s3_retries"),
                         [(("code", "0"),), (("code", "503"),)])
        self.assertEqual(metric(m, "amp2s3_bytes_downloaded"),
                         self.zip_bytes(srv, BASE, BASE + 5))
        for name in ("amp2s3_last_run_timestamp_seconds",
                     "amp2s3_last_success_timestamp_seconds"):
            self.assertTrue(int(t0) <= metric(m, name) <= t1 + 1,
                            "%s=%s, run between %.1f and %.1f"
                            % (name, metric(m, name), t0, t1))
        dur = metric(m, "amp2s3_run_duration_seconds")
        self.assertTrue(0 < dur <= t1 - t0, dur)
        self.assertNoMetricsTemporaries(mdir)

    def test_failing_run_keeps_the_last_success(self):
        srv = self.server(gen_scenario(BASE, 6, rules=[
            {"match": {"contains": F(BASE + 3)},
             "action": {"status": 418}}]))
        mdir = self.tmp / "textfile"
        mdir.mkdir()
        prom = mdir / "amp2s3.prom"
        res = self.fetch_range(srv, BASE, BASE + 2, "--metrics-file", prom)
        self.assertRc(res, 0)
        # an older success, as a previous run would have left it
        text = re.sub(r"(?m)^(amp2s3_last_success_timestamp_seconds) \d+$",
                      r"\1 1700000000", prom.read_text())
        prom.write_text(text)
        t0 = time.time()
        res = self.fetch_range(srv, BASE + 3, BASE + 5,
                               "--max-window-hours", "1", "--metrics-file",
                               prom)
        self.assertRc(res, 1)
        m = self.read_metrics(prom)
        self.assertEqual(metric(m, "amp2s3_exit_code"), 1)
        self.assertEqual(metric(m, "amp2s3_hours_failed"), 1)
        self.assertEqual(metric(m, "amp2s3_hours_fetched"), 2)
        self.assertEqual(metric(m, "amp2s3_requests"), 3)
        self.assertEqual(metric(m, "amp2s3_last_success_timestamp_seconds"),
                         1700000000)
        self.assertGreaterEqual(
            metric(m, "amp2s3_last_run_timestamp_seconds"), int(t0))
        self.assertNoMetricsTemporaries(mdir)

    def test_failing_first_run_reports_no_success(self):
        srv = self.server(gen_scenario(BASE, 1, rules=[
            {"action": {"status": 418}}]))
        prom = self.tmp / "amp2s3.prom"
        res = self.fetch_range(srv, BASE, BASE, "--metrics-file", prom)
        self.assertRc(res, 1)
        m = self.read_metrics(prom)
        self.assertEqual(metric(m, "amp2s3_exit_code"), 1)
        self.assertEqual(metric(m, "amp2s3_last_success_timestamp_seconds"),
                         0)

    def test_file_is_replaced_whole_never_rewritten(self):
        """A reader polling the file while runs rewrite it always reads a
        complete, valid file; every run leaves a new inode (a rename) and
        no temporary."""
        srv = self.server({})                   # 404: empty hours, fast
        mdir = self.tmp / "textfile"
        mdir.mkdir()
        prom = mdir / "amp2s3.prom"
        stop, bad, reads = threading.Event(), [], [0]

        def reader():
            while not stop.is_set():
                try:
                    text = prom.read_text()
                except FileNotFoundError:
                    continue
                reads[0] += 1
                try:
                    parse_prometheus(text)
                except ValueError as e:
                    bad.append("%s\n%s" % (e, text))
                    return
        th = threading.Thread(target=reader, daemon=True)
        th.start()
        inodes = []
        try:
            for i in range(6):
                res = self.fetch_range(srv, BASE + i, BASE + i,
                                       "--metrics-file", prom)
                self.assertRc(res, 0)
                inodes.append(prom.stat().st_ino)
        finally:
            stop.set()
            th.join(10)
        self.assertFalse(th.is_alive(), "reader thread did not stop")
        self.assertEqual(bad[:1], [], "a reader saw a partial file")
        self.assertGreater(reads[0], 0)
        # Each run renames a new file over the old one, so the inode
        # changes from one run to the next (a freed inode number may come
        # back later, so only neighbours are compared).
        for prev, cur in zip(inodes, inodes[1:]):
            self.assertNotEqual(prev, cur,
                                "the metrics file was rewritten in place")
        self.assertNoMetricsTemporaries(mdir)

    def test_unwritable_metrics_file_exits_5(self):
        srv = self.server(gen_scenario(BASE, 2))
        res = self.fetch_range(srv, BASE, BASE + 1, "--metrics-file",
                               self.tmp / "no-such-dir" / "amp2s3.prom")
        self.assertRc(res, 5)
        self.assertIn("no-such-dir", res.stderr)
        self.assertHoursExact(srv, [BASE, BASE + 1])


# ============================================================= shards =====

class Shards(FetchCase):

    def shard_files(self, d):
        d = self.work / d
        return {n: (d / n).read_bytes() for n in sorted(os.listdir(d))
                if n.endswith(".jsonl") and not n.startswith(".")}

    def test_three_shards_cover_the_range_once_by_whole_days(self):
        first, last = BASE + 6, BASE + 6 + 5 * 24 - 1   # 6 calendar days
        rng = range(first, last + 1)
        scen = gen_scenario(first, 5 * 24, events=3, parts=1, empty_every=7)
        sharded = self.server(scen, name="sharded")
        whole = self.server(scen, name="whole")
        union = {}
        for k in range(3):
            res = self.fetch_range(sharded, first, last, "--shard",
                                   "%d/3" % k, "--data-dir", "shard-%d" % k,
                                   "-j", "2")
            self.assertRc(res, 0)
            files = self.shard_files("shard-%d" % k)
            hours = {api.parse_hour(n[:10].replace("-", "") + "T" +
                                    n[11:13]) for n in files}
            days = {h // 24 for h in hours}
            self.assertTrue(days, "shard %d fetched nothing" % k)
            self.assertEqual({d % 3 for d in days}, {k},
                             "shard %d has days of other shards" % k)
            self.assertEqual(hours, {h for h in rng if h // 24 in days},
                             "shard %d: not whole days" % k)
            self.assertFalse(set(files) & set(union),
                             "an hour in two shards")
            union.update(files)
        res = self.fetch_range(whole, first, last, "--data-dir", "whole",
                               "-j", "2")
        self.assertRc(res, 0)
        self.assertEqual(union, self.shard_files("whole"),
                         "the shards' union differs from one run")
        self.assertEqual(len(union), len(rng))
        reqs = sharded.requests()
        self.assertCoversExactly(reqs, rng, disjoint=True)
        for e in reqs:
            a, b = window_of(e)
            self.assertEqual(a // 24, b // 24, "window %s..%s spans two "
                             "shards' days" % (e["start"], e["end"]))

    def test_shards_from_the_job_index_equal_shard_k_of_n(self):
        first, last = BASE + 20, BASE + 3 * 24 + 3
        scen = gen_scenario(first, last - first + 1, events=2, parts=1)
        srv = self.server(scen)
        variants = [
            ("shard-1", ["--shard", "1/3"], {}),
            ("jci-1", ["--shards", "3"], {"JOB_COMPLETION_INDEX": "1"}),
            ("env-1", [], {"AMP2S3_SHARD": "1/3"}),
            ("envs-1", [], {"AMP2S3_SHARDS": "3",
                            "JOB_COMPLETION_INDEX": "1"}),
            ("batch-2", ["--shards", "3"],
             {"AWS_BATCH_JOB_ARRAY_INDEX": "2"}),
            ("shard-2", ["--shard", "2/3"], {}),
        ]
        got, asked = {}, {}
        for d, args, env in variants:
            n = len(srv.requests())
            res = self.fetch_range(srv, first, last, "--data-dir", d, *args,
                                   env=self.env(srv, **env))
            self.assertRc(res, 0)
            got[d] = self.shard_files(d)
            asked[d] = sorted(h for e in srv.requests()[n:]
                              for h in hours_of(e))
        want1 = [h for h in range(first, last + 1) if (h // 24) % 3 == 1]
        self.assertEqual(asked["shard-1"], want1)
        for d in ("jci-1", "env-1", "envs-1"):
            self.assertEqual(got[d], got["shard-1"], d)
            self.assertEqual(asked[d], want1, d)
        self.assertEqual(got["batch-2"], got["shard-2"])
        self.assertEqual(asked["batch-2"], [h for h in range(first, last + 1)
                                            if (h // 24) % 3 == 2])

    def test_bad_shard_specs_exit_2(self):
        srv = self.server(gen_scenario(BASE, 2))
        cases = [(["--shard", "3/3"], {}), (["--shard", "1/0"], {}),
                 (["--shard", "1"], {}), (["--shard", "-1/3"], {}),
                 (["--shard", "a/3"], {}), (["--shard", "1/3/4"], {}),
                 (["--shard", ""], {}), (["--shard", "0/100001"], {}),
                 (["--shard", " 1/3"], {}), (["--shards", "0"], {}),
                 (["--shards", "x"], {}),
                 (["--shards", "3"], {}),                       # no index
                 (["--shards", "3"], {"JOB_COMPLETION_INDEX": "3"}),
                 (["--shards", "3"], {"JOB_COMPLETION_INDEX": "-1"}),
                 (["--shards", "3"], {"AWS_BATCH_JOB_ARRAY_INDEX": "x"}),
                 ([], {"AMP2S3_SHARD": "2/2"}),
                 ([], {"AMP2S3_SHARDS": "2"})]
        for args, env in cases:
            with self.subTest(args=args, env=env):
                res = self.fetch_range(srv, BASE, BASE + 1, *args,
                                       env=self.env(srv, **env))
                self.assertRc(res, 2)
                lines = [x for x in res.stderr.splitlines() if x.strip()]
                self.assertEqual(len(lines), 1, res.stderr)
                self.assertRegex(lines[0], r"--shards?\b|AMP2S3_SHARDS?")
        self.assertEqual(srv.requests(), [])
        self.assertEqual(self.hour_files(), [])


# ========================================================= exit codes =====

def blocked_on_flock(pid):
    """True if process ${pid} waits for a flock (a '->' line of
    /proc/locks)."""
    with open("/proc/locks") as f:
        for line in f:
            fields = line.split()
            if "->" in fields and fields.index("->") == 1 and \
                    len(fields) > 5 and fields[2] == "FLOCK" and \
                    fields[5] == str(pid):
                return True
    return False


class ExitCodes(FetchCase):
    """Codes not covered by test_cli.py / test_faults.py."""

    def held_run(self):
        """A first amp2s3 run holding the data directory: its only request
        stalls on the server."""
        srv = self.server(gen_scenario(BASE, 2, rules=[
            {"match": {"start": F(BASE)}, "times": 1,
             "action": {"kind": "stall", "seconds": 30}}]))
        p = self.start_amp("--start-date", F(BASE), "--end-date", F(BASE),
                           "--stall-timeout", "60", server=srv)
        poll(lambda: srv.status()["inflight"] >= 1 or p.poll() is not None,
             20, "the first run's request")
        self.assertIsNone(p.poll(), "the first run ended early")
        return srv, p

    def test_second_run_exits_4_and_wait_lock_waits(self):
        srv, first = self.held_run()
        res = self.fetch_range(srv, BASE + 1, BASE + 1, timeout=20)
        self.assertRc(res, 4)
        self.assertIn(".amp2s3.lock", res.stderr)
        self.assertEqual(srv.status()["requests"], 1)
        self.assertFalse(self.hour_path(BASE + 1).exists())
        # --wait-lock: blocks on the lock, then runs once the first is gone
        argv = [self.bin, "fetch", "--wait-lock", "--start-date",
                F(BASE + 1), "--end-date", F(BASE + 1), "--retry-base-ms",
                "10"]
        waiter = subprocess.Popen(argv, cwd=str(self.work),
                                  env=self.env(srv),
                                  stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        self.addCleanup(lambda: waiter.poll() is None and
                        (waiter.kill(), waiter.wait(10)))
        poll(lambda: blocked_on_flock(waiter.pid) or
             waiter.poll() is not None, 20, "the waiter to block on flock")
        self.assertIsNone(waiter.poll(), "--wait-lock did not wait")
        self.assertEqual(srv.status()["requests"], 1)
        first.send_signal(signal.SIGTERM)
        self.assertEqual(first.wait(10), 143)
        try:
            rc = waiter.wait(20)
        except subprocess.TimeoutExpired:
            self.fail("--wait-lock run did not finish after the lock was "
                      "released")
        self.assertEqual(rc, 0, waiter.stderr.read().decode()[-1500:])
        waiter.stderr.close()
        self.assertHourExact(srv, BASE + 1)
        self.assertFalse(self.hour_path(BASE).exists())

    def test_sigterm_while_waiting_for_the_lock_exits_143(self):
        srv, first = self.held_run()
        argv = [self.bin, "fetch", "--wait-lock", "--start-date",
                F(BASE + 1), "--end-date", F(BASE + 1)]
        waiter = subprocess.Popen(argv, cwd=str(self.work),
                                  env=self.env(srv),
                                  stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: waiter.poll() is None and
                        (waiter.kill(), waiter.wait(10)))
        poll(lambda: blocked_on_flock(waiter.pid) or
             waiter.poll() is not None, 20, "the waiter to block on flock")
        waiter.send_signal(signal.SIGTERM)
        try:
            rc = waiter.wait(5)
        except subprocess.TimeoutExpired:
            rc = None
        self.assertEqual(rc, 143, "a run waiting for the lock (--wait-lock) "
                         "must stop on the first SIGTERM (systemd stop, "
                         "Kubernetes, ^C); it was still waiting 5 s later")
        self.assertIsNone(first.poll(), "the lock holder was affected")
        first.send_signal(signal.SIGTERM)
        self.assertEqual(first.wait(10), 143)
        self.assertEqual(srv.status()["requests"], 1)

    def test_data_dir_under_a_regular_file_exits_5(self):
        srv = self.server(gen_scenario(BASE, 1))
        (self.work / "plain").write_text("a file\n")
        for cmd in ("fetch", "all"):
            with self.subTest(cmd=cmd):
                res = self.run_amp("--dev", "--data-dir", "plain/data",
                                   "--start-date", F(BASE), "--end-date",
                                   F(BASE), cmd=cmd, server=srv)
                self.assertRc(res, 5)
                self.assertIn("plain/data", res.stderr)
        res = self.run_amp("--data-dir", "plain/data", "--start-date",
                           F(BASE), "--end-date", F(BASE), cmd="status",
                           defaults=False, server=srv)
        self.assertRc(res, 5)
        self.assertEqual(srv.requests(), [])

    def test_status_range_too_large_exits_2(self):
        res = self.run_amp("--start-date", "19700101T00", "--end-date",
                           "22000101T00", cmd="status", defaults=False)
        self.assertRc(res, 2)
        self.assertEqual(res.stdout, "")


# ============================================================ contrib =====

class Contrib(FetchCase):
    """The deployment files: syntax, required settings, and every amp2s3
    command line in them accepted by the binary."""

    def check_args(self, argv, env=None):
        """Run `amp2s3 status` with ${argv}'s flags (and ${env}) plus
        overrides that keep it local: every flag name and value must be
        accepted (exit 0 or 1, nothing on stderr)."""
        argv = list(argv)
        cmds = [a for a in argv if a in ("fetch", "sync", "all", "status")]
        self.assertEqual(len(cmds), 1, "one amp2s3 command in %s" % argv)
        argv.remove(cmds[0])
        over = ["--data-dir", str(self.tmp / "chk-data"), "--dev",
                "--dev-dir", str(self.tmp / "chk-s3"), "--log-file",
                str(self.tmp / "chk.log"), "--start-date", F(BASE),
                "--end-date", F(BASE), "--color=no"]
        over_env = {"AMP_API_KEY": None, "AMP_SECRET_KEY": None,
                    "JOB_COMPLETION_INDEX": "0"}
        over_env.update(env or {})
        e = self.env(None, **over_env)
        res = self.run_amp(*(argv + over), cmd="status", defaults=False,
                           env=e, cwd=self.tmp)
        self.assertIn(res.rc, (0, 1), "amp2s3 refused %s:%s"
                      % (argv, self.explain(res)))
        self.assertEqual(res.stderr, "")
        return argv

    def assertSaysHowRolesAndProfilesWork(self, text):
        """The file's comments tell how an instance role and a profile are
        used, and no longer present static keys as the only way."""
        comments = "\n".join(x for x in text.splitlines()
                             if x.lstrip().startswith("#"))
        self.assertRegex(comments, r"instance role")
        self.assertRegex(comments, r"AWS_PROFILE=")
        self.assertRegex(comments, r"\.aws/")

    # -- systemd ------------------------------------------------------------
    UNIT_KEYS = {
        "Unit": {"Description", "Documentation", "Wants", "After",
                 "Requires", "Before", "ConditionPathExists",
                 "StartLimitIntervalSec", "StartLimitBurst"},
        "Service": {"Type", "User", "Group", "DynamicUser",
                    "EnvironmentFile", "Environment", "StateDirectory",
                    "StateDirectoryMode", "LogsDirectory", "WorkingDirectory",
                    "ExecStart", "TimeoutStartSec", "TimeoutStopSec",
                    "KillSignal", "KillMode", "Nice", "IOSchedulingClass",
                    "IOSchedulingPriority", "UMask", "ProtectSystem",
                    "ReadWritePaths", "ProtectHome", "PrivateTmp",
                    "PrivateDevices", "NoNewPrivileges",
                    "CapabilityBoundingSet", "AmbientCapabilities",
                    "ProtectKernelTunables", "ProtectKernelModules",
                    "ProtectKernelLogs", "ProtectControlGroups",
                    "ProtectClock", "ProtectHostname", "ProtectProc",
                    "ProcSubset", "RestrictAddressFamilies",
                    "RestrictNamespaces", "RestrictRealtime",
                    "RestrictSUIDSGID", "LockPersonality",
                    "MemoryDenyWriteExecute", "RemoveIPC", "PrivateUsers",
                    "SystemCallArchitectures", "SystemCallFilter",
                    "SystemCallErrorNumber", "DevicePolicy", "KeyringMode",
                    "SuccessExitStatus"},
        "Timer": {"OnCalendar", "RandomizedDelaySec", "AccuracySec",
                  "Persistent", "Unit", "OnBootSec", "FixedRandomDelay"},
        "Install": {"WantedBy"},
    }

    def parse_unit(self, path):
        """Strict INI: [Section] headers, Key=Value lines, comments; only
        known sections and keys.  Returns {section: {key: [values]}}."""
        out, sect = {}, None
        for no, line in enumerate(path.read_text().splitlines(), 1):
            where = "%s:%d: %r" % (path.name, no, line)
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            self.assertFalse(line.endswith("\\"), "continuation: " + where)
            m = re.fullmatch(r"\[([A-Za-z]+)\]", s)
            if m:
                sect = m.group(1)
                self.assertIn(sect, self.UNIT_KEYS, "section: " + where)
                self.assertNotIn(sect, out, "repeated section: " + where)
                out[sect] = {}
                continue
            m = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)=(.*)", line)
            self.assertTrue(m, "not Key=Value: " + where)
            self.assertIsNotNone(sect, "key before a section: " + where)
            self.assertIn(m.group(1), self.UNIT_KEYS[sect],
                          "unknown key: " + where)
            out[sect].setdefault(m.group(1), []).append(m.group(2))
        return out

    def test_systemd_units_strict_ini(self):
        svc = self.parse_unit(CONTRIB / "systemd" / "amp2s3.service")
        tim = self.parse_unit(CONTRIB / "systemd" / "amp2s3.timer")
        s = {k: v[-1] for k, v in svc["Service"].items()}
        self.assertEqual(s["Type"], "oneshot")
        for k, v in (("ProtectSystem", "strict"), ("NoNewPrivileges", "yes"),
                     ("PrivateTmp", "yes"), ("ProtectHome", "yes")):
            self.assertEqual(s.get(k), v, k)
        self.assertTrue(s["EnvironmentFile"].lstrip("-").startswith("/"))
        self.assertTrue(s.get("DynamicUser") == "yes" or
                        s.get("User") not in (None, "root", "0"),
                        "the service runs as root")
        rw = [p.lstrip("-") for v in svc["Service"]["ReadWritePaths"]
              for p in v.split()]
        wd = s["WorkingDirectory"]
        self.assertIn(wd, rw, "WorkingDirectory not in ReadWritePaths")
        exec_argv = shlex.split(s["ExecStart"])
        self.assertTrue(exec_argv[0].startswith("/"), exec_argv)
        self.assertEqual(os.path.basename(exec_argv[0]), "amp2s3")
        args = exec_argv[1:]
        self.assertIn("all", args)
        for flag in ("--data-dir", "--metrics-file"):
            path = flag_value(args, flag, default="data")
            if not path.startswith("/"):
                path = os.path.join(wd, path)
            self.assertTrue(any(path == p or path.startswith(p + "/")
                                for p in rw),
                            "%s %s is not writable under ProtectSystem=strict"
                            " (ReadWritePaths=%s)" % (flag, path, rw))
        self.assertTrue(flag_value(args, "--metrics-file").endswith(".prom"))
        self.check_args(args)
        self.assertSaysHowRolesAndProfilesWork(
            (CONTRIB / "systemd" / "amp2s3.service").read_text())
        t = {k: v[-1] for k, v in tim["Timer"].items()}
        self.assertIn("OnCalendar", t)
        self.assertEqual(t.get("Unit", "amp2s3.service"), "amp2s3.service")
        self.assertEqual(tim["Install"]["WantedBy"], ["timers.target"])

    def test_systemd_analyze_verify_and_security(self):
        sa = tool("systemd-analyze", "systemd")
        d = self.tmp / "units"
        d.mkdir()
        svc = (CONTRIB / "systemd" / "amp2s3.service").read_text()
        # verify checks that ExecStart= is executable: point it at the
        # binary under test
        exe = re.search(r"(?m)^ExecStart=(\S+)", svc).group(1)
        (d / "amp2s3.service").write_text(
            svc.replace("ExecStart=" + exe, "ExecStart=" + self.bin))
        shutil.copy(CONTRIB / "systemd" / "amp2s3.timer", d)
        env = dict(os.environ, SYSTEMD_LOG_COLOR="0", SYSTEMD_PAGER="cat")
        p = subprocess.run([sa, "verify", "--man=no",
                            str(d / "amp2s3.service"),
                            str(d / "amp2s3.timer")],
                           capture_output=True, text=True, timeout=60,
                           env=env, stdin=subprocess.DEVNULL)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""),
                         "systemd-analyze verify")
        p = subprocess.run([sa, "security", "--offline=yes",
                            "--threshold=25", "--no-pager",
                            str(d / "amp2s3.service")],
                           capture_output=True, text=True, timeout=60,
                           env=env, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, "exposure above 2.5:\n" +
                         p.stdout[-3000:] + p.stderr)
        cal = re.search(r"(?m)^OnCalendar=(.+)$", (CONTRIB / "systemd" /
                        "amp2s3.timer").read_text()).group(1)
        p = subprocess.run([sa, "calendar", "--iterations=3", cal],
                           capture_output=True, text=True, timeout=30,
                           env=env, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stderr)
        nexts = re.findall(r"(?:Next elapse|Iter\. #\d+):\s+\S+ (\S+ \S+)",
                           p.stdout)
        self.assertEqual(len(nexts), 3, p.stdout)
        t = [calendar.timegm(time.strptime(x, "%Y-%m-%d %H:%M:%S"))
             for x in nexts]
        self.assertEqual([b - a for a, b in zip(t, t[1:])], [3600, 3600],
                         "the timer is not hourly:\n" + p.stdout)

    # -- cron ---------------------------------------------------------------
    def test_crontab(self):
        text = (CONTRIB / "cron" / "amp2s3.crontab").read_text()
        try:
            env, jobs = parse_crontab(text)
        except ValueError as e:
            self.fail("crontab: %s" % e)
        self.assertEqual(len(jobs), 1, jobs)
        fields, command = jobs[0]
        self.assertEqual(len(fields), 5, fields)
        self.assertRegex(fields[0], r"^\d+$", "one minute of the hour")
        self.assertEqual(fields[1:], ["*"] * 4, "every hour")
        self.assertNotRegex(command, r"(?<!\\)%", "cron turns % into a "
                            "newline")
        self.assertNotIn("flock", command, "amp2s3 locks its data dir")
        self.assertRegex(command, r"^cd \S+ && ")
        args = amp2s3_argv(command)
        self.assertEqual(args[0], "all")
        self.assertTrue(flag_value(args, "--metrics-file").endswith(".prom"))
        self.assertTrue(flag_value(args, "--log-file") or ">>" in command,
                        "logs go to a file")
        self.assertIn("PATH", env)
        self.check_args(args)
        self.assertSaysHowRolesAndProfilesWork(text)
        # the same parser refuses broken lines
        for bad in ("61 * * * * x\n", "* 24 * * * x\n", "* * 0 * * x\n",
                    "* * * 13 * x\n", "* * * * 8 x\n", "*/0 * * * * x\n",
                    "5-1 * * * * x\n", "* * * * x\n", "7 * * * * x"):
            with self.subTest(bad=bad):
                self.assertRaises(ValueError, parse_crontab, bad)

    # -- GitHub Actions -----------------------------------------------------
    def test_github_actions_workflow(self):
        yaml = load_yaml_module()
        path = CONTRIB / "github-actions" / "amp2s3.yml"
        wf = yaml.safe_load(path.read_text())
        on = wf.get("on", wf.get(True))          # YAML 1.1: on -> True
        self.assertIsInstance(on, dict, "no 'on:'")
        crons = [s["cron"] for s in on.get("schedule", [])]
        self.assertEqual(len(crons), 1, crons)
        _, jobs = parse_crontab("%s x\n" % crons[0])
        self.assertRegex(jobs[0][0][0], r"^\d+$")
        self.assertEqual(jobs[0][0][1:], ["*"] * 4, "hourly")
        self.assertTrue(wf.get("concurrency"), "runs may overlap")
        self.assertEqual(len(wf["jobs"]), 1)
        job = next(iter(wf["jobs"].values()))
        image = job.get("container", {})
        image = image.get("image") if isinstance(image, dict) else image
        self.assertTrue(re.match(r"(ubuntu|debian)", image or
                                 job["runs-on"]), job)
        steps = job["steps"]
        runs = [s.get("run", "") for s in steps]
        self.assertTrue(any(re.search(r"install-deps\.sh --build|apt-get "
                                      r"install", r) for r in runs))
        self.assertTrue(any(re.search(r"\bmake\b", r) for r in runs))
        amp = [s for s in steps if re.search(r"amp2s3 all\b",
                                             s.get("run", ""))]
        self.assertEqual(len(amp), 1, "one step runs amp2s3 all")
        # secrets: only as env values of the amp2s3 step, never in a script
        ref = re.compile(r"^\$\{\{\s*secrets\.([A-Za-z0-9_]+)\s*\}\}$")

        def walk(node, path_):
            if isinstance(node, dict):
                for k, v in node.items():
                    yield from walk(v, path_ + [k])
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    yield from walk(v, path_ + [i])
            elif isinstance(node, str):
                yield path_, node
        passed = {}
        for p, s in walk(wf, []):
            if "secrets." not in s:
                continue
            m = ref.match(s.strip())
            self.assertTrue(m and len(p) >= 2 and p[-2] == "env",
                            "secret used outside an env: mapping at %s: %r"
                            % (p, s))
            self.assertEqual(p[-1], m.group(1))
            passed[m.group(1)] = p
        self.assertTrue({"AMP_API_KEY", "AMP_SECRET_KEY", "AWS_BUCKET_NAME"}
                        <= set(passed), passed)
        # AWS by OIDC: no stored key, a role assumed with the job's token
        # before amp2s3 runs
        self.assertFalse(set(STATIC_AWS_KEYS) & set(passed), passed)
        perms = job.get("permissions", wf.get("permissions", {}))
        self.assertEqual(perms.get("id-token"), "write", perms)
        oidc = [i for i, s in enumerate(steps) if str(s.get("uses", ""))
                .startswith("aws-actions/configure-aws-credentials@")]
        self.assertEqual(len(oidc), 1, "one configure-aws-credentials step")
        with_ = steps[oidc[0]].get("with", {})
        self.assertTrue(with_.get("role-to-assume"), with_)
        self.assertTrue(with_.get("aws-region"), with_)
        self.assertFalse({"aws-access-key-id", "aws-secret-access-key"}
                         & set(with_), with_)
        self.assertLess(oidc[0], steps.index(amp[0]))
        self.assertGreaterEqual(int(with_.get("role-duration-seconds",
                                              3600)),
                                60 * int(job["timeout-minutes"]),
                                "the credentials expire before the job's "
                                "timeout")
        for r in runs:
            self.assertNotRegex(r, r"set -[a-z]*x|\bprintenv\b|^\s*env\s*$|"
                                r"echo[^\n]*\$\{?(AMP_|AWS_)", r)
        step = amp[0]
        plain_env = {k: str(v) for k, v in step.get("env", {}).items()
                     if "secrets." not in str(v)}
        self.check_args(amp2s3_argv(step["run"]), env=plain_env)

    # -- Kubernetes ---------------------------------------------------------
    def test_kubernetes_indexed_job(self):
        yaml = load_yaml_module()
        docs = [d for d in yaml.safe_load_all(
            (CONTRIB / "kubernetes" / "indexed-job.yaml").read_text()) if d]
        jobs = [d for d in docs if d.get("kind") == "Job"]
        self.assertEqual(len(jobs), 1)
        self.assertFalse([d for d in docs if d.get("kind") == "Secret"],
                         "no Secret with values in the manifest")
        job = jobs[0]
        self.assertEqual(job["apiVersion"], "batch/v1")
        spec = job["spec"]
        self.assertEqual(spec.get("completionMode"), "Indexed")
        n, par = spec["completions"], spec.get("parallelism", 1)
        self.assertIsInstance(n, int)
        self.assertTrue(1 <= par <= n, (par, n))
        pod = spec["template"]["spec"]
        self.assertIn(pod.get("restartPolicy"), ("Never", "OnFailure"))
        self.assertEqual(len(pod["containers"]), 1)
        c = pod["containers"][0]
        self.assertTrue(c.get("image"))
        args = c.get("args", [])
        self.assertTrue(all(isinstance(a, str) for a in args),
                        "every arg must be a string: %s" % args)
        self.assertEqual(int(flag_value(args, "--shards")), n,
                         "completions must equal --shards")
        env = {e["name"]: e for e in c.get("env", [])}
        self.assertNotIn("JOB_COMPLETION_INDEX", env,
                         "Kubernetes sets JOB_COMPLETION_INDEX itself")
        for name in SECRET_NAMES:
            if name in env:
                self.assertNotIn("value", env[name], name + " in clear")
                self.assertIn("secretKeyRef", env[name].get("valueFrom", {}))
        self.assertTrue(any("secretRef" in x for x in c.get("envFrom", []))
                        or any("secretKeyRef" in e.get("valueFrom", {})
                               for e in env.values()), "no Secret used")
        # S3 through the pods' service account (IRSA / Pod Identity), no
        # static AWS key anywhere in the manifest or its instructions
        self.assertFalse(c.get("envFrom"), "envFrom would pass whatever "
                         "the Secret holds")
        self.assertFalse(set(STATIC_AWS_KEYS) & set(env), env)
        text = (CONTRIB / "kubernetes" / "indexed-job.yaml").read_text()
        for name in STATIC_AWS_KEYS:
            self.assertNotIn(name, text)
        sas = {d["metadata"]["name"]: d for d in docs
               if d.get("kind") == "ServiceAccount"}
        self.assertIn(pod.get("serviceAccountName"), sas,
                      "the pod's service account is not in the manifest")
        sa = sas[pod["serviceAccountName"]]
        self.assertRegex(sa["metadata"].get("annotations", {}).get(
            "eks.amazonaws.com/role-arn", ""), r"^arn:aws:iam::\d{12}:role/")
        self.assertNotEqual(pod.get("automountServiceAccountToken"), False,
                            "IRSA / Pod Identity need the token")
        self.assertIn("create-pod-identity-association", text)
        workers = int(flag_value(args, "-j", "--fetch-workers", default=str(
            env.get("AMP_FETCH_WORKERS", {}).get("value", 4))))
        self.assertLessEqual(par * workers, MAX_CONCURRENT_EXPORTS,
                             "parallelism x --fetch-workers > %d: Amplitude "
                             "answers 429" % MAX_CONCURRENT_EXPORTS)
        ddir = flag_value(args, "--data-dir")
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        self.assertIn(ddir, mounts, "--data-dir is not a mounted volume")
        vol = {v["name"]: v for v in pod["volumes"]}[mounts[ddir]]
        self.assertIn("emptyDir", vol)
        sc = dict(pod.get("securityContext", {}), **c.get("securityContext",
                                                           {}))
        self.assertTrue(sc.get("runAsNonRoot"))
        self.assertFalse(sc.get("allowPrivilegeEscalation", True))
        for k in range(n):
            with self.subTest(index=k):
                self.check_args(args, env={"JOB_COMPLETION_INDEX": str(k)})

    # -- container ----------------------------------------------------------
    RUNTIME_LIBS = {"libcurl4", "zlib1g", "libyajl2", "libzip4", "libexpat1",
                    "libssl3"}

    def dockerfile(self):
        text = (CONTRIB / "container" / "Dockerfile").read_text()
        instr = []
        for line in re.sub(r"\\\n", " ", text).splitlines():
            s = line.strip()
            if s and not s.startswith("#"):
                op, _, rest = s.partition(" ")
                instr.append((op.upper(), rest.strip()))
        stages, cur = [], None
        for op, rest in instr:
            if op == "FROM":
                cur = {"from": rest, "ops": []}
                stages.append(cur)
            else:
                self.assertIsNotNone(cur, "%s before FROM" % op)
                cur["ops"].append((op, rest))
        return text, stages

    def apt_installed(self, stage):
        pkgs = set()
        for op, rest in stage["ops"]:
            if op == "RUN":
                for m in re.finditer(r"apt-get install((?:\s+[^&|;]+))",
                                     rest):
                    pkgs |= {w for w in m.group(1).split()
                             if not w.startswith("-")}
        return pkgs

    def test_dockerfile(self):
        text, stages = self.dockerfile()
        self.assertGreaterEqual(len(stages), 2, "multi-stage")
        for st in stages:
            self.assertRegex(st["from"], r"^debian:bookworm(-slim)?\b",
                             "FROM %s" % st["from"])
        build, final = stages[0], stages[-1]
        self.assertTrue(any(op == "RUN" and "install-deps.sh --build" in r
                            for op, r in build["ops"]))
        # the runtime stage: the shared libraries, no compiler
        pkgs = self.apt_installed(final)
        self.assertTrue(self.RUNTIME_LIBS <= pkgs, pkgs)
        self.assertFalse({p for p in pkgs if p.endswith("-dev") or p in
                          ("build-essential", "gcc", "make")}, pkgs)
        # ... and every library the binary links (dpkg -S)
        tool("dpkg", "dpkg")
        needed = re.findall(r"NEEDED\s+(\S+)", subprocess.run(
            ["objdump", "-p", self.bin], capture_output=True, text=True,
            check=True).stdout)
        arch = subprocess.run(["gcc", "-print-multiarch"],
                              capture_output=True, text=True).stdout.strip()
        p = subprocess.run(["dpkg", "-S"] + ["*/%s/%s" % (arch, lib)
                                             for lib in needed],
                           capture_output=True, text=True, timeout=60)
        for lib in needed:
            owners = {x.split(":")[0] for x in p.stdout.splitlines()
                      if x.endswith("/" + lib)}
            self.assertTrue(owners & (pkgs | {"libc6"}) or
                            lib.startswith(("libasan", "libubsan", "libtsan",
                                            "libstdc++", "libgcc_s")),
                            "%s (from %s) is not installed in the runtime "
                            "image" % (lib, owners))
        users = [r for op, r in final["ops"] if op == "USER"]
        self.assertTrue(users, "the image runs as root")
        self.assertNotRegex(users[-1].split(":")[0], r"^(0|root)$")
        # secrets: none in the image, no .env copied
        for st in stages:
            for op, rest in st["ops"]:
                if op in ("ENV", "ARG"):
                    self.assertNotRegex(rest, r"(?i)(KEY|SECRET|TOKEN|PASS"
                                        r"WORD)\w*\s*=", rest)
                if op in ("COPY", "ADD"):
                    srcs = [w for w in rest.split()
                            if not w.startswith("--")][:-1]
                    self.assertFalse([s for s in srcs if s in (".", "./")
                                      or ".env" in s],
                                     "%s %s may copy a .env" % (op, rest))
        self.assertNotRegex(text, r"AKIA[0-9A-Z]{16}")
        for name in SECRET_NAMES:
            self.assertNotRegex(text, r"%s\s*=" % name)
        # the build stage's COPY set is enough for `make amp2s3`
        tree = self.tmp / "context"
        tree.mkdir()
        for op, rest in build["ops"]:
            if op != "COPY":
                continue
            words = [w for w in rest.split() if not w.startswith("--")]
            for src in words[:-1]:
                s, dst = ROOT / src, tree / src
                self.assertTrue(s.exists(), "COPY %s: no such path" % src)
                dst.parent.mkdir(parents=True, exist_ok=True)
                if s.is_dir():
                    shutil.copytree(s, dst)
                else:
                    shutil.copy(s, dst)
        # (make -n -B: every command of a full build, nothing run)
        plan = {}
        env = {k: v for k, v in os.environ.items()
               if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEFILES",
                            "VARIANT")}
        for where in (tree, ROOT):
            p = subprocess.run(["make", "-n", "-B", "amp2s3"],
                               cwd=str(where), capture_output=True,
                               text=True, timeout=60, env=env)
            self.assertEqual(p.returncode, 0, "make -n amp2s3 in %s: %s"
                             % (where, p.stderr[-1500:]))
            plan[where] = sorted(p.stdout.splitlines())
        self.assertEqual(plan[tree], plan[ROOT], "the files the Dockerfile "
                         "copies do not build amp2s3 as the source tree does")
        # the entry point is the binary copied from the build stage
        dests = [r.split()[-1] for op, r in final["ops"]
                 if op == "COPY" and "--from=" in r]
        ep = [json.loads(r) for op, r in final["ops"] if op == "ENTRYPOINT"]
        self.assertTrue(ep and ep[-1][0] in dests, (ep, dests))
        cmd = [json.loads(r) for op, r in final["ops"] if op == "CMD"]
        if cmd:
            self.check_args(cmd[-1])

    def test_readme_covers_every_file(self):
        text = (CONTRIB / "README.md").read_text()
        for p in sorted(CONTRIB.rglob("*")):
            if p.is_file() and p.name != "README.md":
                self.assertIn(str(p.relative_to(CONTRIB)), text,
                              "contrib/README.md does not mention %s" % p)
        self.assertIn("429", text)


# ============================================================ man page ====

class ManPage(FetchCase):

    def help_text(self):
        p = subprocess.run([self.bin, "--help"], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        return p.stdout

    def test_renders_without_warnings(self):
        groff = tool("groff", "groff-base")
        p = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z",
                            str(MANPAGE)], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual((p.returncode, p.stderr), (0, ""), "groff -ww")
        man = tool("man", "man-db")
        env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MANPAGER="cat",
                   PAGER="cat")
        p = subprocess.run([man, "--warnings", "-l", str(MANPAGE)],
                           capture_output=True, text=True, timeout=30,
                           env=env, stdin=subprocess.DEVNULL)
        self.assertEqual((p.returncode, p.stderr), (0, ""), "man -l")
        out = p.stdout
        for sect in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS",
                     "OPTIONS", "ENVIRONMENT", "FILES", "EXIT STATUS",
                     "EXAMPLES", "SEE ALSO"):
            self.assertRegex(out, r"(?m)^%s$" % sect)
        self.assertRegex(out, r"(?m)^\s+amp2s3 - keep an S3 bucket")

    def test_every_help_flag_documented_with_env_and_default(self):
        flags = parse_help(self.help_text())
        self.assertGreater(len(flags), 30, "could not read --help")
        paras = [(t, b) for s, t, b in man_paragraphs(MANPAGE.read_text())
                 if s == "OPTIONS"]
        documented = {}
        for tag, body in paras:
            for f in re.findall(r"--[a-z][a-z0-9-]*", tag):
                documented[f] = (tag, body)
        for flag, (short, env, default) in sorted(flags.items()):
            with self.subTest(flag=flag):
                self.assertTrue(flag in documented, "%s is not described "
                                "under OPTIONS in man/amp2s3.1" % flag)
                tag, body = documented[flag]
                if short:
                    self.assertIn("-%s, %s" % (short, flag), tag)
                if env:
                    self.assertRegex(body, r"Environment:[^.]*\b%s\b" % env,
                                     "%s: environment %s" % (flag, env))
                if default:
                    self.assertIn("Default: %s" % default, body,
                                  "%s: default %s" % (flag, default))
        stale = set(documented) - set(flags)
        self.assertEqual(stale, set(), "documented but not in --help")

    def test_commands_exit_codes_and_version_match_the_binary(self):
        src = MANPAGE.read_text()
        paras = man_paragraphs(src)
        help_ = self.help_text()
        cmds = re.match(r"usage: amp2s3 (\S+)", help_).group(1).split("|")
        self.assertEqual(sorted(t.strip() for s, t, _ in paras
                                if s == "COMMANDS" and t.strip() in cmds),
                         sorted(cmds))
        codes = {c for s, t, _ in paras if s == "EXIT STATUS"
                 for c in re.findall(r"\d+", t)}
        self.assertEqual(codes, {"0", "1", "2", "3", "4", "5", "130", "143"})
        for var in re.findall(r"\b(AMP_[A-Z_]+|AWS_[A-Z_]+|AMP2S3_[A-Z_]+)",
                              help_):
            self.assertIn(var, src.replace("\\", ""), var)
        ver = subprocess.run([self.bin, "--version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
        th = re.search(r'(?m)^\.TH AMP2S3 1 "[^"]*" "([^"]*)"', src)
        self.assertTrue(th, ".TH line")
        self.assertEqual(th.group(1), ver, "the man page's .TH names another "
                         "version than `amp2s3 --version`")
