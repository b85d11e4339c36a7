"""Output formats and layout: --gzip (validated and --no-validate
pass-through), --key-template (folder store and S3), Content-Type.

The export server gzips every part deterministically (mtime 0, level 6),
so the test recomputes the exact gzip members it served
(Dataset.gz_parts) and can tell a pass-through (the file is the members,
byte for byte) from a re-compression.
"""
import gzip
import os
import urllib.parse

from harness import BASE, F, FetchCase, api, gen_scenario
from s3harness import PREFIX, S3Case

HIVE = "{prefix}dt={date}/hour={hour}/part.jsonl"


def gz_name(h):
    return api.hour_file_name(h) + ".gz"


def hive_key(h, ext=".jsonl", prefix=PREFIX):
    t = api.hour_file_name(h)          # YYYY-MM-DD_HH.jsonl
    return "%sdt=%s/hour=%s/part%s" % (prefix, t[:10], t[11:13], ext)


def served_members(srv, h, trailing_newline=True):
    """The gzip members the server sends for ${h} that hold data, in part
    order, concatenated."""
    return b"".join(gz for _, gz in srv.dataset.gz_parts(h, trailing_newline)
                    if gzip.decompress(gz))


def tree(root):
    """{relative path: bytes} of every file under ${root}."""
    out = {}
    for d, _, files in os.walk(root):
        for n in files:
            p = os.path.join(d, n)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


class GzipLocal(FetchCase):

    def gz_files(self):
        return sorted(n for n in self.listing()
                      if n.endswith(".jsonl.gz") and not n.startswith("."))

    def assertGzipHours(self, srv, hours, passthrough=None):
        """Every hour is a .jsonl.gz that decompresses to exactly what the
        JSONL mode writes; empty hours are 0-byte files.  ${passthrough}:
        also the file is the served members byte for byte."""
        self.assertEqual(self.gz_files(), sorted(gz_name(h) for h in hours),
                         "data dir: %s%s" % (self.listing(), self.explain()))
        for h in hours:
            got = (self.data / gz_name(h)).read_bytes()
            want = srv.dataset.expected(h)
            if not want:
                self.assertEqual(got, b"", "empty hour %s is not a 0-byte "
                                 "file" % F(h))
                continue
            self.assertEqual(gzip.decompress(got), want,
                             "%s does not decompress to the JSONL%s"
                             % (gz_name(h), self.explain()))
            if passthrough:
                self.assertEqual(got, served_members(srv, h),
                                 "%s is not the served members" % gz_name(h))

    def test_validated_equals_plain_and_writes_members_through(self):
        srv = self.server(gen_scenario(BASE, 8, events=40, parts=3,
                                       empty_every=5))
        hours = range(BASE, BASE + 8)
        res = self.fetch_range(srv, BASE, BASE + 7, "--data-dir", "plain")
        self.assertRc(res, 0)
        res = self.fetch_range(srv, BASE, BASE + 7, "--gzip", "-j", "2")
        self.assertRc(res, 0)
        self.assertNoTemporaries()
        self.assertIn("events", res.stderr)
        # Decompressed: exactly the bytes of the plain run.
        for h in hours:
            plain = (self.work / "plain" / api.hour_file_name(h)).read_bytes()
            got = (self.data / gz_name(h)).read_bytes()
            self.assertEqual(gzip.decompress(got) if got else b"", plain)
        # Every part ends with a newline: no member was added, none
        # re-compressed.
        self.assertGzipHours(srv, hours, passthrough=True)
        self.assertEqual(self.hour_files(), [])

    def test_passthrough(self):
        srv = self.server(gen_scenario(BASE, 6, events=30, parts=4,
                                       empty_every=4))
        res = self.fetch_range(srv, BASE, BASE + 5, "--gzip",
                               "--no-validate")
        self.assertRc(res, 0)
        self.assertGzipHours(srv, range(BASE, BASE + 6), passthrough=True)
        self.assertNoTemporaries()
        # Environment spelling; a rerun sends nothing.
        n = len(srv.requests())
        res = self.fetch_range(srv, BASE, BASE + 5, env=dict(
            self.env(srv), AMP2S3_GZIP="1", AMP2S3_NO_VALIDATE="yes"))
        self.assertRc(res, 0)
        self.assertEqual(len(srv.requests()), n, "the rerun sent requests")

    def test_missing_newline_and_empty_members(self):
        srv = self.server({"hours": {
            F(BASE): [[]],                                  # one empty part
            F(BASE + 1): [['{"x":1}'], [], ['{"y":2}', '[3]']],
            F(BASE + 2): [['{"z":1}', '{"z":2}'], ['"last"']]},
            "zip": {"trailing_newline": False}})
        res = self.fetch_range(srv, BASE, BASE + 3, "--gzip")
        self.assertRc(res, 0)
        # Validated: a "\n" member after each part that lacks it.
        self.assertGzipHours(srv, range(BASE, BASE + 4))
        self.assertEqual((self.data / gz_name(BASE)).read_bytes(), b"")
        self.assertEqual((self.data / gz_name(BASE + 3)).read_bytes(), b"")
        raw = (self.data / gz_name(BASE + 1)).read_bytes()
        parts = [gz for _, gz in srv.dataset.gz_parts(BASE + 1, False)]
        self.assertTrue(raw.startswith(parts[0]))
        self.assertEqual(len(raw), len(parts[0]) + len(parts[2]) + 2 * 21)
        self.assertTrue(raw[len(parts[0]) + 21:].startswith(parts[2]))
        self.assertEqual(gzip.decompress(raw[len(parts[0]):][:21]), b"\n")
        # Pass-through: the members as they are (empty ones dropped);
        # nothing can be appended to a part without its newline.
        for h in range(BASE, BASE + 4):
            os.unlink(self.data / gz_name(h))
        res = self.fetch_range(srv, BASE, BASE + 3, "--gzip",
                               "--no-validate")
        self.assertRc(res, 0)
        for h in range(BASE, BASE + 4):
            self.assertEqual((self.data / gz_name(h)).read_bytes(),
                             served_members(srv, h, False), F(h))
        self.assertEqual(gzip.decompress(
            (self.data / gz_name(BASE + 2)).read_bytes()),
            b'{"z":1}\n{"z":2}"last"')

    def test_corrupt_gzip_validated_retries_passthrough_copies(self):
        srv = self.server(gen_scenario(
            BASE, 2, events=10, parts=2,
            rules=[{"match": {"n": 1},
                    "action": {"kind": "corrupt_member", "member": 1,
                               "where": "gzip_crc"}}]))
        res = self.fetch_range(srv, BASE, BASE + 1, "--gzip")
        self.assertRc(res, 0)
        self.assertEqual(len(srv.requests()), 2, "the corrupt answer was "
                         "not retried" + self.explain())
        self.assertGzipHours(srv, [BASE, BASE + 1], passthrough=True)

    def test_modes_keep_to_their_own_files(self):
        srv = self.server(gen_scenario(BASE, 3, events=5))
        res = self.fetch_range(srv, BASE, BASE + 2)
        self.assertRc(res, 0)
        plain = {n: (self.data / n).read_bytes() for n in self.hour_files()}
        self.assertEqual(len(plain), 3)
        n1 = len(srv.requests())
        # .jsonl files are not .jsonl.gz hours: fetched again.
        res = self.fetch_range(srv, BASE, BASE + 2, "--gzip")
        self.assertRc(res, 0)
        self.assertGreater(len(srv.requests()), n1)
        self.assertGzipHours(srv, range(BASE, BASE + 3))
        self.assertEqual({n: (self.data / n).read_bytes()
                          for n in self.hour_files()}, plain,
                         "the plain files were touched")
        # Each mode now finds its own files complete.
        n2 = len(srv.requests())
        for extra in ((), ("--gzip",), ("--gzip", "--no-validate")):
            res = self.fetch_range(srv, BASE, BASE + 2, *extra)
            self.assertRc(res, 0)
        self.assertEqual(len(srv.requests()), n2)

    def test_all_dev_gzip_and_status(self):
        srv = self.server(gen_scenario(BASE, 6, events=12, empty_every=4))
        args = ("--dev", "--gzip", "--start-date", F(BASE), "--end-date",
                F(BASE + 5))
        res = self.run_amp(*args, cmd="all", server=srv)
        self.assertRc(res, 0)
        dev = self.work / "s3_dev"
        got = tree(dev)
        self.assertEqual(sorted(got), sorted(
            "python-import/" + gz_name(h) for h in range(BASE, BASE + 6)))
        for h in range(BASE, BASE + 6):
            b = got["python-import/" + gz_name(h)]
            want = srv.dataset.expected(h)
            self.assertEqual(gzip.decompress(b) if b else b"", want)
            if not want:
                self.assertEqual(b, b"")
        self.assertEqual(self.gz_files(), [])
        n = len(srv.requests())
        res = self.run_amp(*args, cmd="all", server=srv)
        self.assertRc(res, 0)
        self.assertEqual(len(srv.requests()), n, "the rerun sent requests")
        self.assertEqual(tree(dev), got)
        # status reads the same layout: complete with --gzip, missing
        # without (the .jsonl.gz objects are not .jsonl hours).
        res = self.run_amp(*args, "--json", cmd="status", server=srv)
        self.assertRc(res, 0)
        res = self.run_amp("--dev", "--start-date", F(BASE), "--end-date",
                           F(BASE + 5), "--json", cmd="status", server=srv)
        self.assertRc(res, 1)

    def test_no_validate_needs_gzip(self):
        res = self.run_amp("--no-validate")
        self.assertRc(res, 2)
        self.assertIn("--no-validate needs --gzip", res.stderr)
        res = self.run_amp(env=dict(self.env(), AMP2S3_GZIP="maybe"))
        self.assertRc(res, 2)
        self.assertIn("--gzip", res.stderr)


class Templates(FetchCase):

    def dev_run(self, srv, *args, cmd="all"):
        return self.run_amp("--dev", "--start-date", F(BASE), "--end-date",
                            F(BASE + 5), *args, cmd=cmd, server=srv)

    def test_hive_dev_round_trip(self):
        srv = self.server(gen_scenario(BASE, 6, events=10, empty_every=4))
        res = self.dev_run(srv, "--key-template", HIVE)
        self.assertRc(res, 0)
        got = tree(self.work / "s3_dev")
        self.assertEqual(sorted(got), sorted(hive_key(h) for h in
                                             range(BASE, BASE + 6)))
        self.assertIn("python-import/dt=2024-01-01/hour=05/part.jsonl", got)
        for h in range(BASE, BASE + 6):
            self.assertEqual(got[hive_key(h)], srv.dataset.expected(h))
        n = len(srv.requests())
        res = self.dev_run(srv, "--key-template", HIVE)
        self.assertRc(res, 0)
        self.assertEqual(len(srv.requests()), n,
                         "the listing did not understand the template")
        res = self.dev_run(srv, "--key-template", HIVE, "--json",
                           cmd="status")
        self.assertRc(res, 0)
        # The default layout sees none of these hours.
        res = self.dev_run(srv, "--json", cmd="status")
        self.assertRc(res, 1)

    def test_hive_dev_gzip_env(self):
        srv = self.server(gen_scenario(BASE, 6, events=10))
        env = dict(self.env(srv), AMP2S3_KEY_TEMPLATE=HIVE, AMP2S3_GZIP="1",
                   AWS_S3_PREFIX="events/")
        res = self.run_amp("--dev", "--start-date", F(BASE), "--end-date",
                           F(BASE + 5), cmd="all", env=env)
        self.assertRc(res, 0)
        got = tree(self.work / "s3_dev")
        self.assertEqual(sorted(got), sorted(
            hive_key(h, ".jsonl.gz", "events/") for h in range(BASE,
                                                               BASE + 6)))
        for h in range(BASE, BASE + 6):
            self.assertEqual(gzip.decompress(got[hive_key(
                h, ".jsonl.gz", "events/")]), srv.dataset.expected(h))

    def test_listing_is_strict(self):
        srv = self.server(gen_scenario(BASE, 6, events=5))
        dev = self.work / "s3_dev" / "python-import"
        # Near misses: none of these is hour BASE+1..BASE+4's object.
        near = {
            "dt=2024-01-01/hour=1/part.jsonl": b"x",
            "dt=2024-01-01/hour=02/part.json": b"x",
            "dt=2024-01-01/hour=03/part.jsonl.gz": b"x",
            "dt=2024-01-01/hour=04/part.jsonl/x": b"x",
            "dt=2024-1-01/hour=04/part.jsonl": b"x",
            "2024-01-01_02.jsonl": b"x",        # the default layout
        }
        for rel, b in near.items():
            p = dev / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b)
        # A real one: hour BASE.
        p = dev / "dt=2024-01-01/hour=00/part.jsonl"
        p.parent.mkdir(parents=True)
        p.write_bytes(b'{"kept":true}\n')
        res = self.dev_run(srv, "--key-template", HIVE, cmd="fetch")
        self.assertRc(res, 0)
        asked = sorted({h for e in srv.requests()
                        for h in range(api.parse_hour(e["start"]),
                                       api.parse_hour(e["end"]) + 1)})
        self.assertEqual(asked, list(range(BASE + 1, BASE + 6)))
        self.assertEqual(p.read_bytes(), b'{"kept":true}\n')

    def test_year_month_day_template(self):
        srv = self.server(gen_scenario(BASE, 3, events=5))
        res = self.dev_run(srv, "--key-template",
                           "{year}/{month}/{day}/{prefix}{hour}.ndjson",
                           "--s3-prefix", "h")
        self.assertRc(res, 0)
        self.assertEqual(sorted(tree(self.work / "s3_dev")), [
            "2024/01/01/h00.ndjson", "2024/01/01/h01.ndjson",
            "2024/01/01/h02.ndjson", "2024/01/01/h03.ndjson",
            "2024/01/01/h04.ndjson", "2024/01/01/h05.ndjson"])
        n = len(srv.requests())
        res = self.dev_run(srv, "--key-template",
                           "{year}/{month}/{day}/{prefix}{hour}.ndjson",
                           "--s3-prefix", "h")
        self.assertRc(res, 0)
        self.assertEqual(len(srv.requests()), n)

    def test_bad_templates_exit_2(self):
        for tmpl, msg in (
                ("{prefix}{date}.jsonl", "{hour}"),
                ("{prefix}{year}{month}_{hour}.jsonl", "{day}"),
                ("{prefix}{date}_{hour}_{minute}.jsonl", "{minute}"),
                ("{prefix}{date}_{hour}.jsonl.gz", ".gz"),
                ("{prefix}{date}_{hour", "unclosed"),
                ("{prefix}{date}/{hour}/", "'/'")):
            res = self.run_amp("--key-template", tmpl)
            self.assertRc(res, 2)
            self.assertIn("--key-template", res.stderr)
            self.assertIn(msg, res.stderr)
            self.assertEqual(len(res.stderr.strip().splitlines()), 1,
                             res.stderr)
        res = self.run_amp(env=dict(self.env(),
                                    AMP2S3_KEY_TEMPLATE="{date}.jsonl"))
        self.assertRc(res, 2)
        self.assertIn("{hour}", res.stderr)
        # Only a folder store cares about path segments.
        res = self.run_amp("--dev", "--key-template",
                           "{prefix}../{date}_{hour}.jsonl")
        self.assertRc(res, 2)
        self.assertIn("'..'", res.stderr)
        self.assertFalse((self.work / "s3_dev").exists())


class S3Formats(S3Case):

    def all(self, srv, *args, env=None):
        return self.run_amp("--start-date", F(BASE), "--end-date",
                            F(BASE + 5), *args, cmd="all",
                            env=env if env is not None else
                            self.s3_env(srv, AMP2S3_S3_MAX_KEYS="2"))

    def listings(self):
        """The query of each ListObjectsV2 request since the last
        clear_requests, as a dict."""
        return [dict(urllib.parse.parse_qsl(r["query"]))
                for r in self.proxy_log("GET") if "list-type=2" in
                r["query"]]

    def test_hive_round_trip(self):
        srv = self.server(gen_scenario(BASE, 6, events=10, empty_every=4))
        # An object of the default layout is not a Hive hour.
        self.put(self.key(BASE + 2), b'{"default":true}\n')
        self.s3.clear_requests()
        res = self.all(srv, "--key-template", HIVE)
        self.assertRc(res, 0)
        lists = self.listings()
        self.assertTrue(lists)
        # Only the keys of hours 00..05 of that day are asked for.
        self.assertEqual({q.get("prefix") for q in lists},
                         {"python-import/dt=2024-01-01/hour=0"})
        want = {hive_key(h): srv.dataset.expected(h)
                for h in range(BASE, BASE + 6)}
        want[self.key(BASE + 2)] = b'{"default":true}\n'
        self.assertObjectsExact(want)
        self.assertEqual(self.hour_files(), [])
        for h in (BASE, BASE + 1):
            head = self.client.head_object(Bucket=self.bucket,
                                           Key=hive_key(h))
            self.assertEqual(head["ContentType"], "application/x-ndjson")
            self.assertNotIn("ContentEncoding", head)
        # Rerun: the listing (pages of 2 keys) finds every hour.
        self.s3.clear_requests()
        n = len(srv.requests())
        res = self.all(srv, "--key-template", HIVE)
        self.assertRc(res, 0)
        self.assertEqual(len(srv.requests()), n, "the rerun fetched")
        self.assertEqual(self.proxy_log("PUT"), [], "the rerun uploaded")
        self.assertEqual(len(self.listings()), 3,
                         "6 keys, pages of 2: 3 listing requests")

    def test_gzip_objects(self):
        srv = self.server(gen_scenario(BASE, 6, events=10, empty_every=3))
        res = self.all(srv, "--gzip", "--key-template", HIVE)
        self.assertRc(res, 0)
        keys = self.keys()
        self.assertEqual(sorted(keys), sorted(
            hive_key(h, ".jsonl.gz") for h in range(BASE, BASE + 6)))
        for h in range(BASE, BASE + 6):
            k = hive_key(h, ".jsonl.gz")
            body = self.get(k)
            want = srv.dataset.expected(h)
            if want:
                self.assertEqual(gzip.decompress(body), want)
                self.assertEqual(body, served_members(srv, h))
            else:
                self.assertEqual(body, b"", "an empty hour is an empty "
                                 "object")
            head = self.client.head_object(Bucket=self.bucket, Key=k)
            self.assertEqual(head["ContentType"], "application/gzip")
            self.assertNotIn("ContentEncoding", head)
        self.s3.clear_requests()
        n = len(srv.requests())
        res = self.all(srv, "--gzip", "--no-validate", "--key-template",
                       HIVE)
        self.assertRc(res, 0)
        self.assertEqual(len(srv.requests()), n)
        self.assertEqual(self.proxy_log("PUT"), [])

    def test_default_layout_plain_and_gzip_side_by_side(self):
        srv = self.server(gen_scenario(BASE, 6, events=4))
        res = self.all(srv)
        self.assertRc(res, 0)
        res = self.all(srv, "--gzip")
        self.assertRc(res, 0)
        keys = self.keys()
        for h in range(BASE, BASE + 6):
            self.assertIn(self.key(h), keys)
            self.assertIn(self.key(h) + ".gz", keys)
            self.assertEqual(self.get(self.key(h)), srv.dataset.expected(h))
            self.assertEqual(gzip.decompress(self.get(self.key(h) + ".gz")),
                             srv.dataset.expected(h))
        self.assertEqual(len(keys), 12)


class DevStore(FetchCase):
    """--dev stores an hour by hard link when data/ and the folder share a
    file system (no copy), by copy when they do not; either way the local
    name is gone and the folder holds the hour's exact bytes."""

    def test_same_file_system_links(self):
        srv = self.server(gen_scenario(BASE, 3, events=10, empty_every=0))
        res = self.run_amp("--start-date", F(BASE), "--end-date",
                           F(BASE + 2), cmd="fetch", server=srv)
        self.assertRc(res, 0)
        inodes = {h: os.stat(self.hour_path(h)).st_ino
                  for h in range(BASE, BASE + 3)}
        res = self.run_amp("--dev", "--start-date", F(BASE), "--end-date",
                           F(BASE + 2), cmd="sync", server=srv)
        self.assertRc(res, 0)
        dev = self.work / "s3_dev" / "python-import"
        for h in range(BASE, BASE + 3):
            self.assertFalse(self.hour_path(h).exists())
            st = os.stat(dev / api.hour_file_name(h))
            self.assertEqual(st.st_ino, inodes[h], "copied, not linked")
            self.assertEqual(st.st_nlink, 1)
            self.assertEqual((dev / api.hour_file_name(h)).read_bytes(),
                             srv.dataset.expected(h))
        self.assertEqual(sorted(os.listdir(dev)),
                         sorted(api.hour_file_name(h)
                                for h in range(BASE, BASE + 3)))

    def test_other_file_system_copies(self):
        shm = "/dev/shm"
        self.assertTrue(os.path.isdir(shm), "this test needs /dev/shm")
        self.assertNotEqual(os.stat(shm).st_dev, os.stat(self.work).st_dev,
                            "/dev/shm is not another file system here")
        import tempfile
        other = tempfile.mkdtemp(prefix="amp2s3-dev-", dir=shm)
        self.addCleanup(__import__("shutil").rmtree, other, True)
        srv = self.server(gen_scenario(BASE, 3, events=10, empty_every=0))
        res = self.run_amp("--dev", "--dev-dir", other, "--start-date",
                           F(BASE), "--end-date", F(BASE + 2), cmd="all",
                           server=srv)
        self.assertRc(res, 0)
        dev = os.path.join(other, "python-import")
        for h in range(BASE, BASE + 3):
            self.assertFalse(self.hour_path(h).exists())
            with open(os.path.join(dev, api.hour_file_name(h)), "rb") as f:
                self.assertEqual(f.read(), srv.dataset.expected(h))
        self.assertEqual(sorted(os.listdir(dev)),
                         sorted(api.hour_file_name(h)
                                for h in range(BASE, BASE + 3)))
