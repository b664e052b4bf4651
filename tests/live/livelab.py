"""Shared helpers of the live tests: the namespace lab (tools/netlab.sh), l7gate inline on its
af_packet vdevs, clients in the client namespace, and a real Prometheus.

Each test module calls `main()`, which exits 77 (meson's "skipped") with the reason printed
when the lab cannot run here: not root, no network namespaces, the ASan build, a missing
server or client binary. Every lab a test brings up is torn down again, also when the test
fails or is interrupted (SIGTERM from meson's timeout included).
"""

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import casereport  # noqa: E402
from harness import wait_for  # noqa: E402,F401  (for the live tests too)
BIN = os.environ.get("L7GATE_BIN", os.path.join(ROOT, "build", "l7gate"))
NETLAB = os.path.join(ROOT, "tools", "netlab.sh")
GEOIP = os.path.join(ROOT, "tests", "data", "geoip-test.mmdb")
PROMETHEUS = "/usr/bin/prometheus"

NEEDED = ["nginx", "dnsmasq", "sshd", "iperf3", "openssl", "ethtool", "curl", "dig", "ssh",
          "ping", "ip"]


def which(name):
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name)


def skip_reason(extra=()):
    """Why the live tests cannot run here ("" when they can)."""
    if os.geteuid() != 0:
        return "network namespaces and DPDK vdevs need root"
    if "build-asan" in BIN:
        return ("live tests run only in the release build (%s is the ASan build: its "
                "busy-polling workers are too slow for the timing checks)" % BIN)
    if not os.access(BIN, os.X_OK):
        return "no l7gate binary at %s (set L7GATE_BIN)" % BIN
    missing = [n for n in list(NEEDED) + list(extra) if not which(n)]
    if missing:
        return "missing %s (tools/install-deps.sh installs them)" % ", ".join(missing)
    probe = "l7lprobe%d" % os.getpid()
    p = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if p.returncode != 0:
        return "cannot create a network namespace: " + p.stderr.strip()
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ""


def main(extra=()):
    """Runs the module's cases (casereport.main: each case reported once; SIGTERM from meson's
    timeout becomes SystemExit so cleanups and atexit run), or reports every case skipped with
    the reason when the lab cannot run here."""
    casereport.main(skip_all=skip_reason(extra))


def report(line):
    """A measured figure: printed on stdout (meson keeps it in the test log)."""
    print("MEASURED: " + line, flush=True)


# ---------------------------------------------------------------------------------------------


class Lab:
    """One lab (three namespaces and the servers), brought up by tools/netlab.sh."""

    _live = []

    def __init__(self, tag):
        self.name = "l7l%s%d" % (tag, os.getpid() % 100000)
        self.dir = tempfile.mkdtemp(prefix=self.name + "-")
        self.env = {}
        self.gates = []
        self.procs = []

    def up(self):
        Lab._live.append(self)
        p = subprocess.run([NETLAB, "up", "--lab", self.name, "--dir", self.dir],
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise AssertionError("netlab up failed:\n" + p.stdout + p.stderr)
        with open(os.path.join(self.dir, "env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                self.env[k] = v
        return self

    def down(self):
        for g in self.gates:
            g.stop(check=False)
        for p in self.procs:
            stop(p)
        if self in Lab._live:
            Lab._live.remove(self)
        keep = os.environ.get("L7GATE_KEEP_TMP")
        env = dict(os.environ)
        if keep:
            env["L7LAB_KEEP_DIR"] = "1"
        subprocess.run([NETLAB, "down", "--lab", self.name, "--dir", self.dir],
                       capture_output=True, text=True, timeout=60, env=env)
        if keep:
            print("kept " + self.dir, file=sys.stderr)

    def __getitem__(self, k):
        return self.env[k]

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def ns(self, where, args, timeout=30, check=False, **kw):
        """Runs args in the cli, srv or gw namespace; returns a CompletedProcess with text."""
        cmd = ["ip", "netns", "exec", self.env["NS_" + where.upper()]] + list(args)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                               timeout=timeout, **kw)
        except subprocess.TimeoutExpired as e:
            p = subprocess.CompletedProcess(cmd, "timeout", e.stdout or "", e.stderr or "")
        if check and p.returncode != 0:
            raise AssertionError("%s failed (%s): %s %s" % (" ".join(args), p.returncode,
                                                           p.stdout[-500:], p.stderr[-1000:]))
        return p

    def cli(self, args, **kw):
        return self.ns("cli", args, **kw)

    def popen(self, where, args, log):
        f = open(log, "w")
        p = subprocess.Popen(["ip", "netns", "exec", self.env["NS_" + where.upper()]] + list(args),
                             stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        f.close()
        self.procs.append(p)
        return p

    # clients -----------------------------------------------------------------------------

    def curl(self, url, resolve=None, timeout=5, extra=(), out="/dev/null"):
        """(curl exit code, seconds taken, stderr). resolve: 'host:port:addr'."""
        args = ["curl", "-sS", "-k", "-m", str(timeout), "-o", out]
        if resolve:
            args += ["--resolve", resolve]
        args += list(extra) + [url]
        t0 = time.monotonic()
        p = self.cli(args, timeout=timeout + 10)
        return p.returncode, time.monotonic() - t0, p.stderr.strip()

    def https(self, host, addr=None, port=443, timeout=5, extra=()):
        addr = addr or self.env["SRV4"]
        return self.curl("https://%s:%d/" % (host, port), "%s:%d:%s" % (host, port, addr),
                         timeout, extra)

    def ssh(self, cmd="echo ssh-ok", timeout=5, addr=None):
        return self.cli(["ssh", "-i", self.path("client", "id_ed25519"), "-o", "BatchMode=yes",
                         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                         "-o", "ConnectTimeout=%d" % timeout, "-o", "LogLevel=ERROR",
                         "root@" + (addr or self.env["SRV4"]), cmd], timeout=timeout + 10)

    def dig(self, name, rtype="A", server=None, timeout=2):
        return self.cli(["dig", "+short", "+time=%d" % timeout, "+tries=1", "-t", rtype,
                         "@" + (server or self.env["SRV4"]), name], timeout=timeout + 10)

    def iperf(self, port=5201, seconds=10, udp=False, bitrate=None, reverse=False, log=None,
              extra=()):
        """Starts an iperf3 client in the client namespace (JSON output into log); returns the
        Popen. Read the result with iperf_result(log)."""
        args = ["iperf3", "-c", self.env["SRV4"], "-p", str(port), "-t", str(seconds), "-J"]
        if udp:
            args += ["-u"]
        if bitrate:
            args += ["-b", bitrate]
        if reverse:
            args += ["-R"]
        return self.popen("cli", args + list(extra), log)

    # l7gate ------------------------------------------------------------------------------

    def gate(self, policy=None, qpairs=2, metrics="off", extra=(), name="gate"):
        g = Gate(self, policy, qpairs, metrics, list(extra), name)
        self.gates.append(g)
        g.start()
        return g

    # Prometheus --------------------------------------------------------------------------

    def prometheus(self, target, interval="1s"):
        """A real Prometheus in the gateway namespace scraping `target` (HOST:PORT); returns
        its API base URL (reach it with prom_query)."""
        pdir = self.path("prometheus")
        os.makedirs(pdir, exist_ok=True)
        with open(os.path.join(pdir, "prometheus.yml"), "w") as f:
            f.write("global: {scrape_interval: %s, evaluation_interval: %s}\n"
                    "scrape_configs:\n  - job_name: l7gate\n    static_configs:\n"
                    "      - targets: ['%s']\n" % (interval, interval, target))
        listen = "127.0.0.1:9790"
        self.popen("gw", [PROMETHEUS, "--config.file=" + os.path.join(pdir, "prometheus.yml"),
                          "--storage.tsdb.path=" + os.path.join(pdir, "data"),
                          "--web.listen-address=" + listen, "--log.level=warn"],
                   os.path.join(pdir, "prometheus.log"))
        base = "http://%s" % listen
        for _ in range(100):
            if self.ns("gw", ["curl", "-sf", "-m", "1", base + "/-/ready"]).returncode == 0:
                return base
            time.sleep(0.2)
        raise AssertionError("Prometheus did not become ready (see %s)" % pdir)

    def prom_query(self, base, expr):
        """Prometheus instant query in the gateway namespace: [(labels, float value)]."""
        p = self.ns("gw", ["curl", "-sf", "-m", "5", "-G", base + "/api/v1/query",
                           "--data-urlencode", "query=" + expr], check=True)
        d = json.loads(p.stdout)
        if d.get("status") != "success":
            raise AssertionError("query %s: %s" % (expr, d))
        return [(r["metric"], float(r["value"][1])) for r in d["data"]["result"]]


def stop(p, timeout=10):
    if p is None or p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        p.terminate()
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


@atexit.register
def _down_everything():
    for lab in list(Lab._live):
        try:
            lab.down()
        except Exception as e:  # noqa: BLE001 - best effort at exit
            print("lab %s: down failed: %s" % (lab.name, e), file=sys.stderr)


class Gate:
    """l7gate running inline in the lab's gateway namespace (tools/netlab.sh gate)."""

    def __init__(self, lab, policy, qpairs, metrics, extra, name):
        self.lab, self.qpairs, self.metrics, self.extra, self.name = lab, qpairs, metrics, extra, name
        self.policy = None
        if policy is not None:
            self.policy = lab.path(name + "-policy.yaml")
            write_atomic(self.policy, policy)
        self.stats_path = lab.path(name + "-stats.json")
        self.flows_path = lab.path(name + "-flows.jsonl")
        self.log_path = lab.path(name + ".log")
        self.proc = None
        self.stats = None
        self.rc = None

    def start(self):
        args = [NETLAB, "gate", "--lab", self.lab.name, "--dir", self.lab.dir, "--bin", BIN,
                "--qpairs", str(self.qpairs), "--",
                "--metrics", self.metrics, "--stats-json", self.stats_path,
                "--flow-log", self.flows_path] + self.extra
        if self.policy:
            args += ["--policy", self.policy]
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        casereport.note_l7gate(self.name, path=self.log_path)
        # Ready once the banner is out: it follows the ports' start (a frame that arrives
        # before a worker polls waits in its af_packet ring) and the signal handlers.
        wait_for(self.log, 30, "l7gate's banner in %s" % self.log_path,
                 until=lambda log: "port(s) in" in log, proc=self.proc)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, check=True):
        """SIGTERM, wait, read the stats JSON. check: assert a clean exit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.rc = self.proc.returncode
        if check:
            if self.rc != 0:
                raise AssertionError("l7gate exit %s:\n%s" % (self.rc, self.log()[-3000:]))
            with open(self.stats_path) as f:
                self.stats = json.load(f)
        return self.stats

    def records(self):
        """Flow log: (flow records, event lines)."""
        recs, events = [], []
        if not os.path.exists(self.flows_path):
            return recs, events
        with open(self.flows_path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    (events if "event" in r else recs).append(r)
        return recs, events


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def flow_key(r):
    return (r["l4_proto"], frozenset([(r["src_ip"], r["src_port"]), (r["dst_ip"], r["dst_port"])]))


def asymmetric_flows(recs):
    """Flows (5-tuples) that more than one worker logged: with af_packet fanout both directions
    of a flow must reach one worker; a flow split over two workers is counted here."""
    workers = {}
    for r in recs:
        workers.setdefault(flow_key(r), set()).add(r["worker"])
    return {k: w for k, w in workers.items() if len(w) > 1}


def accounted(st):
    """(rx, tx, dropped, counted drops): rx = tx + dropped must hold, and dropped must be the
    sum of the drop reasons."""
    t = st["totals"]
    return t["rx_packets"], t["tx_packets"], t["dropped"], sum(st["drops"].values())


def iperf_result(log):
    with open(log) as f:
        return json.load(f)


class LiveCase(unittest.TestCase):
    """A test case with a lab up for the whole class (setUpClass), always torn down."""

    TAG = "x"

    @classmethod
    def setUpClass(cls):
        cls.lab = Lab(cls.TAG)
        try:
            cls.lab.up()
        except BaseException:
            cls.lab.down()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.lab.down()

    def assertAccounted(self, st):
        rx, tx, dropped, counted = accounted(st)
        self.assertEqual(rx, tx + dropped, "rx = tx + dropped: %s" % st["totals"])
        self.assertEqual(dropped, counted, "every drop under a reason: %s" % st["drops"])
        return rx, tx, dropped
