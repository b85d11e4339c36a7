"""Self-tests of the Export API stand-in's concurrency cap, slow and raw
answers, garbage bodies and 404 variants (no amp2s3 needed)."""

import gzip
import http.client
import io
import json
import socket
import time
import zipfile

from harness import BASE, BASIC, F, ServerCase, api, gen_scenario, poll


def request_bytes(first, last, path=None):
    target = path or "/api/2/export?start=%s&end=%s" % (F(first), F(last))
    return ("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\n\r\n"
            % (target, BASIC)).encode()


class Knobs(ServerCase):

    def get(self, srv, first, last, timeout=10, path=None):
        c = http.client.HTTPConnection("127.0.0.1", srv.port,
                                       timeout=timeout)
        self.addCleanup(c.close)
        c.request("GET", path or "/api/2/export?start=%s&end=%s"
                  % (F(first), F(last)),
                  headers={"Authorization": "Basic " + BASIC})
        r = c.getresponse()
        return r, r.read()

    def open_request(self, srv, first, last):
        """A raw connection that sent one export request (not read)."""
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(request_bytes(first, last))
        return s

    @staticmethod
    def read_head(s):
        """(status line, headers dict, body bytes read so far)."""
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                raise AssertionError("connection closed in the headers")
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return lines[0], hdrs, rest

    # -- concurrency cap ----------------------------------------------
    def test_cap_refuses_beyond_n_in_flight_at_once(self):
        srv = self.server(gen_scenario(BASE, 4, concurrency_cap=2,
                                       cap_retry_after="1"),
                          args=["--hold-ms", "60000"])
        held = [self.open_request(srv, BASE + i, BASE + i) for i in range(2)]
        poll(lambda: srv.status()["inflight_accepted"] == 2, 10,
             "two accepted requests in flight")
        st = srv.status()
        self.assertEqual((st["cap"], st["count_429"],
                          st["max_inflight_accepted_after_first_429"]),
                         (2, 0, 0))
        t0 = time.monotonic()
        r, body = self.get(srv, BASE + 2, BASE + 2)
        self.assertLess(time.monotonic() - t0, 2, "not refused at once")
        self.assertEqual(r.status, 429)
        self.assertEqual(r.getheader("Retry-After"), "1")
        st = srv.status()
        self.assertEqual((st["count_429"], st["count_cap"],
                          st["max_inflight_accepted"],
                          st["max_inflight_accepted_after_first_429"],
                          st["inflight_accepted"]), (1, 1, 2, 2, 2))
        self.assertEqual(st["max_inflight_after_first_429"], 3)
        for s in held:
            s.close()
        log = srv.requests()
        self.assertEqual(len(log), 3)
        by_action = {}
        for e in log:
            by_action.setdefault(e["action"], []).append(e)
        self.assertEqual(len(by_action["cap"]), 1)
        cap = by_action["cap"][0]
        self.assertEqual((cap["status"], cap["inflight_accepted_at_start"],
                          cap["cap_at_start"]), (429, 2, 2))
        held_log = [e for e in log if e["action"] != "cap"]
        self.assertEqual(sorted(e["inflight_accepted_at_start"]
                                for e in held_log), [1, 2])
        self.assertTrue(all(e["client_gone"] for e in held_log))
        # once they are gone, requests are accepted again
        self.assertEqual(srv.status()["inflight_accepted"], 0)
        srv2 = self.server(gen_scenario(BASE, 4, concurrency_cap=2),
                           name="srv2")
        r, body = self.get(srv2, BASE, BASE)
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.getheader("Retry-After"))

    def test_cap_schedule_changes_the_cap(self):
        srv = self.server(gen_scenario(BASE, 4, cap_schedule=[[0, 1],
                                                              [2.0, 3]]),
                          args=["--hold-ms", "60000"])
        self.assertEqual(srv.status()["cap"], 1)
        first = self.open_request(srv, BASE, BASE)
        poll(lambda: srv.status()["inflight_accepted"] == 1, 10,
             "the first request in flight")
        r, _ = self.get(srv, BASE + 1, BASE + 1)
        self.assertEqual(r.status, 429, "cap 1 in the first phase")
        self.assertIsNone(r.getheader("Retry-After"))
        poll(lambda: srv.status()["cap"] == 3, 10, "the second phase")
        more = [self.open_request(srv, BASE + i, BASE + i) for i in (2, 3)]
        poll(lambda: srv.status()["inflight_accepted"] == 3, 10,
             "three accepted requests in flight")
        r, _ = self.get(srv, BASE + 1, BASE + 1)
        self.assertEqual(r.status, 429)
        st = srv.status()
        self.assertEqual((st["count_429"], st["max_inflight_accepted"],
                          st["max_inflight_accepted_after_first_429"]),
                         (2, 3, 3))
        for s in [first] + more:
            s.close()
        caps = sorted((e["n"], e["cap_at_start"]) for e in srv.requests())
        self.assertEqual([c for _, c in caps], [1, 1, 3, 3, 3])

    # -- slow answers -------------------------------------------------
    def test_trickle_sends_at_the_rate_and_ends_on_hang_up(self):
        srv = self.server(gen_scenario(BASE, 1, events=50, rules=[
            {"action": {"kind": "trickle", "bytes_per_s": 20,
                        "after_bytes": 10}}]))
        s = self.open_request(srv, BASE, BASE)
        status, hdrs, got = self.read_head(s)
        self.assertIn(" 200 ", status)
        total = int(hdrs["content-length"])
        self.assertGreater(total, 1000)
        deadline = time.monotonic() + 1.0
        s.settimeout(0.1)
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                continue
            self.assertTrue(chunk, "closed during the trickle")
            got += chunk
        # 10 at once, then 20 bytes/s: about 30 after one second
        self.assertGreaterEqual(len(got), 10 + 10)
        self.assertLessEqual(len(got), 10 + 45)
        s.close()
        e = srv.requests()[0]
        self.assertEqual(e["action"], "trickle")
        self.assertTrue(e["client_gone"])
        self.assertLess(e["bytes_sent"], total)

    def test_slow_body_spreads_the_whole_answer(self):
        srv = self.server(gen_scenario(BASE, 2, events=200, rules=[
            {"action": {"kind": "slow_body", "seconds": 1.0}}]))
        t0 = time.monotonic()
        s = self.open_request(srv, BASE, BASE + 1)
        status, hdrs, got = self.read_head(s)
        while not got:
            got += s.recv(65536)
        t_first = time.monotonic() - t0
        total = int(hdrs["content-length"])
        while len(got) < total:
            chunk = s.recv(65536)
            self.assertTrue(chunk)
            got += chunk
        t_all = time.monotonic() - t0
        self.assertLess(t_first, 0.5, "the first bytes came late")
        self.assertGreaterEqual(t_all, 0.85, "the body was not spread")
        zf = zipfile.ZipFile(io.BytesIO(got))
        self.assertIsNone(zf.testzip())
        self.assertEqual(srv.requests()[0]["action"], "slow_body")

    # -- exact and garbage bodies --------------------------------------
    def test_raw_body_file_exact(self):
        body = b"PK\x03\x04 not really" + bytes(range(256))
        path = self.tmp / "raw.bin"
        path.write_bytes(body)
        srv = self.server({"rules": [
            {"match": {"n": 1}, "action": {"kind": "raw",
                                           "body_file": str(path)}},
            {"match": {"n": 2}, "action": {"kind": "raw",
                                           "body_file": str(path),
                                           "status": 503,
                                           "content_type": "text/x-raw"}}]})
        r, got = self.get(srv, BASE, BASE)
        self.assertEqual((r.status, r.getheader("Content-Type"), got),
                         (200, "application/zip", body))
        r, got = self.get(srv, BASE, BASE)
        self.assertEqual((r.status, r.getheader("Content-Type"), got),
                         (503, "text/x-raw", body))
        self.assertEqual([e["action"] for e in srv.requests()],
                         ["raw", "raw"])

    def test_garbage_is_not_a_zip_and_stops_when_the_client_goes(self):
        srv = self.server({"rules": [
            {"match": {"n": 1}, "action": {"kind": "garbage",
                                           "bytes": 300000,
                                           "bytes_per_s": 0}},
            {"match": {"n": 2}, "action": {"kind": "garbage",
                                           "bytes": 40000000}}]})
        r, got = self.get(srv, BASE, BASE)
        self.assertEqual((r.status, r.getheader("Content-Type"), len(got)),
                         (200, "application/zip", 300000))
        self.assertTrue(got.startswith(b"\0GARBAGE"))
        self.assertFalse(zipfile.is_zipfile(io.BytesIO(got)))
        s = self.open_request(srv, BASE, BASE)
        status, hdrs, first = self.read_head(s)
        self.assertEqual(hdrs["content-length"], "40000000")
        while len(first) < 16:
            first += s.recv(4096)
        s.close()
        log = srv.requests()
        self.assertEqual(log[0]["client_gone"], False)
        self.assertTrue(log[1]["client_gone"])
        self.assertLess(log[1]["bytes_sent"], 1 << 20,
                        "kept sending after the hang-up")

    # -- 404 variants and a hold on one rule ----------------------------
    def test_404_variants(self):
        html = "<html><body><h1>404 Not Found</h1>nginx</body></html>"
        srv = self.server(gen_scenario(BASE, 2, rules=[
            {"match": {"n": 1}, "action": {"status": 404, "body": html,
                                           "content_type": "text/html"}},
            {"match": {"n": 2}, "action": {"status": 404}}]))
        r, body = self.get(srv, BASE, BASE)
        self.assertEqual((r.status, body.decode(),
                          r.getheader("Content-Type")),
                         (404, html, "text/html"))
        r, body = self.get(srv, BASE, BASE)
        self.assertEqual((r.status, body.decode()), (404, api.NOT_FOUND))
        r, body = self.get(srv, BASE, BASE, path="/wrong/path?start=%s&end=%s"
                           % (F(BASE), F(BASE)))
        self.assertEqual((r.status, body.decode()), (404, "Not Found"))
        self.assertNotEqual(body.decode(), api.NOT_FOUND)
        self.assertEqual([(e["status"], e["action"]) for e in
                          srv.requests()],
                         [(404, "status"), (404, "status"),
                          (404, "bad_path")])

    def test_hold_ms_on_one_rule(self):
        srv = self.server(gen_scenario(BASE, 2, rules=[
            {"match": {"n": 1}, "action": {"kind": "ok", "hold_ms": 600}}]))
        t0 = time.monotonic()
        r, _ = self.get(srv, BASE, BASE)
        self.assertEqual(r.status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.55)
        t0 = time.monotonic()
        r, _ = self.get(srv, BASE, BASE)
        self.assertLess(time.monotonic() - t0, 0.5)

    # -- a compressible hour -------------------------------------------
    def test_repeat_part_with_gzip_level(self):
        line = {"event_type": "bomb", "n": 1}
        srv = self.server({"hours": {F(BASE): [
            {"part": 0, "repeat": line, "count": 200000,
             "gzip_level": 9}]}})
        r, body = self.get(srv, BASE, BASE)
        self.assertEqual(r.status, 200)
        zf = zipfile.ZipFile(io.BytesIO(body))
        raw = zf.read(zf.namelist()[0])
        want = (json.dumps(line, separators=(",", ":")) + "\n").encode() \
            * 200000
        self.assertEqual(gzip.decompress(raw), want)
        self.assertEqual(raw, gzip.compress(want, compresslevel=9, mtime=0))
        self.assertEqual(srv.dataset.expected(BASE), want)


if __name__ == "__main__":
    import unittest
    unittest.main()
