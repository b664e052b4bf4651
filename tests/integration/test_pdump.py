#!/usr/bin/python3
"""Integration test: dpdk-dumpcap captures on a running l7gate's port (rte_pdump_init).

    L7GATE_BIN=build/l7gate /usr/bin/python3 tests/integration/test_pdump.py -v

dpdk-dumpcap is a DPDK secondary process: it needs the primary's shared memory, so l7gate
runs here with hugepages (not --no-huge / --in-memory) on two net_null vdevs (net_null
receives an endless stream of 64-byte frames). The test asks dumpcap for 100 packets of
port net_null0 and checks the pcapng file holds them while l7gate keeps forwarding. On a
fresh machine (no hugetlbfs mounted, vm.nr_hugepages 0) the test mounts a hugetlbfs on a
private directory and reserves the 2 MiB pages it needs (harness.hugepages); both are put back
when it ends, also when it fails. Without root or dpdk-dumpcap it is skipped with the reason.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import require_binary  # noqa: E402

DUMPCAP = "/usr/bin/dpdk-dumpcap"
PAGES = 128  # -m 256 in 2 MiB pages


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
        ldd = subprocess.run(["ldd", harness.BIN], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if "libasan" in ldd.stdout:
            # dpdk-dumpcap (not sanitized) must map the primary's memory at the primary's
            # addresses; ASan's shadow layout makes that collide or stall often (two of three
            # fresh-clone runs). The release build's run of this test covers dumpcap.
            self.skipTest("under ASan a secondary process cannot reliably map l7gate's memory")
        self.work = tempfile.mkdtemp(prefix="l7g-pdump-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.huge_dir = harness.hugepages(self, PAGES)

    def test_dumpcap_captures_a_port(self):
        prefix = "l7gpdump%d" % os.getpid()
        stats = os.path.join(self.work, "stats.json")
        out_path = os.path.join(self.work, "l7gate.out")
        err_path = os.path.join(self.work, "l7gate.err")
        cmd = [harness.BIN, harness.lcores_arg(2), "-m", "256", "--huge-dir", self.huge_dir,
               "--no-pci", "--file-prefix", prefix,
               "--log-level=*:warning", "--vdev", "net_null0", "--vdev", "net_null1", "--",
               "--metrics", "off", "--duration", "6", "--stats-json", stats]
        with open(out_path, "w") as out, open(err_path, "w") as err:
            gate = subprocess.Popen(cmd, stdout=out, stderr=err)
        harness.note_l7gate("pdump", path=err_path)
        # Cleanups run last-in first-out: l7gate is gone before the hugetlbfs is unmounted.
        self.addCleanup(shutil.rmtree, "/var/run/dpdk/" + prefix, True)
        self.addCleanup(stop, gate)
        # Ready for a secondary process once rte_pdump_init() is done: the banner follows it,
        # then the workers start.
        harness.wait_for(lambda: harness.read_text(out_path), 30, "l7gate's banner on stdout",
                         until=lambda out: "port(s) in" in out, proc=gate)
        self.assertNotIn("packet capture (dpdk-dumpcap) unavailable", harness.read_text(err_path))
        cap = os.path.join(self.work, "cap.pcapng")
        # A secondary process must map the primary's memory at the same virtual addresses; its
        # own libraries land at random ones (ASLR), and under ASan the primary's layout is
        # unusual, so the mapping can collide ("Cannot get a virtual area at requested
        # address"). That is the secondary's address space, not l7gate: try again, at most
        # twice, and say so.
        for attempt in range(3):
            d = subprocess.run([DUMPCAP, "--file-prefix", prefix, "-i", "net_null0", "-c", "100", "-w", cap],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
            if d.returncode == 0 or "Cannot get a virtual area at requested address" not in d.stdout:
                break
            print("dpdk-dumpcap attempt %d: its address space collided with l7gate's memory map; again"
                  % (attempt + 1))
        self.assertEqual(d.returncode, 0, d.stdout[-2000:])
        n = pcapng_packets(cap)
        print("dpdk-dumpcap captured %d packets of net_null0" % n)
        self.assertGreaterEqual(n, 100)
        self.assertIsNone(gate.poll(), "l7gate stopped before its --duration")
        gate.wait(timeout=60)
        self.assertEqual(gate.returncode, 0, "l7gate exit code (stderr below)")
        with open(stats) as f:
            st = json.load(f)
        t = st["totals"]
        self.assertGreater(t["rx_packets"], 0)
        self.assertEqual(t["rx_packets"], t["tx_packets"] + t["dropped"])


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


if __name__ == "__main__":
    harness.main()
