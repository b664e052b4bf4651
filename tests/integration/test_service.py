#!/usr/bin/python3
"""Operations: the systemd unit, the shipped config file, pre-flight reports and the man page.

    L7GATE_BIN=build/l7gate L7GATE_UNIT=build/config/l7gate.service L7GATE_MAN=build/l7gate.8 \
        /usr/bin/python3 tests/integration/test_service.py -v

- the unit as meson generates it passes `systemd-analyze verify` (with ExecStart pointed at
  the built binary) and carries reload, restart and hardening settings; a typo in it is caught;
- /etc/l7gate/l7gate.conf (config/l7gate.conf) is read the way systemd reads it and its options
  are accepted by l7gate: pre-flight over a faked machine reports the problems of that exact
  configuration, one line each with the fix, and exits 2 before EAL;
- --preflight on virtual devices passes, and a start with a missing vdev file stops with one line;
- every option of --help is in the generated man page l7gate(8).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import BIN, require_binary, write_pcap, l7gate_stderr_lines  # noqa: E402

SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
UNIT = os.environ.get("L7GATE_UNIT", "")
MAN = os.environ.get("L7GATE_MAN", "")
VERSION = os.environ.get("L7GATE_VERSION", "")
CONF = os.path.join(SRC, "config", "l7gate.conf")


def read_conf(path):
    """The variables of an EnvironmentFile, read by a shell as systemd would assign them."""
    p = subprocess.run(["/bin/sh", "-c", 'set -a; . "$1"; printf "%s\\n%s\\n" "$L7GATE_EAL_ARGS" "$L7GATE_ARGS"',
                        "sh", path], capture_output=True, text=True, check=True)
    eal, args = p.stdout.split("\n")[:2]
    return eal.split(), args.split()


def unit_settings(text):
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def verify_unit(path):
    """(exit code, complaints about this unit) of systemd-analyze verify."""
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", path], capture_output=True, text=True)
    name = os.path.basename(path)
    complaints = [ln for ln in (p.stdout + p.stderr).splitlines() if name in ln or path in ln]
    return p.returncode, complaints


class FakeMachine:
    """A directory standing for / with the sysfs/procfs files pre-flight reads."""

    def __init__(self, root):
        self.root = root
        self.write("/proc/mounts", "nodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n")
        self.write("/sys/devices/system/cpu/online", "0-15\n")
        self.write("/sys/devices/system/cpu/isolated", "\n")

    def write(self, path, text):
        full = self.root + path
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)

    def link(self, path, target):
        full = self.root + path
        os.makedirs(os.path.dirname(full), exist_ok=True)
        os.symlink(target, full)

    def hugepages(self, free, nodes):
        self.write("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "%d\n" % free)
        for n, (cpus, nfree) in enumerate(nodes):
            base = "/sys/devices/system/node/node%d" % n
            self.write(base + "/cpulist", cpus + "\n")
            self.write(base + "/hugepages/hugepages-2048kB/free_hugepages", "%d\n" % nfree)

    def nic(self, addr, driver, node, iface=None, iommu=True):
        base = "/sys/bus/pci/devices/" + addr
        self.write(base + "/numa_node", "%d\n" % node)
        self.write(base + "/vendor", "0x8086\n")
        if driver:
            self.link(base + "/driver", "../../../bus/pci/drivers/" + driver)
        if iface:
            self.write(base + "/net/%s/operstate" % iface, "up\n")
        if iommu:
            self.link(base + "/iommu_group", "../../../kernel/iommu_groups/3")


class ServiceTest(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="l7gate-service-")

    def tearDown(self):
        shutil.rmtree(self.work, ignore_errors=True)

    # -- the unit ---------------------------------------------------------------------------

    def unit_text(self):
        if not UNIT or not os.path.exists(UNIT):
            self.skipTest("L7GATE_UNIT does not name the generated l7gate.service")
        with open(UNIT) as f:
            return f.read()

    def test_unit_verifies(self):
        text = self.unit_text()
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze missing (apt-get install systemd)")
        require_binary(self)
        # The unit names the installed path; verify it against the binary just built.
        local = re.sub(r"^ExecStart=\S+", "ExecStart=" + os.path.abspath(BIN), text, flags=re.M)
        path = os.path.join(self.work, "l7gate.service")
        with open(path, "w") as f:
            f.write(local)
        rc, complaints = verify_unit(path)
        self.assertEqual((rc, complaints), (0, []), "systemd-analyze verify")
        # The check has teeth: a misspelt hardening key and a bad Restart= value are reported.
        bad = local.replace("ProtectSystem=strict", "ProtectSytem=strict").replace(
            "Restart=on-failure", "Restart=sometimes")
        with open(path, "w") as f:
            f.write(bad)
        rc, complaints = verify_unit(path)
        self.assertEqual(len(complaints), 2, "verify must flag both mistakes: %r" % complaints)

    def test_unit_settings(self):
        s = unit_settings(self.unit_text())
        self.assertEqual(s["Type"], ["simple"])
        self.assertEqual(len(s["EnvironmentFile"]), 1)
        self.assertTrue(s["EnvironmentFile"][0].endswith("/l7gate/l7gate.conf"), s["EnvironmentFile"])
        self.assertRegex(s["ExecStart"][0], r"^/\S+/l7gate \$L7GATE_EAL_ARGS -- \$L7GATE_ARGS$")
        self.assertEqual(s["ExecReload"], ["/bin/kill -HUP $MAINPID"])
        self.assertEqual(s["Restart"], ["on-failure"])
        self.assertEqual(s["RestartPreventExitStatus"], ["2"])  # config errors do not loop
        self.assertEqual(s["StandardError"], ["journal"])
        for key, val in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                         ("PrivateTmp", "yes"), ("LimitMEMLOCK", "infinity")]:
            self.assertEqual(s.get(key), [val], key)
        caps = s["CapabilityBoundingSet"][0].split()
        self.assertIn("CAP_IPC_LOCK", caps)
        self.assertNotIn("CAP_SYS_MODULE", caps)
        self.assertNotIn("PrivateDevices", s, "DPDK needs /dev/vfio and hugepages")
        self.assertIn("multi-user.target", s["WantedBy"])

    # -- the config file and pre-flight -------------------------------------------------------

    def run_bin(self, args, timeout=60):
        p = subprocess.run([BIN] + args, capture_output=True, text=True, errors="replace", timeout=timeout)
        harness.note_l7gate(" ".join(args[-3:]), text=p.stderr)
        return p

    def test_conf_preflight_reports_unbound_nics(self):
        require_binary(self)
        eal, args = read_conf(CONF)
        pci = [eal[i + 1] for i, a in enumerate(eal) if a == "-a"]
        self.assertEqual(len(pci), 2, "the shipped config names one pair of PCI ports: %r" % eal)
        self.assertIn("--policy", args)
        self.assertEqual(args[args.index("--policy") + 1], "/etc/l7gate/policy.yaml")
        # A two-socket machine: NICs on node 1 still bound to the kernel's ice driver, the
        # configured worker cores on node 0, no free hugepages.
        m = FakeMachine(os.path.join(self.work, "root"))
        m.hugepages(0, [("0-7", 0), ("8-15", 0)])
        m.nic(pci[0], "ice", 1, iface="enp175s0f0")
        m.nic(pci[1], "ice", 1, iface="enp175s0f1")
        p = self.run_bin(eal + ["--"] + args + ["--preflight", "--preflight-root", m.root])
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        lines = p.stdout.splitlines()
        for i, addr in enumerate(pci):
            want = ("preflight: FATAL pci: %s (enp175s0f%d) is bound to the kernel driver ice; DPDK cannot use it"
                    " -- fix: ip link set dev enp175s0f%d down && modprobe vfio-pci && dpdk-devbind.py"
                    " --bind=vfio-pci %s" % (addr, i, i, addr))
            self.assertIn(want, lines)
        hp = [ln for ln in lines if ln.startswith("preflight: FATAL hugepages: no free hugepages")]
        self.assertEqual(len(hp), 1, lines)
        self.assertIn("-- fix: echo ", hp[0])
        self.assertIn("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", hp[0])
        numa = [ln for ln in lines if ln.startswith("preflight: WARNING numa: worker CPU")]
        self.assertEqual(len(numa), 2, lines)  # -l 1-3: workers on CPUs 2 and 3 of node 0
        self.assertIn("take cores of node 1 (-l 8,9,10)", numa[0])
        self.assertEqual(lines[-1], "preflight: 3 fatal, 2 warning(s)")
        self.assertNotIn("EAL", p.stderr, "pre-flight stops before EAL on a fatal finding")

        # Fixed: bound to vfio-pci, hugepages on node 1, workers on node 1. The system part
        # passes (the run then goes on to EAL, which finds no such device on this machine;
        # --in-memory keeps it from leaving runtime files).
        m2 = FakeMachine(os.path.join(self.work, "root2"))
        m2.hugepages(1024, [("0-7", 0), ("8-15", 1024)])
        m2.nic(pci[0], "vfio-pci", 1)
        m2.nic(pci[1], "vfio-pci", 1)
        eal2 = [("8-10" if a == "1-3" else a) for a in eal] + ["--in-memory"]
        p = self.run_bin(eal2 + ["--"] + args + ["--preflight", "--metrics", "off", "--preflight-root", m2.root])
        out = p.stdout.splitlines()
        self.assertFalse([ln for ln in out if " FATAL " in ln or " WARNING " in ln], out)
        self.assertIn("preflight: OK numa: ports, their mbuf pool and the workers on node 1", out)

    def test_preflight_on_vdevs(self):
        require_binary(self)
        empty = os.path.join(self.work, "empty.pcap")
        write_pcap(empty, [])
        vdevs = []
        for port in range(2):
            vdevs += ["--vdev", "net_pcap%d,rx_pcap=%s,tx_pcap=%s" % (port, empty,
                                                                      os.path.join(self.work, "out%d.pcap" % port))]
        common = ["--no-huge", "--no-pci", "-m", "512", "-l", "0-1", "--log-level=*:warning",
                  "--file-prefix", "l7gsvc%d" % os.getpid()]
        try:
            p = self.run_bin(common + vdevs + ["--", "--preflight", "--metrics", "off", "--link-timeout", "1"])
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            out = p.stdout.splitlines()
            for port in range(2):
                self.assertIn("preflight: OK vdev: net_pcap%d: its files and interfaces are there" % port, out)
                self.assertTrue(any(ln.startswith("preflight: OK link: port %d (net_pcap%d, net_pcap): up" % (port, port))
                                    for ln in out), out)
                self.assertIn("preflight: OK mtu: port %d (net_pcap%d, net_pcap): MTU 1500 fits one mbuf" % (port, port),
                              out)
            self.assertEqual(out[-1], "preflight: 0 fatal, 0 warning(s)")
            self.assertNotIn("l7gate 0", p.stdout, "--preflight must not start forwarding")

            # At start: a missing capture stops l7gate with one line naming it, exit 2.
            bad = common + ["--vdev", "net_pcap0,rx_pcap=%s/missing.pcap" % self.work, vdevs[3], "--",
                            "--metrics", "off"]
            p = self.run_bin(bad)
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            lines = l7gate_stderr_lines(p.stderr)
            self.assertEqual(len(lines), 1, lines)
            self.assertRegex(lines[0], r"^l7gate: preflight: FATAL vdev: net_pcap0: rx_pcap \S+/missing.pcap cannot be "
                                       r"read: No such file or directory -- fix: ")
        finally:
            shutil.rmtree("/var/run/dpdk/l7gsvc%d" % os.getpid(), ignore_errors=True)

    def test_version(self):
        require_binary(self)
        p = self.run_bin(["--version"])
        self.assertEqual(p.returncode, 0)
        self.assertEqual(p.stdout.strip(), "l7gate " + (VERSION or p.stdout.split()[-1]))
        self.assertRegex(p.stdout.strip(), r"^l7gate \d+\.\d+\.\d+")

    # -- the man page -----------------------------------------------------------------------------

    def test_man_page_has_every_help_option(self):
        require_binary(self)
        if not MAN or not os.path.exists(MAN):
            self.skipTest("L7GATE_MAN does not name the generated l7gate.8")
        with open(MAN) as f:
            man = f.read()
        check_man_against_help(self, man, self.run_bin(["--help"]).stdout)
        if shutil.which("man"):
            p = subprocess.run(["man", "--warnings", "-l", MAN], capture_output=True, text=True,
                               env=dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stderr.strip(), "", "groff warnings in l7gate.8")
            self.assertIn("--preflight", p.stdout)


def check_man_against_help(test, man, help_text):
    opts = re.findall(r"^  (?:-\w, )?(--[a-z][a-z0-9-]*)", help_text, flags=re.M)
    test.assertGreater(len(opts), 30, "options in --help")
    missing = [o for o in opts if "\\fB" + o.replace("-", "\\-") + "\\fR" not in man]
    test.assertEqual(missing, [], "options of --help missing from the man page")


if __name__ == "__main__":
    harness.main()
