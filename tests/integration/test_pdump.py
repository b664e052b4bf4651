#!/usr/bin/python3
"""Integration test: dpdk-dumpcap captures on a running l7gate's port (rte_pdump_init).

    L7GATE_BIN=build/l7gate /usr/bin/python3 tests/integration/test_pdump.py -v

dpdk-dumpcap is a DPDK secondary process: it needs the primary's shared memory, so l7gate
runs here with hugepages (not --no-huge / --in-memory) on two net_null vdevs (net_null
receives an endless stream of 64-byte frames). The test asks dumpcap for 100 packets of
port net_null0 and checks the pcapng file holds them while l7gate keeps forwarding. When
the machine has too few free 2 MiB pages the test raises vm.nr_hugepages for its run and
restores it; without root or dpdk-dumpcap it is skipped with the reason.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import require_binary  # noqa: E402

DUMPCAP = "/usr/bin/dpdk-dumpcap"
PAGES = 128  # -m 256 in 2 MiB pages
NR = "/proc/sys/vm/nr_hugepages"


def free_pages():
    with open("/proc/meminfo") as f:
        for ln in f:
            if ln.startswith("HugePages_Free:"):
                return int(ln.split()[1])
    return 0


def pcapng_packets(path):
    """Enhanced packet blocks in a pcapng file."""
    with open(path, "rb") as f:
        d = f.read()
    off, n = 0, 0
    while off + 8 <= len(d):
        typ, length = struct.unpack_from("<II", d, off)
        if length < 12:
            raise AssertionError("%s: bad block length %d at %d" % (path, length, off))
        n += typ == 6
        off += length
    return n


class PdumpTest(unittest.TestCase):
    def setUp(self):
        require_binary(self)
        if not os.access(DUMPCAP, os.X_OK):
            self.skipTest("%s missing (Debian package dpdk)" % DUMPCAP)
        self.work = tempfile.mkdtemp(prefix="l7g-pdump-")
        self.addCleanup(shutil.rmtree, self.work, True)
        if free_pages() < PAGES:
            with open(NR) as f:
                old = int(f.read())
            try:
                with open(NR, "w") as f:
                    f.write(str(old + PAGES - free_pages()))
            except OSError as e:
                self.skipTest("needs %d free hugepages and cannot reserve them: %s" % (PAGES, e))

            def restore():
                with open(NR, "w") as f:
                    f.write(str(old))
            self.addCleanup(restore)
            if free_pages() < PAGES:
                self.skipTest("needs %d free 2 MiB hugepages, %d free" % (PAGES, free_pages()))

    def test_dumpcap_captures_a_port(self):
        prefix = "l7gpdump%d" % os.getpid()
        stats = os.path.join(self.work, "stats.json")
        cmd = [harness.BIN, harness.lcores_arg(2), "-m", "256", "--no-pci", "--file-prefix", prefix,
               "--log-level=*:warning", "--vdev", "net_null0", "--vdev", "net_null1", "--",
               "--metrics", "off", "--duration", "6", "--stats-json", stats]
        gate = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(shutil.rmtree, "/var/run/dpdk/" + prefix, True)
        try:
            time.sleep(2.5)
            self.assertIsNone(gate.poll(), "l7gate stopped early")
            cap = os.path.join(self.work, "cap.pcapng")
            d = subprocess.run([DUMPCAP, "--file-prefix", prefix, "-i", "net_null0", "-c", "100", "-w", cap],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
            self.assertEqual(d.returncode, 0, d.stdout[-2000:])
            n = pcapng_packets(cap)
            print("dpdk-dumpcap captured %d packets of net_null0" % n)
            self.assertGreaterEqual(n, 100)
        finally:
            out, err = gate.communicate(timeout=60)
        self.assertEqual(gate.returncode, 0, err[-2000:])
        with open(stats) as f:
            st = json.load(f)
        t = st["totals"]
        self.assertGreater(t["rx_packets"], 0)
        self.assertEqual(t["rx_packets"], t["tx_packets"] + t["dropped"])


if __name__ == "__main__":
    harness.main()
