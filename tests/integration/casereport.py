"""Runs a Python test module's unittest cases and reports every case exactly once.

Every integration, live and ops test file ends with `casereport.main()` (through harness.main()
or livelab.main()). It

- runs the module's cases verbosely;
- writes one JUnit XML file with a <testcase> per case (pass, failure, error or skipped with
  its reason) to $L7GATE_CASES_FILE when meson sets it: tools/test_summary.py counts those
  cases, not the file;
- counts a case that never ran because its setUpClass/setUpModule failed or skipped under that
  fixture's outcome, so a broken fixture is N failures and a skipped class is N skips;
- appends the last lines of l7gate's stderr (every run a test started through note_l7gate())
  to the message of a failing case;
- exits 1 when a case failed or none ran, 77 (meson's SKIP) when every case was skipped,
  else 0.

`figure(name, value)` records a measured figure (the ndpiReader agreement, for example): it is
printed, stored as a property of the JUnit file, and listed by tools/test_summary.py at the end
of the run.
"""

import os
import signal
import sys
import time
import unittest
import xml.etree.ElementTree as ET

STDERR_TAIL = 20

# (label, text or None, path or None): the l7gate runs noted so far, in order.
_runs = []
_figures = []


def note_l7gate(label, text=None, path=None):
    """Records one l7gate run's stderr: its captured `text`, or a file `path` it writes to (read
    when a failure is reported, so a still-running process shows its latest lines)."""
    _runs.append((label, text, path))


def figure(name, value):
    """A measured figure of this module: printed now, listed again at the end of the run."""
    _figures.append((name, str(value)))
    print("FIGURE: %s: %s" % (name, value), flush=True)


def stderr_tail(text=None, path=None, lines=STDERR_TAIL):
    if path is not None:
        try:
            with open(path, errors="replace") as f:
                text = f.read()
        except OSError as e:
            return "(cannot read %s: %s)" % (path, e)
    lines_ = (text or "").rstrip().splitlines()
    if not lines_:
        return "(empty)"
    return "\n".join(lines_[-lines:])


class _Result(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records = []  # (id, outcome, message, seconds); outcome: pass|fail|error|skip
        self._mark = 0
        self._t0 = time.monotonic()

    def startTest(self, test):
        self._mark = len(_runs)
        self._t0 = time.monotonic()
        super().startTest(test)

    def _exc_info_to_string(self, err, test):
        text = super()._exc_info_to_string(err, test)
        # The runs this case started; for a case that checks a module fixture's run, that one.
        runs = _runs[self._mark:] or _runs[-1:]
        for label, out, path in runs[-3:]:
            text += "\n--- l7gate stderr, last %d lines (%s):\n%s\n" % (
                STDERR_TAIL, label, stderr_tail(out, path))
        return text

    def _record(self, test, outcome, message=""):
        self.records.append((test, outcome, message, time.monotonic() - self._t0))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "fail", self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "error", self.errors[-1][1])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skip", reason)

    def addExpectedFailure(self, test, err):
        # A known gap (@expectedFailure) is listed with the skipped cases, not hidden among the
        # passes; CI accepts it only from its allow-list. Fixed, it fails (unexpected success).
        super().addExpectedFailure(test, err)
        last = (self.expectedFailures[-1][1].strip().splitlines() or [""])[-1]
        self._record(test, "skip", "known failure: " + last)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "fail", "unexpected success")

    def addSubTest(self, test, subtest, err):
        # A failing subtest fails its case (recorded once, below, by the case's own outcome).
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = "fail" if issubclass(err[0], test.failureException) else "error"
            self._record(test, kind, self._exc_info_to_string(err, test))


def _flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _flatten(t)
        else:
            yield t


def _fixture_of(holder_desc, test):
    """Whether a class or module fixture's error holder ("setUpClass (mod.Class)",
    "setUpModule (mod)") governs `test`."""
    for kind in ("setUpClass", "setUpModule"):
        if holder_desc.startswith(kind + " ("):
            scope = holder_desc[len(kind) + 2:-1]
            tid = test.id()
            return tid == scope or tid.startswith(scope + ".")
    return False


def cases(result, tests):
    """[(case id, outcome, message, seconds)], one per test of the module plus one per failing
    fixture that governs no test (a tearDownModule error, say)."""
    by_id = {}
    holders = []
    for test, outcome, message, secs in result.records:
        if isinstance(test, unittest.case._SubTest):
            test = test.test_case
        if hasattr(test, "description") and not isinstance(test, unittest.TestCase):
            holders.append((test.description, outcome, message))
            continue
        prev = by_id.get(test.id())
        # Worst outcome wins (a case with failing subtests also reports its own success).
        rank = {"error": 3, "fail": 2, "skip": 1, "pass": 0}
        if prev is None or rank[outcome] > rank[prev[0]]:
            by_id[test.id()] = (outcome, message, secs)
    out, used = [], set()
    for test in tests:
        rec = by_id.get(test.id())
        if rec is None:
            for i, (desc, outcome, message) in enumerate(holders):
                if _fixture_of(desc, test):
                    rec = (outcome, "%s: %s" % (desc, message), 0.0)
                    used.add(i)
                    break
        if rec is None:
            rec = ("error", "the case did not run (interrupted?)", 0.0)
        out.append((test.id(), rec[0], rec[1], rec[2]))
    for i, (desc, outcome, message) in enumerate(holders):
        if i not in used and outcome in ("fail", "error"):
            out.append((desc, outcome, message, 0.0))
    return out


def write_junit(path, suite_name, rows):
    ts = ET.Element("testsuite", name=suite_name, tests=str(len(rows)),
                    failures=str(sum(r[1] == "fail" for r in rows)),
                    errors=str(sum(r[1] == "error" for r in rows)),
                    skipped=str(sum(r[1] == "skip" for r in rows)))
    if _figures:
        props = ET.SubElement(ts, "properties")
        for name, value in _figures:
            ET.SubElement(props, "property", name="figure:" + name, value=value)
    for cid, outcome, message, secs in rows:
        cls, _, name = cid.rpartition(".")
        tc = ET.SubElement(ts, "testcase", classname=cls, name=name, time="%.3f" % secs)
        if outcome == "skip":
            ET.SubElement(tc, "skipped", message=message[:2000])
        elif outcome in ("fail", "error"):
            el = ET.SubElement(tc, "failure" if outcome == "fail" else "error",
                               message=(message.strip().splitlines() or [""])[-1][:500])
            el.text = message[-20000:]
    tmp = path + ".tmp"
    root = ET.Element("testsuites")
    root.append(ts)
    ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
    os.replace(tmp, path)


def main(skip_all=""):
    """Runs the __main__ module's cases and exits (see the module doc). skip_all: a reason to
    report every case skipped without running any (the whole module cannot run here)."""
    out_path = os.environ.get("L7GATE_CASES_FILE", "")
    if out_path:
        os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
        if os.path.exists(out_path):
            os.unlink(out_path)  # a run that dies leaves no stale report behind
    # meson's timeout sends SIGTERM: turn it into SystemExit so cleanups run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    module = sys.modules["__main__"]
    loader = unittest.TestLoader()
    names = [a for a in sys.argv[1:] if not a.startswith("-")]
    suite = loader.loadTestsFromNames(names, module) if names else loader.loadTestsFromModule(module)
    tests = list(_flatten(suite))
    runner = unittest.TextTestRunner(verbosity=2, resultclass=_Result)
    if skip_all:
        print("SKIP: " + skip_all, flush=True)
        rows = [(t.id(), "skip", skip_all, 0.0) for t in tests]
    else:
        result = runner.run(suite)
        rows = cases(result, tests)
    suite_name = os.environ.get("L7GATE_TEST_NAME") or os.path.splitext(os.path.basename(module.__file__))[0]
    if out_path:
        write_junit(out_path, suite_name, rows)
    bad = [r for r in rows if r[1] in ("fail", "error")]
    skipped = [r for r in rows if r[1] == "skip"]
    print("%s: %d cases: %d passed, %d failed, %d skipped" % (
        suite_name, len(rows), len(rows) - len(bad) - len(skipped), len(bad), len(skipped)))
    for cid, _, message, _ in skipped:
        print("  skipped %s: %s" % (cid, message))
    for name, value in _figures:
        print("FIGURE: %s: %s" % (name, value))
    sys.stdout.flush()
    if bad or not rows:
        sys.exit(1)
    sys.exit(77 if len(skipped) == len(rows) else 0)
