#!/usr/bin/python3
"""Run the integration suite (unittest) and print the closing line

    integration: N passed, N failed[, N skipped]

Exit status 0 only if nothing failed.  Environment: AMP2S3_BIN, the amp2s3
binary under test (tests that need it are skipped when it is missing, and
reported as skipped).

    /usr/bin/python3 tests/integration/run.py [-v] [-k PATTERN] [TEST ...]

TEST: a module, class or method name, e.g. test_fetch.Basic.test_gaps.
"""
import argparse
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("-k", dest="patterns", action="append", default=[],
                    help="only tests whose name contains this substring")
    ap.add_argument("-f", "--failfast", action="store_true")
    ap.add_argument("tests", nargs="*")
    a = ap.parse_args()

    loader = unittest.TestLoader()
    if a.patterns:
        loader.testNamePatterns = ["*%s*" % p for p in a.patterns]
    if a.tests:
        suite = loader.loadTestsFromNames(a.tests)
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    t0 = time.monotonic()
    runner = unittest.TextTestRunner(stream=sys.stdout,
                                     verbosity=2 if a.verbose else 1,
                                     failfast=a.failfast)
    res = runner.run(suite)
    failed = len(res.failures) + len(res.errors) + \
        len(res.unexpectedSuccesses)
    skipped = len(res.skipped)
    passed = res.testsRun - failed - skipped
    if skipped:
        reasons = {}
        for _, why in res.skipped:
            reasons[why] = reasons.get(why, 0) + 1
        for why, n in reasons.items():
            print("skipped %d: %s" % (n, why))
    line = "integration: %d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print("(%.1fs)" % (time.monotonic() - t0))
    print(line, flush=True)
    return 1 if failed or res.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
