#!/usr/bin/python3
"""The closing line counts every case once: tools/test_summary.py fed reports with known counts.

Fake build directories hold what meson and the tests leave behind (testlog.json, GoogleTest's
XML, casereport's XML, a --results file); the summary's closing line must equal the hand count.
Real Python test modules are run through casereport.main() too, so its reports (fixture
failures and skips spread over their cases, exit codes 0/1/77) are checked the same way.

    L7GATE_TOOLS=tools /usr/bin/python3 tests/selftest/test_summary_counts.py
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
INTEGRATION = os.path.join(ROOT, "tests", "integration")
sys.path.insert(0, INTEGRATION)
import casereport  # noqa: E402

TOOLS = os.environ.get("L7GATE_TOOLS") or os.path.join(ROOT, "tools")
SUMMARY = os.path.join(TOOLS, "test_summary.py")
PY = "/usr/bin/python3"


def gtest_xml(suites):
    """GoogleTest's XML for {suite: [(case, "pass"|"fail"|"skip"|"disabled")]}."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>', '<testsuites name="AllTests">']
    for suite, cases in suites.items():
        out.append('  <testsuite name="%s" tests="%d">' % (suite, len(cases)))
        for name, outcome in cases:
            status = "notrun" if outcome == "disabled" else "run"
            result = {"skip": "skipped", "disabled": "suppressed"}.get(outcome, "completed")
            head = '    <testcase name="%s" status="%s" result="%s" time="0" classname="%s"' % (
                name, status, result, suite)
            if outcome == "fail":
                out.append(head + '>\n      <failure message="x.cpp:1\nExpected: 1" type="">'
                           '<![CDATA[x.cpp:1\nExpected: 1]]></failure>\n    </testcase>')
            elif outcome == "skip":
                out.append(head + '>\n      <skipped message="x.cpp:9&#10;no ring PMD"/>\n    </testcase>')
            else:
                out.append(head + " />")
        out.append("  </testsuite>")
    out.append("</testsuites>")
    return "\n".join(out) + "\n"


class FakeBuild:
    """A build directory as meson test leaves it."""

    def __init__(self, root, name):
        self.dir = os.path.join(root, name)
        os.makedirs(os.path.join(self.dir, "meson-logs", "cases"))
        self.entries = []
        self.start = time.time()

    def test(self, name, result, gtest=None, cases_xml=None, stale=False, rc=None):
        """One meson test: its testlog entry and, optionally, its case report (written before the
        test's start time when stale)."""
        start = self.start + len(self.entries)
        rc = rc if rc is not None else {"OK": 0, "SKIP": 77}.get(result, 1)
        self.entries.append({"name": "l7gate:suite / " + name, "result": result,
                             "starttime": start, "duration": 1.0, "returncode": rc, "stdout": ""})
        path = None
        if gtest is not None:
            path = os.path.join(self.dir, name + ".xml")
            with open(path, "w") as f:
                f.write(gtest_xml(gtest))
        if cases_xml is not None:
            path = os.path.join(self.dir, "meson-logs", "cases", name + ".xml")
            with open(path, "w") as f:
                f.write(cases_xml)
        if path is not None:
            t = start - 3600 if stale else start + 0.5
            os.utime(path, (t, t))

    def write(self):
        with open(os.path.join(self.dir, "meson-logs", "testlog.json"), "w") as f:
            for e in self.entries:
                f.write(json.dumps(e) + "\n")
        return self.dir


def run_module(work, name, body):
    """Runs a Python test module through casereport.main(); (exit code, report XML text)."""
    src = os.path.join(work, name + ".py")
    with open(src, "w") as f:
        f.write("import sys, unittest\nsys.path.insert(0, %r)\nimport casereport\n" % INTEGRATION)
        f.write(textwrap.dedent(body))
        f.write("\nif __name__ == '__main__':\n    casereport.main()\n")
    report = os.path.join(work, name + "-cases.xml")
    env = dict(os.environ, L7GATE_CASES_FILE=report, L7GATE_TEST_NAME=name)
    p = subprocess.run([PY, src], env=env, capture_output=True, text=True, timeout=60)
    text = open(report).read() if os.path.exists(report) else None
    return p.returncode, text, p.stdout + p.stderr


def summary(*args):
    p = subprocess.run([PY, SUMMARY] + list(args), capture_output=True, text=True, timeout=60)
    lines = p.stdout.strip().splitlines()
    return p.returncode, (lines[-1] if lines else ""), p.stdout


class SummaryCounts(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="l7g-summary-")
        self.addCleanup(shutil.rmtree, self.work, True)

    def line(self, *args):
        rc, line, out = summary(*args)
        return rc, line, out

    def test_all_pass_with_single_case_suites(self):
        b = FakeBuild(self.work, "build")
        b.test("unit", "OK", gtest={"FlowKey": [("A", "pass"), ("B", "pass"), ("C", "pass")],
                                    "Lonely": [("Only", "pass")]})
        b.test("eal", "OK", gtest={"Single": [("One", "pass")]})
        b.test("plain", "OK")  # an exit-code test with no finer cases
        rc, line, out = self.line(b.write())
        self.assertEqual(line, "6 passed, 0 failed, 0 skipped", out)
        self.assertEqual(rc, 0)

    def test_one_failing_gtest_case_is_one_failure(self):
        b = FakeBuild(self.work, "build")
        b.test("unit", "FAIL", gtest={"S": [("A", "pass"), ("B", "fail"), ("C", "pass")]})
        rc, line, out = self.line(b.write())
        self.assertEqual(line, "2 passed, 1 failed, 0 skipped", out)
        self.assertEqual(rc, 1)
        self.assertIn("build/unit/S.B", out)

    def test_all_skipped_and_partial_skip(self):
        rc, all_skipped, out = run_module(self.work, "allskip", """
            class T(unittest.TestCase):
                def setUp(self):
                    self.skipTest("needs root")
                def test_a(self): pass
                def test_b(self): pass
                def test_c(self): pass
            """)
        self.assertEqual(rc, 77, out)
        rc, partial, out = run_module(self.work, "partial", """
            class T(unittest.TestCase):
                def test_a(self): pass
                def test_b(self): pass
                def test_c(self): self.skipTest("no ../shared captures")
            """)
        self.assertEqual(rc, 0, out)
        b = FakeBuild(self.work, "build")
        b.test("allskip", "SKIP", cases_xml=all_skipped)
        b.test("partial", "OK", cases_xml=partial)
        b.test("gskip", "OK", gtest={"S": [("A", "pass"), ("B", "skip"), ("D", "disabled")]})
        rc, line, out = self.line(b.write())
        self.assertEqual(line, "3 passed, 0 failed, 6 skipped", out)
        self.assertEqual(rc, 0)
        # Partial skips are listed by name with their reason.
        self.assertIn("build/partial/__main__.T.test_c: no ../shared captures", out)
        self.assertIn("build/gskip/S.B: x.cpp:9 no ring PMD", out)  # on one line

    def test_fixture_failure_and_skip_count_per_case(self):
        rc, text, out = run_module(self.work, "fixtures", """
            def setUpModule():
                pass
            class Broken(unittest.TestCase):
                @classmethod
                def setUpClass(cls):
                    raise RuntimeError("traffic generator failed")
                def test_a(self): pass
                def test_b(self): pass
            class Skipped(unittest.TestCase):
                @classmethod
                def setUpClass(cls):
                    raise unittest.SkipTest("no scapy")
                def test_c(self): pass
            class Fine(unittest.TestCase):
                def test_d(self): pass
                def test_e(self): self.assertEqual(1, 2)
            """)
        self.assertEqual(rc, 1, out)
        b = FakeBuild(self.work, "build")
        b.test("fixtures", "FAIL", cases_xml=text)
        rc, line, out = self.line(b.write())
        self.assertEqual(line, "1 passed, 3 failed, 1 skipped", out)
        self.assertIn("traffic generator failed", out)

    def test_failure_message_carries_l7gate_stderr(self):
        rc, text, out = run_module(self.work, "stderr", """
            class T(unittest.TestCase):
                def test_a(self):
                    casereport.note_l7gate("run1", text="EAL: boot\\nFATAL hugepages: none mounted\\n")
                    self.fail("l7gate stopped early")
            """)
        self.assertEqual(rc, 1)
        self.assertIn("FATAL hugepages: none mounted", text)
        self.assertIn("FATAL hugepages: none mounted", out)

    def test_no_case_ran_is_a_failure(self):
        rc, text, out = run_module(self.work, "empty", "x = 1\n")
        self.assertEqual(rc, 1, out)

    def test_stale_report_ignored_and_crash_counted_once(self):
        b = FakeBuild(self.work, "build")
        # A report from an earlier run: the crashed run's meson result counts, once.
        b.test("unit", "FAIL", gtest={"S": [("A", "pass"), ("B", "pass")]}, stale=True, rc=-11)
        # A failing exit although every case passed (a sanitizer report at exit, say).
        b.test("eal", "FAIL", gtest={"S": [("A", "pass"), ("B", "pass")]}, rc=1)
        b.test("slow", "TIMEOUT")
        rc, line, out = self.line(b.write())
        self.assertEqual(line, "2 passed, 3 failed, 0 skipped", out)
        self.assertIn("although no case failed", out)

    def test_results_files_and_two_builds(self):
        r = os.path.join(self.work, "steps.tsv")
        with open(r, "w") as f:
            f.write("callgrind-established\tpass\t5200 Ir/pkt\n")
            f.write("fuzz-parser\tfail\tcrash\n")
            f.write("clang-tidy\tskip\tclang-tidy missing\n")
        b1 = FakeBuild(self.work, "build")
        b1.test("unit", "OK", gtest={"S": [("A", "pass")]})
        b2 = FakeBuild(self.work, "build-asan")
        b2.test("unit", "OK", gtest={"S": [("A", "pass")]})
        rc, line, out = self.line("--results", r, b1.write(), b2.write())
        self.assertEqual(line, "3 passed, 1 failed, 1 skipped", out)
        self.assertEqual(rc, 1)
        rc, line, out = self.line("--results", os.path.join(self.work, "missing.tsv"))
        self.assertEqual(line, "0 passed, 1 failed, 0 skipped", out)

    def test_ci_refuses_skips_not_on_the_allow_list(self):
        rc, partial, out = run_module(self.work, "live-x", """
            class T(unittest.TestCase):
                def test_a(self): pass
                def test_b(self): self.skipTest("ASan build")
            class U(unittest.TestCase):
                def test_c(self): self.skipTest("no scapy")
            """)
        b = FakeBuild(self.work, "build-asan")
        b.test("live-x", "OK", cases_xml=partial)
        d = b.write()
        rc, line, out = self.line("--ci", "--allow-skip", "build-asan/live-*/*.T.*", d)
        self.assertEqual(line, "1 passed, 1 failed, 1 skipped", out)
        self.assertEqual(rc, 1)
        self.assertIn("NOT ALLOWED IN CI: build-asan/live-x/__main__.U.test_c", out)
        rc, line, out = self.line(d)
        self.assertEqual(line, "1 passed, 0 failed, 2 skipped", out)
        self.assertEqual(rc, 0)

    def test_known_failure_is_listed_not_passed(self):
        rc, text, out = run_module(self.work, "known", """
            class T(unittest.TestCase):
                @unittest.expectedFailure
                def test_gap(self): self.assertEqual(1, 2, "issue 20: not decapsulated")
                @unittest.expectedFailure
                def test_fixed(self): pass
                def test_ok(self): pass
            """)
        self.assertEqual(rc, 1, out)  # the fixed gap is an unexpected success: a failure
        b = FakeBuild(self.work, "build")
        b.test("known", "FAIL", cases_xml=text)
        rc, line, out = self.line(b.write())
        self.assertEqual(line, "1 passed, 1 failed, 1 skipped", out)
        self.assertIn("build/known/__main__.T.test_gap: known failure: AssertionError: 1 != 2 : "
                      "issue 20: not decapsulated", out)

    def test_figures_listed(self):
        rc, text, out = run_module(self.work, "fig", """
            class T(unittest.TestCase):
                def test_a(self):
                    casereport.figure("ndpiReader agreement on shared captures", "604 of 606 flows")
            """)
        b = FakeBuild(self.work, "build")
        b.test("fig", "OK", cases_xml=text)
        rc, line, out = self.line(b.write())
        self.assertIn("build: ndpiReader agreement on shared captures: 604 of 606 flows", out)
        self.assertEqual(line, "1 passed, 0 failed, 0 skipped", out)

    def test_missing_build_log_fails(self):
        rc, line, out = self.line(os.path.join(self.work, "nosuch"))
        self.assertEqual(line, "0 passed, 1 failed, 0 skipped", out)
        self.assertEqual(rc, 1)


if __name__ == "__main__":
    casereport.main()
