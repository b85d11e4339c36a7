#!/usr/bin/python3
"""A scripted stand-in for Amplitude's Export API (GET /api/2/export).

Stdlib only.  Run with /usr/bin/python3.

    export_api.py --port-file F [--scenario S.json] [--request-log L.jsonl]
                  [--api-key K] [--secret-key S] [--barrier K]
                  [--barrier-timeout-ms MS] [--hold-ms MS]
                  [--generate START END] [--events-per-hour N]
                  [--parts-per-hour K] [--empty-every E] [--seed S]
    export_api.py --demo [--port-file F]

Binds 127.0.0.1 on an ephemeral port; writes the port (decimal, "\n") to
--port-file through a temporary + rename, so a reader that sees the file
sees all of it.  Prints nothing else (except --demo, which prints the port
on stdout and a hint on stderr).  SIGTERM / SIGINT stop it cleanly.

Protocol (as in doc AMPLITUDE-EXPORT-API.md)
--------------------------------------------
GET /api/2/export?start=YYYYMMDDTHH&end=YYYYMMDDTHH, HTTP Basic auth.
  * wrong / missing credentials      -> 403 "Invalid API key or secret key"
  * missing / malformed start or end,
    end before start                 -> 422 with a one-line message.  (The
    real API's behaviour for malformed parameters is not documented; 422 is
    this stand-in's choice, distinct from the documented 400 "too large").
  * range longer than 365 days       -> 400 (the documented too-large text)
  * no member in the inclusive range -> 404 "Raw data files were not found."
  * otherwise 200, Content-Type application/zip: a real zip (zipfile) of
    real gzip members "<project>/<project>_<YYYY-MM-DD>_<H>#<part>.json.gz"
    (hour not zero-padded), one member per part, only hours in range.
Other paths -> 404 "Not Found" (logged with action "bad_path"; a body other
than the API's own "Raw data files were not found.", as a wrong --api-url
path would get).  GET /_status (no auth, not logged, not counted) -> JSON:
  requests, inflight, logged, max_inflight      every request (refused too)
  inflight_accepted, max_inflight_accepted      export requests the
                                                concurrency cap let through
  cap                                           the cap now (null: none)
  count_429                                     every 429 answer (cap + rules)
  count_cap                                     429s of the cap alone
  max_inflight_accepted_after_first_429         peak of accepted requests in
                                                flight from the first cap
                                                refusal on (0 before it)
  max_inflight_after_first_429                  the same, every request in
                                                flight (refused ones too)
for test harnesses that wait until the server is idle or read the peaks.
(Accepted requests never outnumber the cap, except when a schedule lowers
it under requests already in flight; what a client sent beyond the cap
shows in count_cap, max_inflight_after_first_429 and the request log's
inflight_at_start / t_start.)

Scenario file (JSON), every key optional
----------------------------------------
{
  "project": 187520,
  "auth": {"key": "test-api-key", "secret": "test-secret-key"},
  "hours": {                       # explicit data, wins over "generate"
    "20240101T05": [               # list of parts; index = part number
      ["{\"a\":1}", {"b": 2}],     # a part = list of lines: a string is
      []                           # used verbatim, anything else is
    ],                             # json.dumps(compact, ensure_ascii=False)
    "20240101T06": [{"part": 10, "lines": ["..."]}],   # explicit part no.
    "20240101T07": []              # hour with no member
  },
  "generate": {"start": "20240101T00", "end": "20240103T23",
               "events_per_hour": 50, "parts_per_hour": 3,
               "empty_every": 7,  # hour_index % 7 == 0 -> no member
               "seed": 1},
  "zip": {                         # defaults for every 200 answer
    "compression": "deflated",     # or "stored"
    "data_descriptor": false,      # write through an unseekable stream:
                                   # general-purpose bit 3 + descriptors
    "zip64": false,                # force_zip64=True on every member
    "zip64_eocd": false,           # add zip64 end-of-central-dir records
    "member_order": "natural",     # natural | reverse | lexical | shuffle
    "trailing_newline": true,      # false: a part's last line has no "\n"
    "chunked": false               # Transfer-Encoding: chunked
  },
  "barrier": {"count": 4, "timeout_ms": 5000},
  "hold_ms": 0,
  "concurrency_cap": 4,            # see "Concurrency cap" below
  "cap_retry_after": "1",
  "cap_schedule": [[0, 4], [3.0, 2], [6.0, 5]],
  "rules": [ RULE, ... ]
}

A part may also be {"part": 0, "repeat": LINE, "count": N} (N copies of
one line, without N lines in the scenario file) and may carry
"gzip_level": 1..9 (default 6), e.g. a highly compressible hour:
  "20240101T00": [{"part": 0, "repeat": {"e": "x"}, "count": 1800000,
                   "gzip_level": 9}]

Concurrency cap (the API's "about 5 concurrent requests per project")
---------------------------------------------------------------------
"concurrency_cap": N    an export request that arrives while N accepted
                        answers are in flight is answered 429 at once
                        (body "Too many concurrent requests", before the
                        barrier, the hold, auth and the rules), counted
                        (count_429, count_cap) and logged with action
                        "cap".  null / absent: no cap; 0 refuses all.
"cap_retry_after": "1"  Retry-After header value of those 429s (absent:
                        no header).
"cap_schedule": [[T, N], ...]   the cap becomes N at T seconds after the
                        first export request (the last entry with T <=
                        elapsed wins, elapsed being 0 until that request;
                        before the first entry the cap is
                        "concurrency_cap").  N may be null (no cap).
Accepted = not refused by the cap (a rule may still answer 429).

Rules (faults), first match wins
--------------------------------
RULE = {"match": {...}, "times": N, "action": {...}}
  match (all given keys must hold; {} or absent matches every request):
    "n": 3 | [1, 2]           request number (1-based, counts every export
                              request, also refused ones)
    "start", "end": "YYYYMMDDTHH"   exact window bounds
    "hours": 2                exact window size in hours
    "min_hours", "max_hours"  window size bounds
    "contains": "YYYYMMDDTHH" | [...]   window includes any of these hours
  times: how many requests the rule applies to (absent/null = unlimited).
  action (status wins over kind, except "raw"; "zip" may accompany any
  data answer; "hold_ms": MS on any action waits that long first, ending
  early when the client hangs up):
    {"status": 500, "body": "...", "headers": {"Retry-After": "1"},
     "content_type": "text/html"}
        default bodies: 400 too-large text, 404 "Raw data files were not
        found.", others a short text; e.g. a proxy's 404 page:
        {"status": 404, "body": "<html>...</html>",
         "content_type": "text/html"}
    {"kind": "ok"}                      the normal answer
    {"zip": {...}}                      normal answer, zip options overridden
    {"kind": "not_zip"}                 200 text/html error page
    {"kind": "truncate", "fraction": 0.5}
        full Content-Length header, then half the body, then close
    {"kind": "reset"}                   RST (SO_LINGER 0) before any byte;
    {"kind": "reset", "after_fraction": 0.5}   ... or after part of the body
    {"kind": "stall", "seconds": 30, "after_fraction": 0}
        headers (+ optional part of the body), then nothing for `seconds`
        (ends early when the client hangs up or the server stops), then the
        rest of the body
    {"kind": "slow_first_byte", "seconds": 2}   delay before the headers
    {"kind": "corrupt_member", "member": 0, "where": "gzip_crc"}
        where: gzip_crc (flip a bit of the gzip CRC32 -> CRC error),
        deflate (flip a byte inside the deflate data), zip_crc (flip a byte
        of the member's data in the zip -> zip CRC mismatch)
    {"kind": "outside_member", "offset_hours": 1}
        add a member for the hour end+offset (negative: start+offset)
    {"kind": "hostile_name", "name": "../../x"}  add a member so named
    {"kind": "trickle", "bytes_per_s": 1, "after_bytes": 0}
        headers (full Content-Length), the first after_bytes bytes of the
        normal answer at once, then the rest at bytes_per_s (in steps of
        max(1, bytes_per_s / 10) bytes); ends when the client hangs up
    {"kind": "slow_body", "seconds": 5}
        the normal answer spread evenly over `seconds` (about 20 pieces a
        second): bytes arrive long before the zip is complete
    {"kind": "raw", "body_file": "/abs/path", "status": 200,
     "content_type": "application/zip", "headers": {...},
     "chunked": false}
        exactly the bytes of body_file (read per request); chunked:
        Transfer-Encoding chunked (no Content-Length), 64 KiB a chunk
    {"kind": "garbage", "bytes": 40000000, "bytes_per_s": 2000000,
     "chunk": 16384}
        200 application/zip with Content-Length `bytes`, then that many
        bytes that are not a zip (they start "\0GARBAGE"), paced at
        bytes_per_s (0: as fast as the socket takes them); stops when the
        client hangs up -- bytes_sent / client_gone in the log say how
        much went out

Request log (--request-log), one JSON object per line, written when the
answer is finished:
  n, path, start, end, hours, t_start, t_end (epoch seconds, float),
  status, action, rule (index or null), auth_ok, auth_user,
  inflight_at_start, max_inflight, barrier_wait_ms, bytes_sent, client_gone,
  inflight_accepted_at_start (accepted answers in flight when it arrived,
  itself included if accepted; null for another path), cap_at_start
"""

import argparse
import base64
import calendar
import gzip
import hmac
import http.server
import io
import json
import os
import random
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid
import zipfile

DEFAULT_KEY = "test-api-key"
DEFAULT_SECRET = "test-secret-key"
DEFAULT_PROJECT = 187520

TOO_LARGE = ("The file size of the exported data is too large. Shorten the "
             "time ranges and try again. The limit size is 4GB.")
NOT_FOUND = "Raw data files were not found."
HTML_PAGE = ("<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title>"
             "</head><body><h1>Something went wrong</h1><p>Please try again"
             " later.</p></body></html>\n")

ZIP_DEFAULTS = {
    "compression": "deflated",
    "data_descriptor": False,
    "zip64": False,
    "zip64_eocd": False,
    "member_order": "natural",
    "trailing_newline": True,
    "chunked": False,
}

REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 418: "I'm a teapot", 422: "Unprocessable Entity",
           429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout"}

# --------------------------------------------------------------- hours ----

_HOUR_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})$")


def parse_hour(s):
    """'YYYYMMDDTHH' -> hours since the epoch (int).  ValueError if bad."""
    m = _HOUR_RE.match(s if isinstance(s, str) else "")
    if not m:
        raise ValueError("not YYYYMMDDTHH: %r" % (s,))
    y, mo, d, h = (int(x) for x in m.groups())
    if not (1 <= mo <= 12 and 1 <= d <= 31 and 0 <= h <= 23 and y >= 1970):
        raise ValueError("out of range: %r" % (s,))
    t = (y, mo, d, h, 0, 0, 0, 0, 0)
    secs = calendar.timegm(t)
    if time.gmtime(secs)[:4] != (y, mo, d, h):   # e.g. 20230231
        raise ValueError("no such date: %r" % (s,))
    return secs // 3600


def fmt_hour(h):
    """hours since the epoch -> 'YYYYMMDDTHH'."""
    return time.strftime("%Y%m%dT%H", time.gmtime(h * 3600))


def hour_file_name(h):
    """hours since the epoch -> 'YYYY-MM-DD_HH.jsonl' (amp2s3's file)."""
    return time.strftime("%Y-%m-%d_%H.jsonl", time.gmtime(h * 3600))


def member_name(project, h, part):
    t = time.gmtime(h * 3600)
    return "%d/%d_%s_%d#%d.json.gz" % (project, project,
                                       time.strftime("%Y-%m-%d", t),
                                       t.tm_hour, part)


def now_hour():
    return int(time.time()) // 3600


# ------------------------------------------------------------- dataset ----

EVENT_TYPES = ["session_start", "page_view", "click", "purchase",
               "sign_up", "search", "[Amplitude] Revenue", "session_end"]
NOTES = ["plain", "café ☕", "quote \" and \\ backslash", "tab\there",
         "日本語", "emoji 🎉", "line\nbreak in a string", ""]


def _fmt_ts(us):
    """microseconds since the epoch -> 'YYYY-MM-DD HH:MM:SS.ffffff'."""
    s, frac = divmod(us, 1000000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s)) + \
        ".%06d" % frac


def generate_hour(h, gen, project):
    """Deterministic synthetic events for hour ${h}: list of parts, each a
    list of JSON lines (str).  Independent of the generated range."""
    every = int(gen.get("empty_every", 7) or 0)
    if every > 0 and h % every == 0:
        return []
    seed = gen.get("seed", 1)
    rng = random.Random("%s:%d" % (seed, h))
    n = int(gen.get("events_per_hour", 50))
    k = max(1, min(int(gen.get("parts_per_hour", 1)), n)) if n else 0
    base_us = h * 3600 * 1000000
    rows = []
    for _ in range(n):
        up = base_us + rng.randrange(3600 * 1000000)
        ev = up - rng.randrange(600 * 1000000)
        cl = ev - rng.randrange(5 * 1000000)
        user = rng.randrange(1000)
        rows.append((up, {
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "$insert_id": str(uuid.UUID(int=rng.getrandbits(128),
                                        version=4)),
            "event_type": rng.choice(EVENT_TYPES),
            "event_time": _fmt_ts(ev),
            "client_event_time": _fmt_ts(cl),
            "server_upload_time": _fmt_ts(up),
            "user_id": "user-%04d" % user,
            "device_id": str(uuid.UUID(int=rng.getrandbits(128),
                                       version=4)),
            "amplitude_id": 100000000000 + user,
            "session_id": (ev // 1000) - rng.randrange(1800000),
            "event_properties": {
                "plan": rng.choice(["free", "pro", "team"]),
                "value": rng.randrange(100000) / 100,
                "count": rng.randrange(50),
                "note": rng.choice(NOTES),
            },
            "user_properties": {"cohort": rng.randrange(12)},
            "app": project,
        }))
    rows.sort(key=lambda r: r[0])
    lines = [json.dumps(r[1], separators=(",", ":"), ensure_ascii=False)
             for r in rows]
    return [lines[i * n // k:(i + 1) * n // k] for i in range(k)]


class Dataset:
    """What the server serves: hour -> [(part number, [line, ...]), ...]."""

    def __init__(self, scenario):
        self.project = int(scenario.get("project", DEFAULT_PROJECT))
        self.gen = scenario.get("generate")
        if self.gen:
            self.gen_start = parse_hour(self.gen["start"])
            self.gen_end = parse_hour(self.gen["end"])
        self.explicit = {}
        self.levels = {}     # (h, part number) -> gzip level, if not 6
        for key, parts in (scenario.get("hours") or {}).items():
            h = parse_hour(key)
            out = []
            for i, p in enumerate(parts):
                if isinstance(p, dict):
                    num = int(p["part"])
                    if "repeat" in p:
                        # one str object referenced N times: cheap
                        lines = [self._line(p["repeat"])] * int(p["count"])
                    else:
                        lines = [self._line(x) for x in p.get("lines", [])]
                    if "gzip_level" in p:
                        self.levels[(h, num)] = int(p["gzip_level"])
                else:
                    num, lines = i, [self._line(x) for x in p]
                out.append((num, lines))
            out.sort(key=lambda x: x[0])
            nums = [x[0] for x in out]
            if len(set(nums)) != len(nums):
                raise ValueError("hour %s: duplicate part numbers" % key)
            self.explicit[h] = out
        self._lock = threading.Lock()
        self._cache = {}     # (h, trailing_newline) -> [(part, gz bytes)]

    @staticmethod
    def _line(x):
        if isinstance(x, str):
            return x
        return json.dumps(x, separators=(",", ":"), ensure_ascii=False)

    def parts(self, h):
        """[(part number, [lines])] sorted by part number; [] if none."""
        if h in self.explicit:
            return self.explicit[h]
        if self.gen and self.gen_start <= h <= self.gen_end:
            return list(enumerate(generate_hour(h, self.gen, self.project)))
        return []

    def hours_with_data(self, first, last):
        """Hours of [first, last] that have at least one member."""
        out = [h for h in self.explicit if first <= h <= last
               and self.explicit[h]]
        if self.gen:
            lo, hi = max(first, self.gen_start), min(last, self.gen_end)
            for h in range(lo, hi + 1):
                if h not in self.explicit and self.parts(h):
                    out.append(h)
        return sorted(out)

    def expected(self, h):
        """The bytes of DATA_DIR/<hour>.jsonl amp2s3 should write: every
        part's lines in part order, each line ending with "\\n"."""
        return "".join(line + "\n" for _, lines in self.parts(h)
                       for line in lines).encode("utf-8")

    def part_bytes(self, lines, trailing_newline=True):
        s = "\n".join(lines) + "\n" if lines else ""
        if not trailing_newline and s:
            s = s[:-1]
        return s.encode("utf-8")

    def gz_parts(self, h, trailing_newline=True):
        """[(part number, gzip bytes)] for hour ${h}, built once."""
        key = (h, bool(trailing_newline))
        with self._lock:
            got = self._cache.get(key)
        if got is None:
            got = [(num, gzip.compress(self.part_bytes(lines,
                                                       trailing_newline),
                                       compresslevel=self.levels.get(
                                           (h, num), 6), mtime=0))
                   for num, lines in self.parts(h)]
            with self._lock:
                self._cache[key] = got
        return got


# ----------------------------------------------------------------- zip ----

class _Unseekable:
    """A write-only sink without tell()/seek(): zipfile then sets
    general-purpose bit 3 and writes data descriptors."""

    def __init__(self):
        self._buf = io.BytesIO()

    def write(self, b):
        return self._buf.write(b)

    def flush(self):
        pass

    def getvalue(self):
        return self._buf.getvalue()


def _add_zip64_eocd(data):
    """Insert a zip64 end-of-central-directory record and locator before
    the (comment-less) EOCD, and mark the EOCD fields 0xFFFF/0xFFFFFFFF."""
    eocd = data[-22:]
    sig, disk, cd_disk, n_disk, n_total, cd_size, cd_off, clen = \
        struct.unpack("<IHHHHIIH", eocd)
    assert sig == 0x06054b50 and clen == 0, "unexpected EOCD"
    body = data[:-22]
    z64_off = len(body)
    z64 = struct.pack("<IQHHIIQQQQ", 0x06064b50, 44, 45, 45, 0, 0,
                      n_disk, n_total, cd_size, cd_off)
    loc = struct.pack("<IIQI", 0x07064b50, 0, z64_off, 1)
    new_eocd = struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, 0xFFFF, 0xFFFF,
                           0xFFFFFFFF, 0xFFFFFFFF, 0)
    return body + z64 + loc + new_eocd


def build_zip(members, opts):
    """members: [(name, bytes)] in archive order.  Returns the zip bytes."""
    comp = zipfile.ZIP_STORED if opts["compression"] == "stored" \
        else zipfile.ZIP_DEFLATED
    sink = _Unseekable() if opts["data_descriptor"] else io.BytesIO()
    with zipfile.ZipFile(sink, "w", compression=comp, allowZip64=True) as zf:
        for name, data in members:
            zi = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            zi.compress_type = comp
            zi.external_attr = 0o644 << 16
            with zf.open(zi, "w", force_zip64=bool(opts["zip64"])) as f:
                f.write(data)
    out = sink.getvalue()
    if opts.get("zip64_eocd"):
        out = _add_zip64_eocd(out)
    return out


def _flip_zip_member_data(data, index):
    """Flip a byte in the middle of member ${index}'s data inside the zip."""
    zf = zipfile.ZipFile(io.BytesIO(data))
    zi = zf.infolist()[index]
    off = zi.header_offset
    nlen, xlen = struct.unpack("<HH", data[off + 26:off + 30])
    pos = off + 30 + nlen + xlen + max(0, zi.compress_size // 2)
    b = bytearray(data)
    b[pos] ^= 0xFF
    return bytes(b)


def order_members(members, how, seed):
    """members: [(part number, name, data)]."""
    if how == "reverse":
        return list(reversed(members))
    if how == "lexical":
        return sorted(members, key=lambda m: m[1])
    if how == "shuffle":
        out = list(members)
        random.Random(seed).shuffle(out)
        return out
    return list(members)


# -------------------------------------------------------------- server ----

class State:
    def __init__(self, scenario, args):
        self.scenario = scenario
        self.dataset = Dataset(scenario)
        auth = scenario.get("auth") or {}
        self.key = args.api_key or auth.get("key") or DEFAULT_KEY
        self.secret = args.secret_key or auth.get("secret") or DEFAULT_SECRET
        self.zip_opts = dict(ZIP_DEFAULTS)
        self.zip_opts.update(scenario.get("zip") or {})
        bar = scenario.get("barrier") or {}
        self.barrier = args.barrier if args.barrier is not None \
            else int(bar.get("count", 0))
        self.barrier_timeout = (args.barrier_timeout_ms
                                if args.barrier_timeout_ms is not None
                                else int(bar.get("timeout_ms", 5000))) / 1000
        self.hold = (args.hold_ms if args.hold_ms is not None
                     else int(scenario.get("hold_ms", 0))) / 1000
        cap = scenario.get("concurrency_cap")
        self.cap_static = None if cap is None else int(cap)
        self.cap_schedule = sorted(
            (float(t), None if c is None else int(c))
            for t, c in scenario.get("cap_schedule") or [])
        ra = scenario.get("cap_retry_after")
        self.cap_headers = {} if ra is None else {"Retry-After": str(ra)}
        self.rules = []
        for r in scenario.get("rules") or []:
            t = r.get("times")
            self.rules.append({"match": r.get("match") or {},
                               "left": None if t is None else int(t),
                               "action": r.get("action") or {}})
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.n = 0
        self.inflight = 0
        self.max_inflight = 0
        self.generation = 0
        self.logged = 0
        # concurrency cap (all under self.lock)
        self.t_first_export = None   # monotonic time of the first one
        self.inflight_accepted = 0
        self.max_inflight_accepted = 0
        self.count_429 = 0
        self.count_cap = 0
        self.capped = False          # a cap refusal happened
        self.max_accepted_after_429 = 0
        self.max_inflight_after_429 = 0
        self.stop = threading.Event()
        self.log = open(args.request_log, "a", encoding="utf-8") \
            if args.request_log else None

    def cap_locked(self, now):
        """The concurrency cap at monotonic time ${now} (None: none)."""
        cap = self.cap_static
        if self.cap_schedule:
            el = 0.0 if self.t_first_export is None \
                else now - self.t_first_export
            for t, c in self.cap_schedule:
                if t <= el:
                    cap = c
        return cap

    def admit(self, entry):
        """The cap's verdict on an export request: True if accepted (the
        caller must call release() when it is answered), False if it must
        be answered 429 now."""
        with self.lock:
            now = time.monotonic()
            if self.t_first_export is None:
                self.t_first_export = now
            cap = self.cap_locked(now)
            entry["cap_at_start"] = cap
            if cap is not None and self.inflight_accepted >= cap:
                self.count_cap += 1
                self.count_429 += 1
                if not self.capped:
                    self.capped = True
                    self.max_accepted_after_429 = self.inflight_accepted
                    self.max_inflight_after_429 = self.inflight
                entry["inflight_accepted_at_start"] = self.inflight_accepted
                return False
            self.inflight_accepted += 1
            entry["inflight_accepted_at_start"] = self.inflight_accepted
            self.max_inflight_accepted = max(self.max_inflight_accepted,
                                             self.inflight_accepted)
            if self.capped:
                self.max_accepted_after_429 = max(
                    self.max_accepted_after_429, self.inflight_accepted)
            return True

    def release(self):
        with self.lock:
            self.inflight_accepted -= 1
            self.cond.notify_all()

    def status(self):
        with self.lock:
            return {"requests": self.n, "inflight": self.inflight,
                    "logged": self.logged,
                    "max_inflight": self.max_inflight,
                    "inflight_accepted": self.inflight_accepted,
                    "max_inflight_accepted": self.max_inflight_accepted,
                    "cap": self.cap_locked(time.monotonic()),
                    "count_429": self.count_429,
                    "count_cap": self.count_cap,
                    "max_inflight_accepted_after_first_429":
                        self.max_accepted_after_429,
                    "max_inflight_after_first_429":
                        self.max_inflight_after_429}

    def write_log(self, entry):
        with self.lock:
            if self.log:
                self.log.write(json.dumps(entry, sort_keys=True) + "\n")
                self.log.flush()
            self.logged += 1

    def pick_rule(self, n, first, last):
        """The first rule matching and not used up; consumes one use."""
        size = last - first + 1
        with self.lock:
            for i, r in enumerate(self.rules):
                if r["left"] is not None and r["left"] <= 0:
                    continue
                if not _rule_matches(r["match"], n, first, last, size):
                    continue
                if r["left"] is not None:
                    r["left"] -= 1
                return i, r["action"]
        return None, {}


def _rule_matches(m, n, first, last, size):
    if "n" in m:
        want = m["n"] if isinstance(m["n"], list) else [m["n"]]
        if n not in want:
            return False
    if "start" in m and parse_hour(m["start"]) != first:
        return False
    if "end" in m and parse_hour(m["end"]) != last:
        return False
    if "hours" in m and size != int(m["hours"]):
        return False
    if "min_hours" in m and size < int(m["min_hours"]):
        return False
    if "max_hours" in m and size > int(m["max_hours"]):
        return False
    if "contains" in m:
        hs = m["contains"] if isinstance(m["contains"], list) \
            else [m["contains"]]
        if not any(first <= parse_hour(x) <= last for x in hs):
            return False
    return True


class ClientGone(Exception):
    pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "export-api-standin/1"
    timeout = 60            # idle keep-alive connections do not live forever

    def log_message(self, fmt, *args):   # quiet
        pass

    # -- low-level output -------------------------------------------------
    def _send(self, b):
        try:
            self.wfile.write(b)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
                socket.timeout, OSError) as e:
            raise ClientGone(str(e))
        self._sent += len(b)

    def _headers(self, status, length, ctype, extra=None, chunked=False):
        self.send_response_only(status, REASONS.get(status))
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", ctype)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        for k, v in (extra or {}).items():
            self.send_header(k, str(v))
        buf = b"".join(self._headers_buffer)
        self._headers_buffer = []
        self._send(buf + b"\r\n")

    def _answer(self, status, body, ctype="text/plain; charset=utf-8",
                extra=None, chunked=False):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self._headers(status, len(body), ctype, extra, chunked)
        if chunked:
            for i in range(0, len(body), 65536):
                c = body[i:i + 65536]
                self._send(b"%x\r\n" % len(c) + c + b"\r\n")
            self._send(b"0\r\n\r\n")
        else:
            self._send(body)

    def _wait(self, seconds):
        """Wait up to ${seconds}; end early if the client hangs up or the
        server stops.  Returns True if the client is gone."""
        deadline = time.monotonic() + seconds
        sock = self.connection
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.server.state.stop.is_set():
                return False
            r, _, _ = select.select([sock], [], [], min(left, 0.05))
            if r:
                try:
                    if sock.recv(1, socket.MSG_PEEK) == b"":
                        return True
                except OSError:
                    return True
                # pipelined bytes: not a hang-up; keep waiting
                time.sleep(min(left, 0.05))

    def _gone(self):
        """True if the client has hung up (checked without waiting)."""
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            if r and self.connection.recv(1, socket.MSG_PEEK) == b"":
                return True
        except OSError:
            return True
        return False

    def _wait_until(self, due):
        """Wait until monotonic ${due} (at least check once); raise
        ClientGone if the client hangs up meanwhile."""
        left = due - time.monotonic()
        if (left > 0 and self._wait(left)) or self._gone():
            raise ClientGone("hang-up")

    def _reset(self):
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    # -- dispatch ----------------------------------------------------------
    def do_GET(self):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        self._sent = 0
        if url.path == "/_status":
            s = st.status()
            try:
                self._answer(200, json.dumps(s), "application/json")
            except ClientGone:
                self.close_connection = True
            return
        t_start = time.time()
        with st.lock:
            st.n += 1
            n = st.n
            st.inflight += 1
            at_start = st.inflight
            st.max_inflight = max(st.max_inflight, st.inflight)
            if st.capped:
                st.max_inflight_after_429 = max(st.max_inflight_after_429,
                                                st.inflight)
            if st.barrier and st.inflight >= st.barrier:
                st.generation += 1
            st.cond.notify_all()
        q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        entry = {"n": n, "path": url.path,
                 "start": (q.get("start") or [None])[0],
                 "end": (q.get("end") or [None])[0], "hours": None,
                 "t_start": t_start, "status": None, "action": None,
                 "rule": None, "auth_ok": False, "auth_user": None,
                 "inflight_at_start": at_start, "barrier_wait_ms": 0,
                 "client_gone": False, "inflight_accepted_at_start": None,
                 "cap_at_start": None}
        self._accepted = False
        try:
            self._export(st, url, q, entry)
        except ClientGone:
            entry["client_gone"] = True
            self.close_connection = True
        except Exception as e:          # a server bug: say so, loudly
            entry["action"] = "server_error: %r" % (e,)
            sys.stderr.write("export_api: %r\n" % (e,))
            self.close_connection = True
        finally:
            if self._accepted:
                self._accepted = False
                st.release()
            entry["bytes_sent"] = self._sent
            entry["t_end"] = time.time()
            with st.lock:
                st.inflight -= 1
                entry["max_inflight"] = st.max_inflight
                st.cond.notify_all()
            st.write_log(entry)

    def _barrier(self, st, entry):
        if not st.barrier:
            return
        t0 = time.monotonic()
        deadline = t0 + st.barrier_timeout
        with st.lock:
            gen = st.generation
            while st.inflight < st.barrier and st.generation == gen \
                    and not st.stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                st.cond.wait(left)
        entry["barrier_wait_ms"] = int((time.monotonic() - t0) * 1000)

    def _export(self, st, url, q, entry):
        if url.path != "/api/2/export":
            entry["action"] = "bad_path"
            entry["status"] = 404
            self._answer(404, "Not Found")
            return
        if not st.admit(entry):
            entry["action"], entry["status"] = "cap", 429
            self._answer(429, "Too many concurrent requests",
                         extra=st.cap_headers)
            return
        self._accepted = True
        self._barrier(st, entry)
        if st.hold > 0 and self._wait(st.hold):
            raise ClientGone("hang-up during hold")
        # auth
        ok, user = False, None
        h = self.headers.get("Authorization", "")
        if h[:6].lower() == "basic ":
            try:
                dec = base64.b64decode(h[6:].strip(), validate=True) \
                    .decode("utf-8")
                user, _, pw = dec.partition(":")
                ok = hmac.compare_digest(user.encode(), st.key.encode()) \
                    and hmac.compare_digest(pw.encode(), st.secret.encode())
            except (ValueError, UnicodeDecodeError):
                pass
        entry["auth_ok"], entry["auth_user"] = ok, user
        if not ok:
            entry["action"], entry["status"] = "auth", 403
            self._answer(403, "Invalid API key or secret key")
            return
        # parameters
        try:
            for p in ("start", "end"):
                if len(q.get(p, [])) != 1:
                    raise ValueError("exactly one '%s' parameter needed" % p)
            first = parse_hour(q["start"][0])
            last = parse_hour(q["end"][0])
            if last < first:
                raise ValueError("end is before start")
        except ValueError as e:
            entry["action"], entry["status"] = "bad_params", 422
            self._answer(422, "Invalid parameters: %s" % (e,))
            return
        entry["hours"] = last - first + 1
        if last - first + 1 > 365 * 24:
            entry["action"], entry["status"] = "range_over_365_days", 400
            self._answer(400, TOO_LARGE)
            return
        idx, act = st.pick_rule(entry["n"], first, last)
        entry["rule"] = idx
        self._act(st, act, first, last, entry)

    def _act(self, st, act, first, last, entry):
        kind = act.get("kind", "ok")
        if act.get("hold_ms"):
            if self._wait(float(act["hold_ms"]) / 1000):
                raise ClientGone("hang-up during the rule's hold")
        if kind == "raw":
            with open(act["body_file"], "rb") as f:
                body = f.read()
            code = int(act.get("status", 200))
            entry["action"], entry["status"] = "raw", code
            if code == 429:
                with st.lock:
                    st.count_429 += 1
            self._answer(code, body, act.get("content_type",
                                             "application/zip"),
                         extra=act.get("headers"),
                         chunked=bool(act.get("chunked")))
            return
        if "status" in act:
            code = int(act["status"])
            body = act.get("body")
            if body is None:
                body = {400: TOO_LARGE, 404: NOT_FOUND}.get(
                    code, "%d %s" % (code, REASONS.get(code, "Status")))
            entry["action"], entry["status"] = "status", code
            if code == 429:
                with st.lock:
                    st.count_429 += 1
            self._answer(code, body, act.get("content_type",
                                             "text/plain; charset=utf-8"),
                         extra=act.get("headers"))
            return
        if kind == "garbage":
            self._garbage(act, entry)
            return
        if kind == "reset" and act.get("after_fraction") is None:
            entry["action"] = "reset"
            self._reset()
            return
        if kind == "slow_first_byte":
            entry["action"] = "slow_first_byte"
            if self._wait(float(act.get("seconds", 2))):
                raise ClientGone("hang-up before the first byte")
        if kind == "not_zip":
            entry["action"], entry["status"] = "not_zip", 200
            self._answer(200, HTML_PAGE, "text/html; charset=utf-8")
            return

        opts = dict(st.zip_opts)
        opts.update(act.get("zip") or {})
        ds = st.dataset
        members = []
        for h in range(first, last + 1):
            for num, gz in ds.gz_parts(h, opts["trailing_newline"]):
                members.append((num, member_name(ds.project, h, num), gz))
        members = order_members(members, opts["member_order"],
                                "%d-%d" % (first, last))
        members = [(name, gz) for _, name, gz in members]
        if kind == "corrupt_member" and members:
            where = act.get("where", "gzip_crc")
            i = int(act.get("member", 0)) % len(members)
            name, gz = members[i]
            b = bytearray(gz)
            if where == "gzip_crc":
                b[len(b) - 8] ^= 0x01
            elif where == "deflate":
                b[10 + (len(b) - 18) // 2] ^= 0xFF
            members[i] = (name, bytes(b))
        if kind == "outside_member":
            off = int(act.get("offset_hours", 1))
            h = last + off if off > 0 else first + off
            lines = ['{"outside":true,"hour":"%s"}' % fmt_hour(h)]
            members.append((member_name(ds.project, h, 0),
                            gzip.compress(ds.part_bytes(lines), mtime=0)))
        if kind == "hostile_name":
            members.append((act.get("name", "../../x"),
                            gzip.compress(b'{"hostile":true}\n', mtime=0)))
        if not members:
            entry["action"], entry["status"] = "no_data", 404
            self._answer(404, NOT_FOUND)
            return
        body = build_zip(members, opts)
        if kind == "corrupt_member" and act.get("where") == "zip_crc":
            body = _flip_zip_member_data(body,
                                         int(act.get("member", 0))
                                         % len(members))
        entry["status"] = 200
        entry["action"] = kind if kind != "ok" else "data"
        if kind == "truncate":
            self._headers(200, len(body), "application/zip")
            self._send(body[:int(len(body) * float(act.get("fraction",
                                                           0.5)))])
            self.close_connection = True
            return
        if kind == "reset":
            self._headers(200, len(body), "application/zip")
            self._send(body[:int(len(body) * float(act["after_fraction"]))])
            self._reset()
            return
        if kind == "trickle":
            rate = float(act.get("bytes_per_s", 1))
            cut = min(len(body), int(act.get("after_bytes", 0)))
            step = max(1, int(rate / 10))
            self._headers(200, len(body), "application/zip")
            if cut:
                self._send(body[:cut])
            pos, t0 = cut, time.monotonic()
            while pos < len(body):
                # the bytes after ${cut} leave at ${rate} on average
                self._wait_until(t0 + (pos - cut + step) / rate)
                if st.stop.is_set():
                    self.close_connection = True
                    return
                self._send(body[pos:pos + step])
                pos += step
            return
        if kind == "slow_body":
            secs = float(act.get("seconds", 5))
            n = max(1, min(len(body), int(secs * 20)))
            self._headers(200, len(body), "application/zip")
            t0 = time.monotonic()
            for i in range(n):
                if i:
                    self._wait_until(t0 + secs * i / n)
                self._send(body[len(body) * i // n:
                                len(body) * (i + 1) // n])
            return
        if kind == "stall":
            self._headers(200, len(body), "application/zip")
            cut = int(len(body) * float(act.get("after_fraction", 0)))
            if cut:
                self._send(body[:cut])
            if self._wait(float(act.get("seconds", 30))):
                raise ClientGone("hang-up during the stall")
            self._send(body[cut:])
            return
        self._answer(200, body, "application/zip",
                     chunked=bool(opts["chunked"]))

    GARBAGE_HEAD = b"\0GARBAGE"

    def _garbage(self, act, entry):
        """200 "application/zip" whose ${act}["bytes"] bytes are not a
        zip, paced, until done or the client hangs up."""
        total = int(act.get("bytes", 1 << 20))
        rate = float(act.get("bytes_per_s", 2000000))
        chunk = max(1, int(act.get("chunk", 16384)))
        block = random.Random(total).randbytes(chunk)
        first = self.GARBAGE_HEAD + block[len(self.GARBAGE_HEAD):]
        entry["action"], entry["status"] = "garbage", 200
        self._headers(200, total, "application/zip", act.get("headers"))
        sent, t0 = 0, time.monotonic()
        while sent < total:
            k = min(chunk, total - sent)
            self._send((first if sent == 0 else block)[:k])
            sent += k
            if sent >= total:
                break
            if rate > 0:
                self._wait_until(t0 + sent / rate)
            elif self._gone():
                raise ClientGone("hang-up")
            if self.server.state.stop.is_set():
                self.close_connection = True
                return


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        # Client hang-ups are part of the tests; anything else is reported.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, ClientGone)):
            return
        sys.stderr.write("export_api: error handling a request: %r\n"
                         % (exc,))


def write_port_file(path, port):
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, ".%s.tmp-%d" % (os.path.basename(path),
                                          os.getpid()))
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port-file")
    ap.add_argument("--scenario")
    ap.add_argument("--request-log")
    ap.add_argument("--api-key")
    ap.add_argument("--secret-key")
    ap.add_argument("--barrier", type=int)
    ap.add_argument("--barrier-timeout-ms", type=int)
    ap.add_argument("--hold-ms", type=int)
    ap.add_argument("--generate", nargs=2, metavar=("START", "END"))
    ap.add_argument("--events-per-hour", type=int, default=50)
    ap.add_argument("--parts-per-hour", type=int, default=2)
    ap.add_argument("--empty-every", type=int, default=7)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--demo", action="store_true",
                    help="serve 3 days (72 hours ending an hour ago) of "
                    "~200 events/hour, every 7th hour empty")
    args = ap.parse_args(argv)

    scenario = {}
    if args.scenario:
        with open(args.scenario, encoding="utf-8") as f:
            scenario = json.load(f)
    if args.generate:
        scenario["generate"] = {"start": args.generate[0],
                                "end": args.generate[1],
                                "events_per_hour": args.events_per_hour,
                                "parts_per_hour": args.parts_per_hour,
                                "empty_every": args.empty_every,
                                "seed": args.seed}
    if args.demo:
        end = now_hour() - 1
        scenario.setdefault("generate", {
            "start": fmt_hour(end - 71), "end": fmt_hour(end),
            "events_per_hour": 200, "parts_per_hour": 2,
            "empty_every": 7, "seed": 1})
    if not args.port_file and not args.demo:
        ap.error("--port-file is required (or --demo)")

    state = State(scenario, args)
    srv = Server(("127.0.0.1", 0), Handler)
    srv.state = state
    port = srv.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    if args.demo:
        g = scenario["generate"]
        print(port, flush=True)
        sys.stderr.write(
            "demo Export API on http://127.0.0.1:%d/api/2/export, hours "
            "%s..%s\n  AMP_API_KEY=%s AMP_SECRET_KEY=%s "
            "AMP_API_URL=http://127.0.0.1:%d/api/2/export\n"
            % (port, g["start"], g["end"], state.key, state.secret, port))
        sys.stderr.flush()

    def on_signal(signum, frame):
        state.stop.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval":
                                                           0.05},
                         daemon=True)
    t.start()
    while not state.stop.wait(0.5):
        pass
    srv.shutdown()
    srv.server_close()
    with state.lock:
        if state.log:
            state.log.close()
            state.log = None
    return 0


if __name__ == "__main__":
    sys.exit(main())
