"""Self-tests of the Export API stand-in (no amp2s3 needed)."""

import base64
import gzip
import http.client
import io
import json
import re
import socket
import struct
import subprocess
import threading
import time
import zipfile
import zlib

from harness import (API_KEY, BASE, BASIC, F, PY, SECRET, SERVER,
                     ServerCase, api, gen_scenario, poll)

NAME_RE = re.compile(r"^(\d+)/(\d+)_(\d{4}-\d{2}-\d{2})_(\d{1,2})#(\d+)"
                     r"\.json\.gz$")


class ServerTest(ServerCase):

    def get(self, srv, first, last, auth=BASIC, timeout=10, path=None):
        c = http.client.HTTPConnection("127.0.0.1", srv.port,
                                       timeout=timeout)
        self.addCleanup(c.close)
        hdr = {"Authorization": "Basic " + auth} if auth else {}
        c.request("GET", path or "/api/2/export?start=%s&end=%s"
                  % (F(first), F(last)), headers=hdr)
        r = c.getresponse()
        return r, r.read()

    def unzip(self, body):
        """{hour: bytes} per the member names, parts in numeric order."""
        zf = zipfile.ZipFile(io.BytesIO(body))
        self.assertIsNone(zf.testzip())
        parts = {}
        for zi in zf.infolist():
            m = NAME_RE.match(zi.filename)
            self.assertIsNotNone(m, zi.filename)
            self.assertEqual(m.group(1), m.group(2))
            h = api.parse_hour(m.group(3).replace("-", "") + "T%02d"
                               % int(m.group(4)))
            self.assertEqual(str(int(m.group(4))), m.group(4),
                             "hour zero-padded: " + zi.filename)
            raw = zf.read(zi)
            self.assertEqual(raw[:2], b"\x1f\x8b", "not a gzip member")
            parts.setdefault(h, []).append((int(m.group(5)),
                                            gzip.decompress(raw)))
        return {h: b"".join(d for _, d in sorted(p))
                for h, p in parts.items()}

    @staticmethod
    def local_headers(body):
        """[(offset, flags, extra bytes)] of every local file header, found
        through the central directory."""
        zf = zipfile.ZipFile(io.BytesIO(body))
        out = []
        for zi in zf.infolist():
            o = zi.header_offset
            sig, _, flags = struct.unpack("<IHH", body[o:o + 8])
            assert sig == 0x04034b50
            nlen, xlen = struct.unpack("<HH", body[o + 26:o + 30])
            out.append((o, flags, body[o + 30 + nlen:o + 30 + nlen + xlen]))
        return out

    @staticmethod
    def extra_ids(extra):
        ids, i = [], 0
        while i + 4 <= len(extra):
            hid, ln = struct.unpack("<HH", extra[i:i + 4])
            ids.append(hid)
            i += 4 + ln
        return ids

    # ------------------------------------------------------------------
    def test_zip_is_valid_and_holds_the_dataset(self):
        srv = self.server(gen_scenario(BASE, 6, events=30, parts=3,
                                       empty_every=0))
        r, body = self.get(srv, BASE + 1, BASE + 3)
        self.assertEqual(r.status, 200)
        self.assertEqual(int(r.getheader("Content-Length")), len(body))
        self.assertTrue(zipfile.is_zipfile(io.BytesIO(body)))
        got = self.unzip(body)
        self.assertEqual(sorted(got), [BASE + 1, BASE + 2, BASE + 3],
                         "only hours of the inclusive window")
        for h, data in got.items():
            self.assertEqual(data, srv.dataset.expected(h))
            lines = data.decode().splitlines()
            self.assertEqual(len(lines), 30)
            for ln in lines:
                ev = json.loads(ln)
                for k in ("uuid", "$insert_id", "event_type", "event_time",
                          "server_upload_time", "user_id", "device_id",
                          "amplitude_id", "event_properties"):
                    self.assertIn(k, ev)
                self.assertRegex(ev["server_upload_time"],
                                 r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")
                self.assertTrue(ev["server_upload_time"].startswith(
                    time.strftime("%Y-%m-%d %H", time.gmtime(h * 3600))))
        names = zipfile.ZipFile(io.BytesIO(body)).namelist()
        self.assertIn("187520/187520_2024-01-01_1#0.json.gz", names)
        self.assertEqual(len(names), 9)

    def test_generator_is_deterministic_and_has_empty_hours(self):
        g = {"start": F(BASE), "end": F(BASE + 47), "events_per_hour": 5,
             "parts_per_hour": 2, "empty_every": 7, "seed": 3}
        a, b = api.Dataset({"generate": g}), api.Dataset({"generate": g})
        empty = [h for h in range(BASE, BASE + 48) if not a.parts(h)]
        self.assertEqual(empty, [h for h in range(BASE, BASE + 48)
                                 if h % 7 == 0])
        self.assertTrue(empty)
        for h in range(BASE, BASE + 48):
            self.assertEqual(a.expected(h), b.expected(h))
        c = api.Dataset({"generate": dict(g, seed=4)})
        self.assertNotEqual(a.expected(BASE + 1), c.expected(BASE + 1))

    def test_stored_and_deflated(self):
        for comp, want in (("stored", zipfile.ZIP_STORED),
                           ("deflated", zipfile.ZIP_DEFLATED)):
            srv = self.server(gen_scenario(BASE, 2, zip={"compression":
                                                         comp}),
                              name="srv-" + comp)
            r, body = self.get(srv, BASE, BASE + 1)
            zf = zipfile.ZipFile(io.BytesIO(body))
            self.assertEqual({zi.compress_type for zi in zf.infolist()},
                             {want})
            got = self.unzip(body)
            self.assertEqual(got[BASE], srv.dataset.expected(BASE))

    def test_data_descriptor_bit_is_set_in_the_bytes(self):
        srv = self.server(gen_scenario(BASE, 2, zip={"data_descriptor":
                                                     True}))
        r, body = self.get(srv, BASE, BASE + 1)
        hdrs = self.local_headers(body)
        self.assertEqual(len(hdrs), 4)
        for off, flags, _ in hdrs:
            self.assertTrue(flags & 0x08, "bit 3 not set at %d" % off)
            # sizes and CRC in the local header are zero
            crc, csize, usize = struct.unpack("<III",
                                              body[off + 14:off + 26])
            self.assertEqual((crc, csize, usize), (0, 0, 0))
        self.assertIn(struct.pack("<I", 0x08074b50), body)
        self.assertEqual(self.unzip(body)[BASE],
                         srv.dataset.expected(BASE))
        # and the default is without descriptors
        srv2 = self.server(gen_scenario(BASE, 1), name="srv2")
        r, body2 = self.get(srv2, BASE, BASE)
        for _, flags, _ in self.local_headers(body2):
            self.assertFalse(flags & 0x08)

    def test_zip64_extra_fields_and_eocd(self):
        srv = self.server(gen_scenario(BASE, 2, zip={"zip64": True,
                                                     "zip64_eocd": True}))
        r, body = self.get(srv, BASE, BASE + 1)
        for _, _, extra in self.local_headers(body):
            self.assertIn(0x0001, self.extra_ids(extra))
        self.assertIn(b"PK\x06\x06", body)
        self.assertIn(b"PK\x06\x07", body)
        self.assertEqual(body[-22:-18], b"PK\x05\x06")
        self.assertEqual(struct.unpack("<I", body[-6:-2])[0], 0xFFFFFFFF)
        self.assertEqual(self.unzip(body)[BASE + 1],
                         srv.dataset.expected(BASE + 1))
        # zip64 + data descriptors together
        srv2 = self.server(gen_scenario(BASE, 1, zip={
            "zip64": True, "data_descriptor": True,
            "compression": "stored"}), name="srv2")
        r, body2 = self.get(srv2, BASE, BASE)
        for _, flags, extra in self.local_headers(body2):
            self.assertTrue(flags & 0x08)
            self.assertIn(0x0001, self.extra_ids(extra))
        self.assertEqual(self.unzip(body2)[BASE],
                         srv2.dataset.expected(BASE))

    def test_part_order_numeric_and_member_order(self):
        parts = [["{\"part\":%d}" % i] for i in range(12)]
        srv = self.server({"hours": {F(BASE): parts},
                           "zip": {"member_order": "lexical"}})
        r, body = self.get(srv, BASE, BASE)
        names = zipfile.ZipFile(io.BytesIO(body)).namelist()
        self.assertEqual(names[:3], ["187520/187520_2024-01-01_0#0.json.gz",
                                     "187520/187520_2024-01-01_0#1.json.gz",
                                     "187520/187520_2024-01-01_0#10.json.gz"])
        self.assertEqual(srv.dataset.expected(BASE),
                         b"".join(b"{\"part\":%d}\n" % i for i in range(12)))

    def test_trailing_newline_option(self):
        srv = self.server({"hours": {F(BASE): [["{\"a\":1}", "{\"b\":2}"]]},
                           "zip": {"trailing_newline": False}})
        r, body = self.get(srv, BASE, BASE)
        zf = zipfile.ZipFile(io.BytesIO(body))
        self.assertEqual(gzip.decompress(zf.read(zf.namelist()[0])),
                         b"{\"a\":1}\n{\"b\":2}")
        self.assertEqual(srv.dataset.expected(BASE),
                         b"{\"a\":1}\n{\"b\":2}\n")

    def test_404_when_no_data_in_range(self):
        srv = self.server(gen_scenario(BASE, 2))
        r, body = self.get(srv, BASE + 5, BASE + 9)
        self.assertEqual(r.status, 404)
        self.assertEqual(body, b"Raw data files were not found.")
        srv2 = self.server({"hours": {F(BASE): []}}, name="srv2")
        r, body = self.get(srv2, BASE, BASE)
        self.assertEqual(r.status, 404)

    def test_basic_auth(self):
        srv = self.server(gen_scenario(BASE, 1))
        bad = base64.b64encode(("%s:nope" % API_KEY).encode()).decode()
        bad2 = base64.b64encode(("nope:%s" % SECRET).encode()).decode()
        for auth in (None, bad, bad2, "!!!notbase64"):
            r, body = self.get(srv, BASE, BASE, auth=auth)
            self.assertEqual(r.status, 403, auth)
        r, _ = self.get(srv, BASE, BASE)
        self.assertEqual(r.status, 200)
        log = srv.requests()
        self.assertEqual([e["auth_ok"] for e in log],
                         [False, False, False, False, True])
        self.assertEqual(log[-1]["auth_user"], API_KEY)

    def test_bad_parameters_422(self):
        srv = self.server(gen_scenario(BASE, 1))
        for q in ("start=2024010100&end=20240101T00",
                  "start=20240101T24&end=20240101T24",
                  "start=20240231T00&end=20240231T01",
                  "start=20240101T05&end=20240101T04",
                  "end=20240101T04"):
            r, body = self.get(srv, 0, 0, path="/api/2/export?" + q)
            self.assertEqual(r.status, 422, q)
        r, body = self.get(srv, BASE, BASE + 366 * 24)
        self.assertEqual(r.status, 400)
        self.assertIn(b"too large", body)

    def test_rules_times_match_and_order(self):
        sc = gen_scenario(BASE, 4, rules=[
            {"match": {"min_hours": 2}, "times": 1,
             "action": {"status": 504}},
            {"match": {"n": [2, 3]}, "action": {"status": 500}},
            {"match": {"contains": F(BASE + 3)}, "times": 1,
             "action": {"status": 429, "headers": {"Retry-After": "1"}}},
        ])
        srv = self.server(sc)
        got = []
        for a, b in ((BASE, BASE + 3), (BASE, BASE + 1), (BASE, BASE),
                     (BASE, BASE + 1), (BASE + 3, BASE + 3),
                     (BASE + 3, BASE + 3)):
            r, body = self.get(srv, a, b)
            got.append((r.status, r.getheader("Retry-After")))
        self.assertEqual(got, [(504, None), (500, None), (500, None),
                               (200, None), (429, "1"), (200, None)])
        log = srv.requests()
        self.assertEqual([e["rule"] for e in log], [0, 1, 1, None, 2, None])
        self.assertEqual([e["status"] for e in log],
                         [504, 500, 500, 200, 429, 200])

    def test_not_zip(self):
        srv = self.server(gen_scenario(BASE, 1, rules=[
            {"action": {"kind": "not_zip"}}]))
        r, body = self.get(srv, BASE, BASE)
        self.assertEqual(r.status, 200)
        self.assertFalse(zipfile.is_zipfile(io.BytesIO(body)))
        self.assertIn(b"<html>", body)

    def test_truncated_body(self):
        srv = self.server(gen_scenario(BASE, 1, events=200, rules=[
            {"action": {"kind": "truncate", "fraction": 0.5}}]))
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        self.addCleanup(c.close)
        c.request("GET", "/api/2/export?start=%s&end=%s" % (F(BASE),
                                                            F(BASE)),
                  headers={"Authorization": "Basic " + BASIC})
        r = c.getresponse()
        n = int(r.getheader("Content-Length"))
        with self.assertRaises(http.client.IncompleteRead) as cm:
            r.read()
        self.assertEqual(len(cm.exception.partial), n // 2)

    def test_connection_reset(self):
        srv = self.server(gen_scenario(BASE, 1, rules=[
            {"action": {"kind": "reset"}}]))
        with self.assertRaises((ConnectionResetError,
                                http.client.RemoteDisconnected)):
            self.get(srv, BASE, BASE)
        self.assertEqual(srv.requests()[0]["action"], "reset")

    def test_stall_ends_when_client_hangs_up(self):
        srv = self.server(gen_scenario(BASE, 1, rules=[
            {"times": 1, "action": {"kind": "stall", "seconds": 30}}]))
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(("GET /api/2/export?start=%s&end=%s HTTP/1.1\r\nHost: x"
                   "\r\nAuthorization: Basic %s\r\n\r\n"
                   % (F(BASE), F(BASE), BASIC)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            self.assertTrue(chunk)
            head += chunk
        self.assertTrue(head.startswith(b"HTTP/1.1 200"))
        self.assertEqual(head.split(b"\r\n\r\n", 1)[1], b"")
        s.settimeout(0.3)
        with self.assertRaises(socket.timeout):
            s.recv(1)                      # nothing comes
        s.close()
        e = srv.requests()[0]
        self.assertTrue(e["client_gone"])
        self.assertLess(e["t_end"] - e["t_start"], 10)
        r, body = self.get(srv, BASE, BASE)   # times: 1 -> normal again
        self.assertEqual(r.status, 200)

    def test_slow_first_byte(self):
        srv = self.server(gen_scenario(BASE, 1, rules=[
            {"action": {"kind": "slow_first_byte", "seconds": 0.5}}]))
        t0 = time.monotonic()
        r, body = self.get(srv, BASE, BASE)
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)
        self.assertEqual(self.unzip(body)[BASE], srv.dataset.expected(BASE))

    def test_corrupt_members(self):
        srv = self.server(gen_scenario(BASE, 1, parts=1, rules=[
            {"match": {"n": 1},
             "action": {"kind": "corrupt_member", "where": "gzip_crc"}},
            {"match": {"n": 2},
             "action": {"kind": "corrupt_member", "where": "zip_crc",
                        "zip": {"compression": "stored"}}},
            {"match": {"n": 3},
             "action": {"kind": "corrupt_member", "where": "deflate"}}]))
        r, body = self.get(srv, BASE, BASE)
        zf = zipfile.ZipFile(io.BytesIO(body))
        self.assertIsNone(zf.testzip(), "zip level must be intact")
        with self.assertRaises((gzip.BadGzipFile, zlib.error, EOFError)):
            gzip.decompress(zf.read(zf.namelist()[0]))
        r, body = self.get(srv, BASE, BASE)
        zf = zipfile.ZipFile(io.BytesIO(body))
        self.assertEqual(zf.testzip(), zf.namelist()[0])
        r, body = self.get(srv, BASE, BASE)
        zf = zipfile.ZipFile(io.BytesIO(body))
        with self.assertRaises((gzip.BadGzipFile, zlib.error, EOFError)):
            gzip.decompress(zf.read(zf.namelist()[0]))

    def test_outside_and_hostile_members(self):
        srv = self.server(gen_scenario(BASE, 3, rules=[
            {"match": {"n": 1}, "action": {"kind": "outside_member"}},
            {"match": {"n": 2}, "action": {"kind": "hostile_name",
                                           "name": "../../x"}}]))
        r, body = self.get(srv, BASE, BASE)
        names = zipfile.ZipFile(io.BytesIO(body)).namelist()
        self.assertIn("187520/187520_2024-01-01_1#0.json.gz", names)
        r, body = self.get(srv, BASE, BASE)
        names = zipfile.ZipFile(io.BytesIO(body)).namelist()
        self.assertIn("../../x", names)

    def test_chunked(self):
        srv = self.server(gen_scenario(BASE, 2, events=300,
                                       zip={"chunked": True}))
        r, body = self.get(srv, BASE, BASE + 1)
        self.assertEqual(r.getheader("Transfer-Encoding"), "chunked")
        self.assertIsNone(r.getheader("Content-Length"))
        self.assertEqual(self.unzip(body)[BASE + 1],
                         srv.dataset.expected(BASE + 1))

    def test_barrier_holds_until_k_in_flight(self):
        srv = self.server(gen_scenario(BASE, 3),
                          args=["--barrier", "3",
                                "--barrier-timeout-ms", "8000"])
        results = []

        def one(h):
            r, _ = self.get(srv, h, h, timeout=20)
            results.append(r.status)
        ts = [threading.Thread(target=one, args=(BASE + i,))
              for i in range(3)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(20)
        self.assertEqual(results, [200, 200, 200])
        log = srv.requests()
        self.assertEqual(max(e["inflight_at_start"] for e in log), 3)
        self.assertTrue(all(e["barrier_wait_ms"] < 7000 for e in log))
        # fewer than K: released by the timeout, answered anyway
        srv2 = self.server(gen_scenario(BASE, 1), name="srv2",
                           args=["--barrier", "3",
                                 "--barrier-timeout-ms", "300"])
        t0 = time.monotonic()
        r, _ = self.get(srv2, BASE, BASE)
        self.assertEqual(r.status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.25)

    def test_request_log_fields(self):
        srv = self.server(gen_scenario(BASE, 2))
        self.get(srv, BASE, BASE + 1)
        e = srv.requests()[0]
        for k in ("n", "start", "end", "t_start", "t_end", "status",
                  "action", "auth_ok", "inflight_at_start", "hours"):
            self.assertIn(k, e)
        self.assertEqual((e["n"], e["start"], e["end"], e["hours"],
                          e["status"], e["action"]),
                         (1, F(BASE), F(BASE + 1), 2, 200, "data"))
        self.assertLessEqual(e["t_start"], e["t_end"])

    def test_demo_mode_prints_port(self):
        p = subprocess.Popen([PY, str(SERVER), "--demo"],
                             stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        try:
            line = p.stdout.readline().decode().strip()
            port = int(line)
            now = api.now_hour()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/api/2/export?start=%s&end=%s"
                      % (F(now - 30), F(now - 26)),
                      headers={"Authorization": "Basic " + base64.b64encode(
                          b"test-api-key:test-secret-key").decode()})
            r = c.getresponse()
            body = r.read()
            c.close()
            self.assertEqual(r.status, 200)
            self.assertTrue(zipfile.is_zipfile(io.BytesIO(body)))
        finally:
            p.terminate()
            p.wait(5)
            p.stdout.close()

    def test_port_file_is_atomic_and_sigterm_stops(self):
        srv = self.server({})
        self.assertRegex(srv.port_file.read_text(), r"^\d+\n$")
        self.assertEqual(srv.status()["requests"], 0)
        srv.proc.terminate()
        self.assertEqual(srv.proc.wait(5), 0)
        poll(lambda: srv.proc.poll() is not None, 5, "exit")
