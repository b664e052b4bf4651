#!/usr/bin/python3
"""Prints "N passed, N failed, N skipped" over the meson test logs of the given builds.

GoogleTest executables count per test case (from their JUnit XML), other tests count as one.
A build directory argument is "build-release" or "build-asan" (mapped to build/ and
build-asan/). Exits 1 when anything failed or when no test ran.
"""
import json
import os
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
for arg in sys.argv[1:]:
    d = {"build-release": "build", "build-asan": "build-asan"}.get(arg, arg)
    log = os.path.join(d, "meson-logs", "testlog.json")
    if not os.path.exists(log):
        print(f"test-summary: no test log in {d}")
        failed += 1
        continue
    gtest_counted = set()
    junit = os.path.join(d, "meson-logs", "testlog.junit.xml")
    if os.path.exists(junit):
        for suite in ET.parse(junit).getroot().iter("testsuite"):
            name = suite.get("name", "")
            cases = list(suite.iter("testcase"))
            # meson writes one <testsuite> per gtest executable, with its cases inside
            if len(cases) > 1 or any("." in (c.get("classname") or "") for c in cases):
                for c in cases:
                    if c.find("failure") is not None or c.find("error") is not None:
                        failed += 1
                    elif c.find("skipped") is not None:
                        skipped += 1
                    else:
                        passed += 1
                gtest_counted.add(name.split(".")[-1])
    with open(log) as f:
        for line in f:
            line = line.strip().strip("\0")
            if not line:
                continue
            try:
                t = json.loads(line)
            except ValueError:
                print(f"test-summary: unreadable line in {log} (two meson runs wrote it?)")
                continue
            if t["name"] in gtest_counted:
                continue
            r = t["result"]
            if r in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif r == "SKIP":
                skipped += 1
            else:
                failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
