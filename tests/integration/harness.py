"""Shared helpers for the integration tests: pcap files and running the real l7gate binary.

Each test module puts this directory on sys.path and imports what it needs.
"""

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import casereport  # noqa: E402
from casereport import figure, note_l7gate  # noqa: E402,F401  (re-exported for the tests)

BIN = os.environ.get("L7GATE_BIN", "")
TIMEOUT = 60

# ---------------------------------------------------------------------------------------------
# pcap helpers (no scapy needed here)

PCAP_HDR = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def read_pcap_records(path, strict=True):
    """[(timestamp in microseconds, frame bytes)] of a classic pcap file; [] for a missing,
    empty or header-only file. Handles both byte orders and micro/nanosecond magic. strict:
    fail on a record whose captured length differs from its wire length (truncated capture)
    and on trailing bytes.
    """
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = struct.unpack_from("<I", data, 0)[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        endian = "<"
    elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
        endian = ">"
    else:
        raise AssertionError("%s: not a pcap file (magic %#x)" % (path, magic))
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, caplen, wirelen = struct.unpack_from(endian + "IIII", data, off)
        off += 16
        if off + caplen > len(data):
            raise AssertionError("%s: record at %d runs past the end of the file" % (path, off))
        if strict and caplen != wirelen:
            raise AssertionError("%s: frame %d truncated in capture (%d of %d bytes)"
                                 % (path, len(out), caplen, wirelen))
        out.append((sec * 1000000 + (frac // 1000 if nano else frac), data[off:off + caplen]))
        off += caplen
    if strict and off != len(data):
        raise AssertionError("%s: %d trailing bytes" % (path, len(data) - off))
    return out


def read_pcap(path):
    """The frames (bytes) of a pcap file, strictly read (see read_pcap_records)."""
    return [fr for _, fr in read_pcap_records(path)]


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(PCAP_HDR)
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000 + i // 10000, (i % 10000) * 100, len(fr), len(fr)))
            f.write(fr)


def write_pcap_records(path, records):
    """records: [(time in microseconds, frame)], written in time order."""
    with open(path, "wb") as f:
        f.write(PCAP_HDR)
        for t, fr in sorted(records, key=lambda r: r[0]):
            f.write(struct.pack("<IIII", t // 1000000, t % 1000000, len(fr), len(fr)))
            f.write(fr)


def udp_frame(src_last, sport, seq, size):
    """Ethernet/IPv4/UDP of `size` bytes from 198.18.1.<src_last> (198.18.2.x when src_last
    >= 256) to 198.19.0.1, carrying (src_last, seq) at byte 42 (see udp_frame_id)."""
    src = bytes([198, 18, 1 + src_last // 256, src_last % 256])
    dst = bytes([198, 19, 0, 1])
    payload = struct.pack("!HI", src_last, seq).ljust(size - 42, b"\0")
    udp = struct.pack("!HHHH", sport, 6000, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    csum = sum(struct.unpack("!10H", ip))
    csum = (csum & 0xFFFF) + (csum >> 16)
    csum = (csum & 0xFFFF) + (csum >> 16)
    ip = ip[:10] + struct.pack("!H", ~csum & 0xFFFF) + ip[12:]
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + udp


def udp_frame_id(frame):
    """(src_last, seq) of a udp_frame."""
    return struct.unpack_from("!HI", frame, 42)


def ethertype(frame):
    return struct.unpack_from("!H", frame, 12)[0] if len(frame) >= 14 else None


# ---------------------------------------------------------------------------------------------
# Running l7gate

_run_seq = [0]


def lcores_arg(n):
    """--lcores mapping for n lcores (main + workers) on the CPUs this process may use: lcore
    i on its own CPU when there are enough, else the main lcore shares CPU 0 with worker 1."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= n:
        m = ["%d@%d" % (i, cpus[i]) for i in range(n)]
    else:
        m = ["0@%d" % cpus[0]] + ["%d@%d" % (i, cpus[(i - 1) % len(cpus)]) for i in range(1, n)]
    return "--lcores=" + ",".join(m)


class Run:
    def __init__(self, rc, stdout, stderr, stats, outs, cmd):
        self.rc, self.stdout, self.stderr, self.stats, self.outs, self.cmd = \
            rc, stdout, stderr, stats, outs, cmd

    def describe(self):
        return "command: %s\nexit code: %s\nstderr (tail):\n%s" % (
            " ".join(self.cmd), self.rc, "\n".join(self.stderr.splitlines()[-15:]))


def run_l7gate(workdir, name, rx, args, workers=1, log_level="*:warning", stats=True,
               idle_exit=True, tx_null=False):
    """Runs l7gate with two net_pcap ports.

    rx: [[port 0 rx pcaps per queue], [port 1 rx pcaps per queue]]; each port gets as many
    tx pcaps as rx pcaps: <workdir>/<name>-out<port>[-q<queue>].pcap. Returns a Run whose
    outs[port][queue] are the output file paths.
    """
    _run_seq[0] += 1
    prefix = "l7gtest%d_%d" % (os.getpid(), _run_seq[0])
    outs, vdevs = [], []
    for port, files in enumerate(rx):
        multi = len(files) > 1
        # tx_null: endless replays (infinite_rx) would write gigabytes; /dev/null counts them.
        tx = [os.devnull if tx_null else
              os.path.join(workdir, "%s-out%d%s.pcap" % (name, port, "-q%d" % q if multi else ""))
              for q in range(len(files))]
        for t in tx:
            if t != os.devnull and os.path.exists(t):
                os.unlink(t)
        outs.append(tx)
        spec = ",".join(["net_pcap%d" % port] + ["rx_pcap=" + f for f in files] +
                        ["tx_pcap=" + t for t in tx])
        vdevs += ["--vdev", spec]
    stats_path = os.path.join(workdir, name + "-stats.json")
    if os.path.exists(stats_path):
        os.unlink(stats_path)
    cmd = [BIN, "--no-huge", "--no-pci", "-m", "512", lcores_arg(workers + 1),
           "--log-level=" + log_level, "--file-prefix", prefix] + vdevs + ["--"] + list(args)
    if "--metrics" not in args:
        cmd += ["--metrics", "off"]  # tests run side by side: no shared port
    if idle_exit:
        cmd += ["--idle-exit", "300"]
    if stats:
        cmd += ["--stats-json", stats_path]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           errors="replace", timeout=TIMEOUT)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc = "timeout after %ds (killed)" % TIMEOUT
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    finally:
        shutil.rmtree(os.path.join("/var/run/dpdk", prefix), ignore_errors=True)
    note_l7gate(name, text=err)
    st = None
    if stats and os.path.exists(stats_path):
        with open(stats_path) as f:
            try:
                st = json.load(f)
            except ValueError as e:
                st = {"__invalid_json__": str(e)}
    return Run(rc, out, err, st, outs, cmd)


# DPDK's own log lines (EAL and friends), as opposed to l7gate's messages.
DPDK_LOG = re.compile(
    r"^(EAL|TELEMETRY|PMD|ETHDEV|MBUF|MEMPOOL|RING|MALLOC|HASH|TIMER|POWER|LPM|ACL|KNI|PORT|"
    r"TABLE|PIPELINE|SCHED|METER|GSO|EFD|EVENTDEV|CRYPTODEV|VHOST_CONFIG|VHOST_DATA|USER[1-8]|"
    r"BBDEV|RAWDEV|PCI|BUS|DEVARGS|NET|CFGFILE)\s*:|^\w+\(\): ")


def l7gate_stderr_lines(text):
    return [ln for ln in text.splitlines() if ln.strip() and not DPDK_LOG.match(ln)]


def frame_flow_key(frame):
    """(l4 name, frozenset({(ip, port), (ip, port)})) of an Ethernet frame, or None for non-IP.

    Enough of a parser for generated test traffic: VLAN tags, IPv4, IPv6 without extension
    headers, TCP/UDP ports (0 for other protocols), as l7gate's flow log names them.
    """
    import ipaddress
    off = 12
    et = struct.unpack_from("!H", frame, off)[0]
    while et in (0x8100, 0x88A8, 0x9100):
        off += 4
        et = struct.unpack_from("!H", frame, off)[0]
    off += 2
    if et == 0x0800:
        ihl = (frame[off] & 15) * 4
        proto = frame[off + 9]
        src = str(ipaddress.IPv4Address(frame[off + 12:off + 16]))
        dst = str(ipaddress.IPv4Address(frame[off + 16:off + 20]))
        l4 = off + ihl
    elif et == 0x86DD:
        proto = frame[off + 6]
        src = str(ipaddress.IPv6Address(frame[off + 8:off + 24]))
        dst = str(ipaddress.IPv6Address(frame[off + 24:off + 40]))
        l4 = off + 40
    else:
        return None
    names = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "ICMPv6"}
    sp = dp = 0
    if proto in (6, 17):
        sp, dp = struct.unpack_from("!HH", frame, l4)
    return (names.get(proto, str(proto)), frozenset([(src, sp), (dst, dp)]))


PY = "/usr/bin/python3"
TOOLS = os.environ.get("L7GATE_TOOLS") or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "..", "..", "tools")


def require_binary(test):
    """Skips `test` (with the reason) unless it can run the real binary: root and L7GATE_BIN."""
    if os.geteuid() != 0:
        test.skipTest("DPDK vdevs need root")
    if not BIN or not os.access(BIN, os.X_OK):
        test.skipTest("L7GATE_BIN does not name the l7gate binary")


def generate(test, outdir, set_name="l7"):
    """Runs tools/gen_traffic.py --set SET into outdir; fails `test` when it cannot (a missing
    Python module it needs is a skip, with the package to install)."""
    error = generator_missing()
    if error.startswith("skip: "):
        test.skipTest(error[6:])
    if error:
        test.fail(error)
    p = subprocess.run([PY, os.path.join(TOOLS, "gen_traffic.py"), outdir, "--set", set_name],
                       capture_output=True, text=True)
    if p.returncode != 0:
        test.fail("traffic generator failed (%d): %s" % (p.returncode, p.stderr[-2000:]))


def generated_work(test, prefix):
    """For setUp: skips `test` unless it can run the binary (require_binary), then returns a
    fresh work directory with tools/gen_traffic.py --set l7 generated into it (generate)."""
    require_binary(test)
    work = tempfile.mkdtemp(prefix=prefix)
    generate(test, work)
    return work


def load_l7_expect(gen_dir):
    """The generator's l7-expect.json in gen_dir: per flow of l7.pcap, what it must be."""
    with open(os.path.join(gen_dir, "l7-expect.json")) as f:
        return json.load(f)


def remove_work(work, quiet=False):
    """Removes a work directory; with L7GATE_KEEP_TMP set keeps it and, unless quiet (its path
    was printed already), prints "kept <path>"."""
    if not work:
        return
    if os.environ.get("L7GATE_KEEP_TMP"):
        if not quiet:
            print("kept", work)
    else:
        shutil.rmtree(work, ignore_errors=True)


def generator_missing(*modules):
    """Why tools/gen_traffic.py cannot run here ("" when it can): a missing generator, or a
    Python module it needs (prefixed "skip: ", for tests to report as skipped)."""
    gen = os.path.join(TOOLS, "gen_traffic.py")
    if not os.path.exists(gen):
        return "generator %s not found" % gen
    hints = {"scapy.all": "python3-scapy", "cryptography.hazmat.primitives.ciphers.aead": "python3-cryptography"}
    for m in ("scapy.all",) + modules:
        if subprocess.run([PY, "-c", "import " + m], capture_output=True).returncode != 0:
            return "skip: %s has no %s (apt-get install %s)" % (PY, m.split(".")[0], hints.get(m, m))
    return ""


def main():
    """Runs the __main__ module's cases and exits: 1 on a failure, 77 when every case was
    skipped (not root, binary missing...) so that meson reports SKIP, not OK, else 0; each case
    is reported once to tools/test_summary.py (see casereport)."""
    casereport.main()


# ---------------------------------------------------------------------------------------------
# Module fixtures: traffic is generated once.


def generate_module_traffic(prefix, what, *gen_args, modules=()):
    """For setUpModule: a fresh work directory (named on stderr with the binary, `what` first),
    tools/gen_traffic.py GEN_ARGS run into its gen/ (needing `modules` besides scapy), and an
    empty capture empty.pcap. Returns (work directory, why the traffic is missing or "");
    tests pass the reason to check_generated()."""
    work = tempfile.mkdtemp(prefix=prefix)
    print("%s: work dir %s, binary %s" % (what, work, BIN or "(L7GATE_BIN unset)"), file=sys.stderr)
    error = generator_missing(*modules)
    if error:
        return work, error
    cmd = ["gen_traffic.py"] + list(gen_args)
    p = subprocess.run([PY, os.path.join(TOOLS, cmd[0]), os.path.join(work, "gen")] + cmd[1:],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        return work, "%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr[-2000:])
    write_pcap(os.path.join(work, "empty.pcap"), [])
    return work, ""


def check_generated(test, error):
    """Fails `test` when the module's traffic could not be generated (error from
    generate_module_traffic), or skips it when the reason is a missing module ("skip: ...")."""
    if error:
        if error.startswith("skip: "):
            test.skipTest(error[6:])
        test.fail(error)


def check_binary(test):
    """Skips `test` unless it can run the real binary: root, L7GATE_BIN set and built."""
    if os.geteuid() != 0:
        test.skipTest("needs root (DPDK EAL)")
    if not BIN:
        test.skipTest("L7GATE_BIN is not set")
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        test.skipTest("l7gate binary %s does not exist (not built yet?)" % BIN)


# ---------------------------------------------------------------------------------------------
# Waiting for conditions, not for time


def _seen(value, limit=600):
    text = value if isinstance(value, str) else repr(value)
    if not text.strip():
        return "(empty)"
    return text if len(text) <= limit else "..." + text[-limit:]


def wait_for(probe, timeout, what, until=None, interval=0.05, proc=None):
    """Polls probe() every `interval` seconds until it gives a value that satisfies `until`
    (truthy when until is None) and returns that value. An exception in probe() counts as not
    yet (a socket not there yet). Raises AssertionError("timed out after Ns waiting for <what>;
    last seen: ...") after `timeout` seconds, or at once when `proc` (a Popen) has exited."""
    import time
    deadline = time.monotonic() + timeout
    last = "(nothing: the first probe did not finish)"
    while True:
        try:
            value = probe()
            if (bool(value) if until is None else until(value)):
                return value
            last = _seen(value)
        except Exception as e:  # noqa: BLE001 - not ready yet; reported as last seen
            last = "%s: %s" % (type(e).__name__, e)
        if proc is not None and proc.poll() is not None:
            raise AssertionError("l7gate exited (%s) while waiting for %s; last seen: %s"
                                 % (proc.returncode, what, last))
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %gs waiting for %s; last seen: %s"
                                 % (timeout, what, last))
        time.sleep(interval)


def read_text(path):
    """A file's text ("" while it does not exist): for polling logs a process writes."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def telemetry_connect(prefix):
    """A connection to the DPDK telemetry socket of the l7gate running with --file-prefix
    `prefix`, its greeting read; raises OSError while the socket is not up."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.settimeout(5)
        s.connect(os.path.join("/var/run/dpdk", prefix, "dpdk_telemetry.v2"))
        json.loads(s.recv(4096))  # the greeting
    except (OSError, ValueError):
        s.close()
        raise
    return s


def telemetry_ask(s, command):
    """The answer to one telemetry command on a telemetry_connect() socket (None: the command
    failed, as l7gate's do once it is exiting)."""
    s.send(command.encode())
    data = s.recv(1 << 20)
    if not data:
        raise OSError("telemetry connection closed")
    return json.loads(data)[command]


def telemetry(prefix, *commands):
    """{command: answer} of DPDK telemetry commands (/l7gate/stats...) asked of the l7gate
    running with --file-prefix `prefix`; raises OSError while its socket is not up."""
    with telemetry_connect(prefix) as s:
        return {c: telemetry_ask(s, c) for c in commands}


# ---------------------------------------------------------------------------------------------
# Hugepages for a test (a DPDK secondary process needs the primary's hugepage memory)

NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"


def _meminfo(key):
    with open("/proc/meminfo") as f:
        for ln in f:
            if ln.startswith(key + ":"):
                return int(ln.split()[1])
    return 0


def hugetlbfs_mounts(pagesize_kb=2048):
    """Mount points of hugetlbfs file systems with `pagesize_kb` pages."""
    default_kb = _meminfo("Hugepagesize")
    out = []
    with open("/proc/mounts") as f:
        for ln in f:
            parts = ln.split()
            if len(parts) < 4 or parts[2] != "hugetlbfs":
                continue
            size_kb = default_kb
            for opt in parts[3].split(","):
                if opt.startswith("pagesize="):
                    v = opt[len("pagesize="):].upper()
                    mult = {"K": 1, "M": 1024, "G": 1024 * 1024}.get(v[-1:], None)
                    size_kb = int(v[:-1]) * mult if mult else int(v) // 1024
            if size_kb == pagesize_kb:
                out.append(parts[1].replace("\\040", " "))
    return out


def hugepages(test, pages):
    """For setUp: `pages` free 2 MiB hugepages and a hugetlbfs mount for `test`, both put back
    by test cleanups (which also run when the test fails or meson's SIGTERM ends it). When no
    2 MiB hugetlbfs is mounted it mounts one on a private directory and unmounts it afterwards;
    when fewer than `pages` pages are free it raises vm.nr_hugepages and restores the old
    value afterwards. Returns the mount point (for EAL's --huge-dir). Skips `test` when the
    machine cannot give the pages."""
    if _meminfo("Hugepagesize") != 2048 and not os.path.isdir("/sys/kernel/mm/hugepages/hugepages-2048kB"):
        test.skipTest("the kernel offers no 2 MiB hugepages")
    free = _meminfo("HugePages_Free")
    if free < pages:
        with open(NR_HUGEPAGES) as f:
            old = int(f.read())
        try:
            with open(NR_HUGEPAGES, "w") as f:
                f.write(str(old + pages - free))
        except OSError as e:
            test.skipTest("needs %d free hugepages and cannot reserve them: %s" % (pages, e))

        def restore():
            with open(NR_HUGEPAGES, "w") as f:
                f.write(str(old))
            with open(NR_HUGEPAGES) as f:
                now = int(f.read())
            if now != old:
                raise AssertionError("vm.nr_hugepages is %d, not back to %d" % (now, old))
        # Registered first, so it runs last: after the unmount has freed the pages' files.
        test.addCleanup(restore)
        if _meminfo("HugePages_Free") < pages:
            test.skipTest("needs %d free 2 MiB hugepages, %d free" % (pages, _meminfo("HugePages_Free")))
    mounts = hugetlbfs_mounts()
    if mounts:
        return mounts[0]
    mnt = os.path.realpath(tempfile.mkdtemp(prefix="l7g-huge-"))
    p = subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "nodev", mnt],
                       capture_output=True, text=True)
    if p.returncode != 0:
        os.rmdir(mnt)
        test.skipTest("no hugetlbfs mounted and cannot mount one: %s" % p.stderr.strip())

    def unmount():
        p = subprocess.run(["umount", mnt], capture_output=True, text=True)
        if p.returncode != 0:
            # Still in use (a process the test left behind): detach it now, freed at its exit.
            subprocess.run(["umount", "-l", mnt], capture_output=True)
        os.rmdir(mnt)
        if p.returncode != 0:
            raise AssertionError("umount %s: %s (detached lazily)" % (mnt, p.stderr.strip()))
    test.addCleanup(unmount)
    return mnt
