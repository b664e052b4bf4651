#!/usr/bin/python3
"""The closing line of tools/test.sh: "N passed, N failed, N skipped", every test case once.

    tools/test_summary.py [--ci] [--allow-skip PATTERN]... [--results FILE]... BUILD_DIR...

What is a case:
- a GoogleTest case: meson runs a `protocol: gtest` test with --gtest_output=xml:<name>.xml
  in the build directory; each <testcase> there is one case (single-case suites too);
- a Python unittest case: casereport.py writes <build>/meson-logs/cases/<name>.xml (meson sets
  L7GATE_CASES_FILE); each <testcase> there is one case;
- any other meson test (no finer cases) is one case, from its result in testlog.json;
- each line of a --results FILE (TAB separated: name, pass|fail|skip, detail), written by the
  steps tools/test.sh runs outside meson (callgrind budgets, fuzz targets, clang-tidy).
A case file older than its meson test's start is stale and ignored. A meson test that failed
(FAIL, TIMEOUT, ERROR) although none of its cases did (a crash after the report, a sanitizer
error at exit, a killed run with no report) adds one failed case of its own, so a failure is
never lost and never counted twice.

Skipped cases are listed by name with their reason at the end. With --ci, a skipped case whose
label (BUILD/TEST/CASE) matches no --allow-skip pattern (fnmatch) counts as failed. Figures that
tests recorded (casereport.figure) are listed before the line. Exits 1 when anything failed or
when no case passed.
"""
import argparse
import fnmatch
import json
import os
import sys
import xml.etree.ElementTree as ET

ALIASES = {"build-release": "build"}


def junit_cases(path):
    """[(case name, outcome, message)] of a JUnit file (GoogleTest's or casereport's), and its
    figures [(name, value)]."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    cases, figures = [], []
    for s in suites:
        for p in s.iter("property"):
            name = p.get("name", "")
            if name.startswith("figure:"):
                figures.append((name[7:], p.get("value", "")))
        for c in s.findall("testcase"):
            name = "%s.%s" % (c.get("classname") or s.get("name", ""), c.get("name", ""))
            failure = c.find("failure")
            if failure is None:
                failure = c.find("error")
            skipped = c.find("skipped")
            if failure is not None:
                text_lines = (failure.text or "").strip().splitlines()
                cases.append((name, "fail", failure.get("message") or (text_lines[-1] if text_lines else "")))
            elif skipped is not None:
                msg = skipped.get("message") or (skipped.text or "").strip()
                cases.append((name, "skip", " ".join(msg.split("\n"))))
            elif c.get("status") == "notrun" or c.get("result") == "suppressed":
                cases.append((name, "skip", "disabled"))
            else:
                cases.append((name, "pass", ""))
    return cases, figures


def meson_tests(builddir):
    """[(test name, result, start time, return code)] from builddir's testlog.json, or None."""
    log = os.path.join(builddir, "meson-logs", "testlog.json")
    if not os.path.exists(log):
        return None
    out = {}
    with open(log, errors="replace") as f:
        for line in f:
            line = line.strip().strip("\0")
            if not line:
                continue
            try:
                t = json.loads(line)
            except ValueError:
                out["(unreadable testlog line)"] = ("(unreadable testlog line)", "ERROR", 0, None)
                continue
            name = t["name"].split(" / ")[-1]
            out[name] = (name, t.get("result", "ERROR"), t.get("starttime", 0), t.get("returncode"))
    return list(out.values())


def fresh(path, start):
    return os.path.exists(path) and os.path.getmtime(path) >= start - 1


def collect(builddirs, results_files):
    """[(label, outcome, message)] over every case, and the figures."""
    rows, figures = [], []
    for arg in builddirs:
        d = ALIASES.get(arg, arg)
        tag = os.path.basename(os.path.normpath(d))
        tests = meson_tests(d)
        if tests is None:
            rows.append((tag, "fail", "no meson test log in %s (did its tests run?)" % d))
            continue
        for name, result, start, rc in tests:
            cases = None
            for f in (os.path.join(d, name + ".xml"), os.path.join(d, "meson-logs", "cases", name + ".xml")):
                if fresh(f, start):
                    try:
                        cases, figs = junit_cases(f)
                    except ET.ParseError as e:
                        rows.append(("%s/%s" % (tag, name), "fail", "unreadable case report %s: %s" % (f, e)))
                        cases, figs = [], []
                    figures += [("%s: %s" % (tag, n), v) for n, v in figs]
                    break
            if cases is None:
                outcome = {"OK": "pass", "EXPECTEDFAIL": "pass", "SKIP": "skip"}.get(result, "fail")
                msg = "" if outcome == "pass" else "meson: %s (exit %s)" % (result, rc)
                rows.append(("%s/%s" % (tag, name), outcome, msg))
                continue
            rows += [("%s/%s/%s" % (tag, name, c), o, m) for c, o, m in cases]
            if result not in ("OK", "SKIP", "EXPECTEDFAIL") and not any(o == "fail" for _, o, _ in cases):
                rows.append(("%s/%s" % (tag, name), "fail",
                             "meson: %s (exit %s) although no case failed" % (result, rc)))
            if not cases:
                rows.append(("%s/%s" % (tag, name), "fail", "its case report lists no case"))
    for path in results_files:
        if not os.path.exists(path):
            rows.append((path, "fail", "results file missing"))
            continue
        with open(path, errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if not parts[0]:
                    continue
                outcome = parts[1] if len(parts) > 1 and parts[1] in ("pass", "fail", "skip") else "fail"
                rows.append((parts[0], outcome, parts[2] if len(parts) > 2 else ""))
    return rows, figures


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ci", action="store_true", help="a skipped case not on the allow-list fails")
    ap.add_argument("--allow-skip", action="append", default=[], metavar="PATTERN")
    ap.add_argument("--results", action="append", default=[], metavar="FILE")
    ap.add_argument("builddirs", nargs="*")
    a = ap.parse_args(argv)
    rows, figures = collect(a.builddirs, a.results)

    skipped = [r for r in rows if r[1] == "skip"]
    refused = []
    if a.ci:
        refused = [r for r in skipped if not any(fnmatch.fnmatchcase(r[0], p) for p in a.allow_skip)]
    if skipped:
        print("skipped cases (%d):" % len(skipped))
        for label, _, msg in skipped:
            print("  %s%s: %s" % ("NOT ALLOWED IN CI: " if (label, "skip", msg) in refused else "", label, msg))
    failed = [r for r in rows if r[1] == "fail"]
    if failed:
        print("failed cases (%d):" % len(failed))
        for label, _, msg in failed:
            print("  %s: %s" % (label, msg[:300]))
    if figures:
        print("figures:")
        for name, value in figures:
            print("  %s: %s" % (name, value))
    n_pass = sum(r[1] == "pass" for r in rows)
    n_fail = len(failed) + len(refused)
    n_skip = len(skipped) - len(refused)
    print("%d passed, %d failed, %d skipped" % (n_pass, n_fail, n_skip))
    return 1 if n_fail or n_pass == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
