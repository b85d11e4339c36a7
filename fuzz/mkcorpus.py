#!/usr/bin/python3
"""mkcorpus.py: write the seed corpora of the fuzz targets, fuzz/corpus/<target>/.

Deterministic (fixed gzip and zip timestamps), so re-running it changes
nothing.  The zips are made with Python's zipfile, as an independent
writer: stored, deflated, with data descriptors (written to an unseekable
stream), zip64 extra fields, directory entries; their members are gzipped
JSON lines as the Export API serves them.  Run from anywhere:

    /usr/bin/python3 fuzz/mkcorpus.py
"""
import gzip
import io
import os
import struct
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
PROJECT = 187520
DAY = "2024-01-01"  # the fuzz_unpack window: 2024-01-01T00 .. T02
STAMP = (2024, 1, 2, 3, 4, 6)


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return gzip.compress(data, compresslevel=6, mtime=0)


def member(hour, part=0, two_digits=False):
    h = "%02d" % hour if two_digits else "%d" % hour
    return "%d/%d_%s_%s#%d.json.gz" % (PROJECT, PROJECT, DAY, h, part)


class Unseekable(io.RawIOBase):
    """A write-only stream without seek/tell: zipfile then writes data
    descriptors (flag bit 3) after each member."""

    def __init__(self):
        self.buf = bytearray()

    def writable(self):
        return True

    def write(self, b):
        self.buf += b
        return len(b)


def make_zip(entries, method=zipfile.ZIP_STORED, descriptor=False,
             zip64=False):
    """entries: [(name, bytes)]; a name ending in '/' is a directory."""
    out = Unseekable() if descriptor else io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in entries:
            zi = zipfile.ZipInfo(name, date_time=STAMP)
            zi.compress_type = method
            if name.endswith("/"):
                zi.external_attr = 0o40755 << 16
                zf.writestr(zi, b"")
                continue
            with zf.open(zi, "w", force_zip64=zip64) as w:
                w.write(data)
    return bytes(out.buf if descriptor else out.getvalue())


LINES = ('{"event_type":"open","user_id":"u1","event_time":'
         '"2024-01-01 00:10:00.000000","event_properties":{"n":1}}\n'
         '{"event_type":"close","user_id":"u2","amplitude_id":42,'
         '"event_properties":{"a":[1,2.5e3,null,true,"\\u00e9"]}}\n')


def unpack():
    one = [(member(0), gz(LINES))]
    put("unpack", "stored.zip", make_zip(one))
    put("unpack", "deflated.zip", make_zip(one, zipfile.ZIP_DEFLATED))
    put("unpack", "descriptor.zip",
        make_zip(one, zipfile.ZIP_DEFLATED, descriptor=True))
    put("unpack", "zip64.zip", make_zip(one, zip64=True))
    put("unpack", "zip64-descriptor.zip",
        make_zip(one, zipfile.ZIP_DEFLATED, descriptor=True, zip64=True))
    put("unpack", "hours-and-parts.zip", make_zip([
        ("%d/" % PROJECT, b""),
        (member(0, 0), gz('{"h":0,"p":0}\n')),
        (member(0, 1), gz('{"h":0,"p":1}')),  # no last newline
        (member(2, 0, True), gz('{"h":2}\n[1,2]\n"s"\n')),
    ], zipfile.ZIP_DEFLATED))
    put("unpack", "concatenated-gzip.zip", make_zip([
        (member(1), gz('{"a":1}\n') + gz("") + gz('{"b":2}\n')),
    ]))
    put("unpack", "empty-member.zip", make_zip([(member(1), gz(""))]))
    # Over the 256 KiB output buffer of unpack.c (flushed mid-member),
    # under fuzz_unpack's 300 KiB hour cap and 300:1 ratio cap (~60:1).
    big = "".join('{"n":%d}\n' % (i % 997) for i in range(27000))
    put("unpack", "over-256k.zip", make_zip([(member(2), gz(big))]))
    put("unpack", "empty.zip", make_zip([]))
    put("unpack", "bad-json.zip", make_zip([(member(0), gz('{"a":1\n'))]))
    put("unpack", "empty-line.zip", make_zip([(member(0), gz('1\n\n2\n'))]))
    put("unpack", "outside-window.zip", make_zip([(member(5), gz("1\n"))]))
    put("unpack", "bad-name.zip",
        make_zip([("%d/../x.json.gz" % PROJECT, gz("1\n"))]))
    put("unpack", "duplicate-part.zip", make_zip([
        (member(1, 3), gz("1\n")), (member(1, 3, True), gz("2\n"))]))
    put("unpack", "not-gzip.zip", make_zip([(member(0), LINES.encode())]))
    bad_crc = bytearray(make_zip(one))
    bad_crc[14] ^= 0xff  # local header CRC-32
    put("unpack", "bad-crc.zip", bytes(bad_crc))
    truncated = gz(LINES)
    put("unpack", "truncated-gzip.zip",
        make_zip([(member(0), truncated[:len(truncated) - 5])]))
    # Inputs not starting with "PK" describe a zip that fuzz_unpack builds:
    # NUL-separated records, a selector byte then the content (fuzz_unpack.c).
    put("unpack", "records-one", b"\x00" + LINES.encode())
    put("unpack", "records-three-hours",
        b"\x10" + b'{"h":0}\n' + b"\x00" + b"\x21" + b'{"h":1}\n[2]\n' +
        b"\x00" + b"\x82" + b'"two"')
    put("unpack", "records-parts", b"\x00" + b"1\n" + b"\x00" + b"\x04" +
        b"2\n" + b"\x00" + b"\x08" + b"" + b"\x00" + b"\x0c" + b"3")
    put("unpack", "records-damaged", b"\x40" + b'{"x":1}\n')
    put("unpack", "records-duplicate-part",  # "_1#0" and "_01#0"
        b"\x01" + b"1\n" + b"\x00" + b"\x81" + b"2\n")
    put("unpack", "records-same-name", b"\x02" + b"1\n" + b"\x00" +
        b"\x02" + b"2\n")
    put("unpack", "records-outside", b"\x03" + b"1\n")
    # 0xFE, K: the rest repeated 64 * (K + 1) times.  Deflated by the zip
    # over a gzip (a nested bomb: beyond 300 times its bytes in the zip,
    # though the gzip alone is not), and stored (a gzip bomb), below and
    # beyond fuzz_unpack's 300:1.
    put("unpack", "records-nested-bomb", b"\x10" + b"\xfe\x40" +
        b'{"e":"x"}\n')
    put("unpack", "records-gzip-bomb-small", b"\x00" + b"\xfe\x10" +
        b'{"e":"x"}\n')
    put("unpack", "records-gzip-bomb", b"\x01" + b"\xfe\xc8" +
        b'{"e":"x"}\n' + b"\x00" + b"\x02" + b"[1]\n")
    # 13 members: one more than fuzz_unpack allows in an answer.
    put("unpack", "records-too-many", b"\x00".join(
        bytes([(i % 3) | (i // 3) << 2]) + b"[%d]\n" % i
        for i in range(13)))


def member_names():
    good = [
        member(0), member(23, 7, True), "1/1_2021-01-01_0#0.json.gz",
        "1/1_2021-01-01_05#12.json.gz",
        "1/1_2021-01-01_23#18446744073709551615.json.gz",
        "18446744073709551615/18446744073709551615_2024-02-29_9#3.json.gz",
        "007/007_2000-02-29_1#01.json.gz",
    ]
    bad = [
        "1/1_2021-01-01_24#0.json.gz", "1/1_2021-02-30_1#0.json.gz",
        "1/1_2023-02-29_1#0.json.gz", "1/1_2021-13-01_1#0.json.gz",
        "1/2_2021-01-01_1#0.json.gz", "01/1_2021-01-01_1#0.json.gz",
        "1/../1_2021-01-01_1#0.json.gz", "/1/1_2021-01-01_1#0.json.gz",
        "1/1_2021-01-01_1#0.json.gz.x", "1/1_2021-01-01_1.json.gz",
        "1/1_2021-01-01_1#18446744073709551616.json.gz",
        "1/1_1969-12-31_23#0.json.gz", "1/1_2021-01-01_1#0.JSON.GZ",
        "1/1_2021-01-01_1#0.json.gz\x00x", "1/1_2021-01-01_1\x00#0.json.gz",
        "%d/" % PROJECT, "",
    ]
    for i, n in enumerate(good):
        put("member", "good-%02d" % i, n)
    for i, n in enumerate(bad):
        put("member", "bad-%02d" % i, n)


def s3list():
    ns = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
    head = '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult%s>' \
        '<Name>bucket</Name><Prefix>python-import/</Prefix>' \
        '<KeyCount>%d</KeyCount><MaxKeys>1000</MaxKeys>'

    def contents(key, size):
        return ('<Contents><Key>%s</Key><LastModified>2024-01-02T03:04:05'
                '.000Z</LastModified><ETag>&quot;d41d8cd98f00b204e9800998'
                'ecf8427e&quot;</ETag><Size>%d</Size><StorageClass>STANDARD'
                '</StorageClass></Contents>' % (key, size))
    keys = ["python-import/2024-01-01_%02d.jsonl" % h for h in range(3)]
    put("s3list", "page-complete", head % (ns, 3) +
        "".join(contents(k, 10 * i) for i, k in enumerate(keys)) +
        "<IsTruncated>false</IsTruncated></ListBucketResult>")
    put("s3list", "page-truncated", head % (ns, 2) +
        contents(keys[0], 0) + contents(keys[1], 123) +
        "<IsTruncated>true</IsTruncated><NextContinuationToken>"
        "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="
        "</NextContinuationToken></ListBucketResult>")
    put("s3list", "page-continued", head % ("", 1) +
        "<ContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="
        "</ContinuationToken>" + contents(keys[2], 18446744073709551615) +
        "<IsTruncated>false</IsTruncated></ListBucketResult>")
    put("s3list", "page-empty", head % (ns, 0) +
        "<IsTruncated>false</IsTruncated></ListBucketResult>")
    put("s3list", "page-entities",
        "<ListBucketResult><Contents><Key>a&amp;b&lt;c&#x41;&#233;"
        "<![CDATA[<x>]]></Key><Size>1</Size></Contents>"
        "<IsTruncated>false</IsTruncated></ListBucketResult>")
    put("s3list", "page-prefixed-ns",
        '<s3:ListBucketResult xmlns:s3="http://s3.amazonaws.com/doc/'
        '2006-03-01/"><s3:Contents><s3:Key>k</s3:Key><s3:Size>5</s3:Size>'
        '</s3:Contents></s3:ListBucketResult>')
    put("s3list", "truncated-no-token", head % (ns, 1) + contents(keys[0], 1)
        + "<IsTruncated>true</IsTruncated></ListBucketResult>")
    put("s3list", "bad-size", head % (ns, 1) + contents(keys[0], 1)
        .replace("<Size>1</Size>", "<Size>-1</Size>") + "</ListBucketResult>")
    put("s3list", "cut-off", (head % (ns, 3) + contents(keys[0], 1))[:-20])
    put("s3list", "error-body", '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<Error><Code>AccessDenied</Code><Message>Access Denied</Message>"
        "<RequestId>4442587FB7D0A2F9</RequestId><HostId>abc=</HostId>"
        "</Error>")
    put("s3list", "error-region", "<Error><Code>AuthorizationHeaderMalformed"
        "</Code><Message>the region 'us-east-1' is wrong; expecting "
        "'eu-west-2'</Message><Region>eu-west-2</Region></Error>")
    put("s3list", "html", "<html><body>502 Bad Gateway</body></html>")
    put("s3list", "doctype-entity",
        '<!DOCTYPE l [<!ENTITY e "python-import/">]>'
        "<ListBucketResult><Contents><Key>&e;x</Key><Size>1</Size>"
        "</Contents></ListBucketResult>")
    put("s3list", "empty", "")


def envfiles():
    put("envfile", "basic",
        "AMP_API_KEY=abc123\nAMP_SECRET_KEY=s3cr3t\n"
        "AWS_BUCKET_NAME=my-bucket\nAWS_REGION=eu-west-2\n")
    put("envfile", "quotes",
        'A="double \\"q\\" \\n \\t \\\\ \\$HOME" # comment\n'
        "B='single $HOME \\n'\nC=\nD=  spaced value  # trailing\n"
        "E=a#not-a-comment\nexport F=exported\n")
    put("envfile", "crlf-bom", "\xef\xbb\xbfA=1\r\n# c\r\n\r\nB='x'\r\n")
    put("envfile", "comments", "# only comments\n   \t \n  # indented\n")
    put("envfile", "bad-unterminated", 'A="open\nB=2\n')
    put("envfile", "bad-after-quote", "A='x' y\n")
    put("envfile", "bad-escape", 'A="\\q"\n')
    put("envfile", "bad-key", "1A=x\n")
    put("envfile", "bad-space-before-eq", "A =x\n")
    put("envfile", "nul", b"A=1\nB=\x00\n")
    put("envfile", "no-final-newline", "export  A_1='v'  ")


def hours():
    for i, s in enumerate(["20240101T00", "99991231T23", "19700101T00",
                           "20240229T12", "20230229T12", "20241301T00",
                           "2024010100", "20240101T24"]):
        put("hour", "api-%02d" % i, s)
    for i, s in enumerate(["2024-01-01_00", "9999-12-31_23",
                           "1970-01-01_00", "2000-02-29_23",
                           "2100-02-29_00", "2024-01-01T00"]):
        put("hour", "file-%02d" % i, s)
    for i, s in enumerate(["120", "  0  ", "99999999999999999999",
                           "Sun, 06 Nov 1994 08:49:37 GMT",
                           "Fri, 31 Dec 9999 23:59:59 GMT",
                           "Thu, 01 Jan 1970 00:00:00 GMT",
                           "Mon, 01 Jan 1900 00:00:00 GMT",
                           "Sunday, 06-Nov-94 08:49:37 GMT",
                           "Sun Nov  6 08:49:37 1994", "-1", "1.5"]):
        put("hour", "retry-after-%02d" % i, s)
    # 36 bytes and more: integers for the round trips and retry_delay_ms.
    put("hour", "ints-00", struct.pack("<qqqqI", 473352, -1, 500, 20000,
                                       0x7fffffff))
    put("hour", "ints-01", struct.pack("<qqqqI", -5, 3000, 500, 20000, 0))
    put("hour", "ints-02", struct.pack("<qqqqI", 70389527, -1,
                                       2 ** 62, 2 ** 63 - 1, 0xffffffff))


def jsonl():
    # byte 0: piece-size seed; byte 1: line limit (0: none); then the stream
    put("jsonl", "lines", b"\x05\x00" + LINES.encode())
    put("jsonl", "no-final-newline", b"\x01\x00" + b'{"a":1}\n[1,2]')
    put("jsonl", "limit", b"\x02\x10" + b'{"a":"0123456789abcdef"}\n')
    put("jsonl", "empty-line", b"\x03\x00" + b"1\n\n2\n")
    put("jsonl", "two-values", b"\x04\x00" + b"1 2\n")
    put("jsonl", "bad-utf8", b"\x06\x00" + b'"\xc3\x28"\n')
    put("jsonl", "numbers", b"\x07\x00" +
        b"-0\n1e308\n-1.5E-3\n18446744073709551616\n")
    put("jsonl", "nested", b"\x08\x00" + b"[" * 40 + b"]" * 40 + b"\n")


if __name__ == "__main__":
    unpack()
    member_names()
    s3list()
    envfiles()
    hours()
    jsonl()
