#!/usr/bin/python3
"""Live test 1: pass-through. Real clients and servers in namespaces, l7gate inline on two
af_packet vdevs with two queue pairs (two workers, kernel fanout), a pass-all policy.

    L7GATE_BIN=build/l7gate /usr/bin/python3 tests/live/test_live_passthrough.py -v

Checks: ARP and IPv6 neighbour discovery resolve the server's MAC through l7gate (ping over
IPv4 and IPv6 after flushing the neighbour tables); a 10 MB HTTP download over IPv4 and IPv6
matches the file's SHA-256; DNS answers A and AAAA; TLS handshakes complete (curl to nginx with
SNI, openssl s_client to s_server with two SNIs, the chained one verifying against the
generated CA); SSH runs a command; iperf3 UDP gets through. Then, from l7gate's own output:
the flow log names each flow as nDPI does (HTTP, TLS, DNS, SSH) with its host / SNI; no flow
was split over two workers (both directions of every flow met on one worker: the kernel's
fanout hash is symmetric); every packet is accounted for with no drop.
"""

import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from livelab import LiveCase, main, report, asymmetric_flows, iperf_result  # noqa: E402

POLICY = """version: 1
default_policy: all
policies:
  all: {default: pass}
"""


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


class PassThroughTest(LiveCase):
    TAG = "p"

    def test_pass_through(self):
        lab = self.lab
        gate = lab.gate(POLICY, qpairs=2)
        srv4, srv6 = lab["SRV4"], lab["SRV6"]

        # ARP and neighbour discovery, through l7gate.
        lab.cli(["ip", "neigh", "flush", "dev", "lab0"])
        lab.ns("srv", ["ip", "neigh", "flush", "dev", "lab0"])
        for target in (srv4, srv6):
            p = lab.cli(["ping", "-c", "2", "-W", "2", target])
            self.assertEqual(p.returncode, 0, "ping %s: %s%s" % (target, p.stdout, p.stderr))
            neigh = lab.cli(["ip", "neigh", "show", target]).stdout
            self.assertIn(lab["SRV_MAC"], neigh, "neighbour entry for %s: %r" % (target, neigh))

        # HTTP: 10 MB over IPv4 and IPv6, checksummed.
        with open(lab.path("www", "10M.bin.sha256")) as f:
            want = f.read().split()[0]
        for i, url in enumerate(("http://www.lab.test/10M.bin", "http://[%s]/10M.bin" % srv6)):
            out = lab.path("download%d.bin" % i)
            rc, secs, err = lab.curl(url, resolve="www.lab.test:80:" + srv4, timeout=60, out=out)
            self.assertEqual(rc, 0, "%s: %s" % (url, err))
            self.assertEqual(os.path.getsize(out), 10485760)
            self.assertEqual(sha256(out), want, url)
            report("HTTP 10 MB download %s: sha256 ok in %.2f s (%.0f Mbit/s)"
                   % (url, secs, 10485760 * 8 / secs / 1e6))

        # DNS.
        self.assertEqual(lab.dig("allowed.test").stdout.strip(), srv4)
        self.assertEqual(lab.dig("allowed.test", "AAAA", server=srv6).stdout.strip(), srv6)

        # TLS: nginx with SNI, and openssl s_server with two certificates by SNI.
        rc, _, err = lab.https("allowed.test")
        self.assertEqual(rc, 0, err)
        rc, _, err = lab.curl("https://allowed.test/", resolve="allowed.test:443:[%s]" % srv6)
        self.assertEqual(rc, 0, err)
        s = lab.cli(["openssl", "s_client", "-connect", srv4 + ":4433", "-servername", "chained.test",
                     "-CAfile", lab.path("certs", "ca.crt"), "-verify_return_error"],
                    input="", timeout=15)
        self.assertIn("Verify return code: 0 (ok)", s.stdout, s.stdout[-2000:] + s.stderr[-500:])
        self.assertIn("subject=CN = allowed.test", s.stdout)
        s = lab.cli(["openssl", "s_client", "-connect", srv4 + ":4433", "-servername", "other.test"],
                    input="", timeout=15)
        self.assertIn("subject=CN = selfsigned.test", s.stdout, s.stdout[-2000:])
        self.assertRegex(s.stdout, r"Cipher is [A-Z0-9-]+")

        # SSH and iperf3 UDP.
        p = lab.ssh()
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "ssh-ok"), p.stderr)
        log = lab.path("iperf-udp.json")
        ip = lab.iperf(port=5201, seconds=2, udp=True, bitrate="20M", log=log)
        self.assertEqual(ip.wait(timeout=30), 0, "iperf3 UDP failed (see %s)" % log)
        udp = iperf_result(log)["end"]["sum"]
        self.assertLess(udp["lost_percent"], 5.0, udp)
        report("iperf3 UDP 20 Mbit/s 2 s: %.1f Mbit/s, %.2f%% lost"
               % (udp["bits_per_second"] / 1e6, udp["lost_percent"]))

        st = gate.stop()
        recs, _ = gate.records()

        # Accounting: nothing dropped, every packet forwarded.
        rx, tx, dropped = self.assertAccounted(st)
        self.assertEqual(dropped, 0, st["drops"])
        self.assertGreater(st["non_ip_packets"], 0, "ARP crossed l7gate")
        report("pass-through packets: rx %d = tx %d + dropped %d; non-IP (ARP) %d"
               % (rx, tx, dropped, st["non_ip_packets"]))

        # Flow log: protocol and host as nDPI names them.
        def find(proto, host=None, port=None, ipv=4):
            return [r for r in recs if r["l7_proto"].split(".")[0] == proto
                    and (host is None or r["host"] == host)
                    and (port is None or r["dst_port"] == port) and r["ip_version"] == ipv]
        self.assertTrue(find("HTTP", "www.lab.test", 80), recs)
        # nDPI 4.2 cuts an HTTP Host at its first ':' (the port separator), so an IPv6
        # literal Host "[2001:db8:100::80]" is logged as "[2001".
        self.assertTrue(find("HTTP", "[2001", 80, ipv=6), recs)
        self.assertTrue(find("TLS", "allowed.test", 443), recs)
        self.assertTrue(find("TLS", "allowed.test", 443, ipv=6), recs)
        self.assertTrue(find("TLS", "chained.test", 4433), recs)
        self.assertTrue(find("DNS", "allowed.test", 53), recs)
        self.assertTrue(find("DNS", "allowed.test", 53, ipv=6), recs)
        self.assertTrue(find("SSH", None, 22), recs)
        self.assertTrue([r for r in recs if r["l4_proto"] == "ICMPv6"], "neighbour discovery seen")
        for r in recs:
            self.assertEqual(r["verdict"], "pass", r)

        # Workers: the fanout spread flows, and both directions of each flow met on one worker.
        tcp_udp = [r for r in recs if r["l4_proto"] in ("TCP", "UDP")]
        per_worker = {}
        for r in tcp_udp:
            per_worker[r["worker"]] = per_worker.get(r["worker"], 0) + 1
        asym = asymmetric_flows(tcp_udp)
        report("fanout: TCP/UDP flows per worker %s; asymmetric flows (seen on two workers): %d; "
               "l7gate's flows.asymmetric: %d" % (dict(sorted(per_worker.items())), len(asym),
                                                  st["flows"]["asymmetric"]))
        self.assertEqual(asym, {}, "flows split over workers")
        self.assertEqual(st["flows"]["asymmetric"], 0, "a worker saw a SYN-ACK without its SYN")
        self.assertEqual({r["worker"] for r in recs} - {0, 1}, set())
        for r in tcp_udp:
            if r["l4_proto"] == "TCP":
                self.assertGreater(r["c2s_packets"], 0, r)
                self.assertGreater(r["s2c_packets"], 0, r)


if __name__ == "__main__":
    main()
