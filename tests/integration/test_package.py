#!/usr/bin/python3
"""The Debian package: built from the tree, checked, installed on this machine, upgraded, purged.

    L7GATE_BIN=build/l7gate L7GATE_VERSION=0.1.0 /usr/bin/python3 tests/integration/test_package.py -v

Runs in the release build only (about two minutes of compiling on two cores); a sanitizer build
exits 77 (skipped) with the reason, and so does a machine without root or Debian's packaging
tools (tools/install-deps.sh installs them), or one where an l7gate package is already
installed (the test will not replace an operator's package).

1. tools/build-deb.sh produces l7gate_<version>_amd64.deb, version = meson's project() version;
   its Depends come from dpkg-shlibdeps (versioned library packages), /etc/l7gate files are
   conffiles, and lintian reports no error.
2. dpkg -i installs it: `l7gate --version`, `l7gate --check` on the shipped policy, the man page
   lists every --help option, `systemd-analyze verify` passes on the installed unit.
3. An edited policy survives reinstalling the package (the upgrade path).
4. dpkg --purge removes every file it installed, /etc/l7gate and /etc/logrotate.d/l7gate included.
"""

import glob
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import BIN, TOOLS  # noqa: E402
from test_service import check_man_against_help, verify_unit  # noqa: E402

VERSION = os.environ.get("L7GATE_VERSION", "")
SANITIZE = os.environ.get("L7GATE_SANITIZE", "none")


def why_not():
    if SANITIZE not in ("", "none"):
        return "package test runs in the release build only (this build: b_sanitize=%s)" % SANITIZE
    if os.geteuid() != 0:
        return "installing a package needs root"
    for tool, pkg in [("dpkg-buildpackage", "dpkg-dev"), ("dh", "debhelper"), ("lintian", "lintian"),
                      ("fakeroot", "fakeroot"), ("systemd-analyze", "systemd")]:
        if shutil.which(tool) is None:
            return "%s missing (apt-get install %s, or tools/install-deps.sh)" % (tool, pkg)
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "l7gate"], capture_output=True, text=True)
    if "installed" in p.stdout and "not-installed" not in p.stdout:
        return "an l7gate package is already installed here; not touching it"
    return ""


def dpkg(*args):
    """dpkg, waiting for the lock when apt runs elsewhere on the machine."""
    for _ in range(60):
        p = subprocess.run(["dpkg"] + list(args), capture_output=True, text=True,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if p.returncode == 0 or "lock" not in p.stderr:
            return p
        time.sleep(5)
    return p


class PackageTest(unittest.TestCase):
    deb = None
    out = None

    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp(prefix="l7gate-deb-")
        t0 = time.time()
        p = subprocess.run(["bash", os.path.join(TOOLS, "build-deb.sh"), cls.out], capture_output=True,
                           text=True, timeout=800)
        cls.build_seconds = time.time() - t0
        cls.build = p
        if p.returncode == 0:
            cls.deb = p.stdout.strip().splitlines()[-1]
        print("build-deb: %.0f s, %s" % (cls.build_seconds, cls.deb), file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        if subprocess.run(["dpkg-query", "-W", "l7gate"], capture_output=True).returncode == 0:
            dpkg("--purge", "l7gate")
        shutil.rmtree(cls.out, ignore_errors=True)

    def setUp(self):
        self.assertEqual(self.build.returncode, 0, "tools/build-deb.sh failed:\n" + self.build.stderr[-4000:])

    def field(self, name):
        return subprocess.run(["dpkg-deb", "-f", self.deb, name], capture_output=True, text=True,
                              check=True).stdout.strip()

    def test_1_package(self):
        version = VERSION or subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.split()[-1]
        self.assertEqual(os.path.basename(self.deb), "l7gate_%s_amd64.deb" % version)
        self.assertEqual(self.field("Version"), version)
        depends = self.field("Depends")
        # dpkg-shlibdeps' work: versioned packages of the libraries the binary links.
        for lib in ("libc6 (>= ", "libndpi4.2 (>= ", "libhyperscan5 (>= ", "librte-ethdev23 (>= ",
                    "libyaml-cpp0.7 (>= "):
            self.assertIn(lib, depends)
        self.assertIn("librte-mempool-ring23", depends)  # DPDK's plugin, from debian/rules
        files = subprocess.run(["dpkg-deb", "-c", self.deb], capture_output=True, text=True,
                               check=True).stdout
        names = {ln.split()[-1].lstrip(".") for ln in files.splitlines()}
        for path in ("/usr/sbin/l7gate", "/usr/share/man/man8/l7gate.8.gz", "/etc/l7gate/l7gate.conf",
                     "/etc/l7gate/policy.yaml", "/etc/l7gate/lists/bad-ips.txt", "/lib/systemd/system/l7gate.service",
                     "/usr/share/doc/l7gate/examples/policy.yaml", "/usr/share/doc/l7gate/examples/demo-policy.yaml",
                     "/usr/share/l7gate/grafana/l7gate.json",
                     "/usr/share/l7gate/prometheus.yml", "/usr/share/doc/l7gate/copyright",
                     "/etc/logrotate.d/l7gate"):
            self.assertIn(path, names)
        self.assertTrue(any(n.startswith("/usr/share/doc/l7gate/deployment.md") for n in names), names)
        info = tempfile.mkdtemp(dir=self.out)
        subprocess.run(["dpkg-deb", "-e", self.deb, info], check=True)
        with open(os.path.join(info, "conffiles")) as f:
            conffiles = f.read().split()
        self.assertIn("/etc/l7gate/l7gate.conf", conffiles)
        self.assertIn("/etc/l7gate/policy.yaml", conffiles)
        self.assertIn("/etc/logrotate.d/l7gate", conffiles)  # an operator's edits survive upgrades
        # The service is neither enabled nor started by the installation (the ports need
        # configuring first).
        with open(os.path.join(info, "postinst")) as f:
            postinst = f.read()
        self.assertNotIn("deb-systemd-invoke start", postinst)
        p = subprocess.run(["lintian", "--fail-on", "error", "--no-tag-display-limit", self.deb],
                           capture_output=True, text=True)
        errors = [ln for ln in p.stdout.splitlines() if ln.startswith("E:")]
        self.assertEqual((p.returncode, errors), (0, []), "lintian:\n" + p.stdout + p.stderr)

    def test_2_install_check_upgrade_purge(self):
        p = dpkg("-i", self.deb)
        self.assertEqual(p.returncode, 0, "dpkg -i:\n" + p.stdout + p.stderr)
        try:
            self.installed_checks()
            self.upgrade_keeps_policy()
        finally:
            p = dpkg("--purge", "l7gate")
        self.assertEqual(p.returncode, 0, "dpkg --purge:\n" + p.stdout + p.stderr)
        self.assertNotEqual(subprocess.run(["dpkg-query", "-W", "-f=${Status}", "l7gate"], capture_output=True,
                                           text=True).stdout.strip(), "install ok installed")
        left = [path for path in ("/usr/sbin/l7gate", "/etc/l7gate", "/lib/systemd/system/l7gate.service",
                                  "/usr/share/doc/l7gate", "/usr/share/l7gate", "/usr/share/man/man8/l7gate.8.gz",
                                  "/etc/logrotate.d/l7gate")
                if os.path.lexists(path)]
        self.assertEqual(left, [], "left behind by dpkg --purge")

    def installed_checks(self):
        exe = "/usr/sbin/l7gate"
        p = subprocess.run([exe, "--version"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), "l7gate " + self.field("Version"))
        p = subprocess.run([exe, "--check", "--policy", "/etc/l7gate/policy.yaml"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"^/etc/l7gate/policy.yaml: OK: ")
        # Safe shipped defaults (issue 20): every policy of the installed default only monitors.
        m = re.search(r"(\d+) policies, .*, (\d+) in monitor mode$", p.stdout.strip())
        self.assertIsNotNone(m, p.stdout)
        self.assertEqual(m.group(1), m.group(2), "the installed default policy runs in monitor mode: " + p.stdout)
        p = subprocess.run([exe, "--check", "--policy", "/usr/share/doc/l7gate/examples/policy.yaml"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # The demo policy ships as an example, enforcing.
        p = subprocess.run([exe, "--check", "--policy", "/usr/share/doc/l7gate/examples/demo-policy.yaml"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout.strip(), r", 0 in monitor mode$")
        with gzip.open("/usr/share/man/man8/l7gate.8.gz", "rt") as f:
            check_man_against_help(self, f.read(), subprocess.run([exe, "--help"], capture_output=True,
                                                                  text=True).stdout)
        rc, complaints = verify_unit("/lib/systemd/system/l7gate.service")
        self.assertEqual((rc, complaints), (0, []), "systemd-analyze verify of the installed unit")
        with open("/lib/systemd/system/l7gate.service") as f:
            unit = f.read()
        self.assertIn("ExecStart=/usr/sbin/l7gate $L7GATE_EAL_ARGS -- $L7GATE_ARGS", unit)
        self.assertIn("EnvironmentFile=/etc/l7gate/l7gate.conf", unit)

    def upgrade_keeps_policy(self):
        marker = "# edited by the operator %d\n" % os.getpid()
        with open("/etc/l7gate/policy.yaml", "a") as f:
            f.write(marker)
        p = dpkg("-i", self.deb)
        self.assertEqual(p.returncode, 0, "reinstall:\n" + p.stdout + p.stderr)
        with open("/etc/l7gate/policy.yaml") as f:
            self.assertTrue(f.read().endswith(marker), "the operator's policy survives the upgrade")
        p = subprocess.run(["/usr/sbin/l7gate", "--check", "--policy", "/etc/l7gate/policy.yaml"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


if __name__ == "__main__":
    # Every case is reported skipped, with the reason, when the package cannot be built here.
    harness.casereport.main(skip_all=why_not())
