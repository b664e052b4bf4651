#!/usr/bin/python3
"""Integration tests: l7gate's Prometheus endpoint, scraped by a real Prometheus server.

Run by meson or directly (as root: DPDK vdevs):

    L7GATE_BIN=build/l7gate L7GATE_TOOLS=tools /usr/bin/python3 tests/integration/test_prometheus.py -v

Depends on the --metrics option of l7gate (src/control/observe/metrics.hpp is the exporter):
`--metrics HOST:PORT|off`, default 127.0.0.1:9777. While `l7gate -h` does not list --metrics,
every test here is skipped with that reason.

One shared run: Debian's Prometheus (/usr/bin/prometheus; `apt-get install -y prometheus` when
missing, skipped when that fails) listens on a free loopback port with a temporary config that
scrapes l7gate every second and a temporary TSDB. l7gate replays the generated l7 traffic
(tools/gen_traffic.py --set l7, once, into port 0, --clock capture) with a small policy, for
--duration 8, with --metrics 127.0.0.1:<free port> and --stats-json; meanwhile this test
fetches /metrics itself with urllib (the last body is kept). After l7gate has exited:

- PrometheusTest: Prometheus's HTTP API (/api/v1/query, last_over_time(...[1m]) for the last
  scraped values) agrees with the stats JSON written at exit: rx/tx packets per port and per
  queue, drops by reason (every reason), flows created; every PromQL expression of every panel
  of config/grafana/l7gate.json is accepted by Prometheus ($__rate_interval, $__interval and
  $__range as 1m, $instance as .*) and the main panels return data; every metric name the
  dashboard uses is in l7gate's /metrics.
- ExpositionTest (no Prometheus needed): the /metrics body parses line by line (HELP, TYPE,
  samples; names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*), no
  duplicate series, families grouped, each family's samples follow its TYPE, every contract
  family is there with a HELP text, l7gate counters and only counters end in _total, and
  `promtool check metrics` finds nothing but the known l7gate_shaper_rate_bits unit remark.
- ConfigFilesTest (needs neither l7gate nor root): config/prometheus.yml passes
  `promtool check config`; the dashboard names only l7gate's contract families.

Prometheus and l7gate are stopped and the temporary directory removed in every case (module
cleanups run even when the set-up fails). L7GATE_KEEP_TMP=1 keeps the directory (with
Prometheus's log, its config, l7gate's output and the last /metrics body).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import write_pcap, lcores_arg, BIN  # noqa: E402

PY = "/usr/bin/python3"
TOOLS = os.environ.get("L7GATE_TOOLS") or os.path.join(HERE, "..", "..", "tools")
ROOT = os.path.abspath(os.path.join(TOOLS, ".."))
DASHBOARD = os.path.join(ROOT, "config", "grafana", "l7gate.json")
PROM_CONFIG_EXAMPLE = os.path.join(ROOT, "config", "prometheus.yml")
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
DURATION = 8          # l7gate --duration
SCRAPE_INTERVAL = 1   # Prometheus scrapes l7gate every second

POLICY = """version: 1
default_policy: other
shapers:
  bulk: {rate: 20mbit, burst: 256kb}
pools:
  - {name: lan, ip: [198.18.1.0/24, "2001:db8:100::/48"], policy: lan}
policies:
  lan: {default: pass, protocols: {SSH: drop, HTTP: "shape:bulk"}}
  other: {default: pass}
"""

# The contract: every family l7gate exports, with its TYPE.
FAMILIES = {
    "l7gate_rx_packets_total": "counter", "l7gate_rx_bytes_total": "counter",
    "l7gate_tx_packets_total": "counter", "l7gate_tx_bytes_total": "counter",
    "l7gate_port_missed_packets_total": "counter", "l7gate_port_rx_nombuf_total": "counter",
    "l7gate_port_rx_errors_total": "counter", "l7gate_port_tx_errors_total": "counter",
    "l7gate_drops_total": "counter", "l7gate_malformed_packets_total": "counter",
    "l7gate_flows_active": "gauge", "l7gate_flows_created_total": "counter",
    "l7gate_flows_expired_total": "counter", "l7gate_flows_asymmetric_total": "counter", "l7gate_flow_table_full_total": "counter",
    "l7gate_flow_bucket_full_total": "counter", "l7gate_flowless_packets_total": "counter",
    "l7gate_uninspected_packets_total": "counter", "l7gate_uninspected_bytes_total": "counter",
    "l7gate_tunnel_packets_total": "counter", "l7gate_tunnel_skipped_packets_total": "counter",
    "l7gate_tunnel_reject_dropped_total": "counter",
    "l7gate_l7_packets_total": "counter", "l7gate_l7_bytes_total": "counter",
    "l7gate_l7_flows_total": "counter", "l7gate_category_bytes_total": "counter",
    "l7gate_risk_flows_total": "counter", "l7gate_verdicts_total": "counter",
    "l7gate_policy_enforced": "gauge", "l7gate_monitor_forwarded_packets_total": "counter",
    "l7gate_monitor_forwarded_bytes_total": "counter",
    "l7gate_policy_generation": "gauge", "l7gate_policy_reloads_total": "counter",
    "l7gate_policy_last_reload_timestamp_seconds": "gauge",
    "l7gate_policy_last_reload_success": "gauge",
    "l7gate_worker_cycles_per_packet": "gauge", "l7gate_worker_busy_ratio": "gauge",
    "l7gate_flow_log_records_total": "counter", "l7gate_flow_log_lost_total": "counter",
    "l7gate_shaper_rate_bits": "gauge", "l7gate_classified_flows_total": "counter",
    "l7gate_ndpi_packets_total": "counter", "l7gate_dpi_pool_full_total": "counter",
    "l7gate_shaper_queue_packets": "gauge", "l7gate_shaper_drops_total": "counter",
    "l7gate_shaper_packets_total": "counter", "l7gate_shaper_bytes_total": "counter",
    "l7gate_shaper_backlog_packets": "gauge",
    "l7gate_blocked_hosts": "gauge", "l7gate_host_blocks_total": "counter", "l7gate_host_score": "gauge",
    "l7gate_host_score_events_total": "counter", "l7gate_host_score_events_lost_total": "counter",
    "l7gate_host_score_backlog": "gauge", "l7gate_blocked_sets_retired_pending": "gauge",
    "l7gate_policy_applied_generation": "gauge", "l7gate_policy_retired_pending": "gauge",
    "l7gate_control_service_seconds_total": "counter", "l7gate_control_service_backlog": "gauge",
    "l7gate_control_tick_overruns_total": "counter", "l7gate_control_service_max_seconds": "gauge",
    "l7gate_reason_names": "gauge", "l7gate_worker_policy_generation": "gauge",
    # the record stream's sinks (this run has --flow-log)
    "l7gate_flow_records_written_total": "counter", "l7gate_flow_records_lost_total": "counter",
    "l7gate_flow_records_queued": "gauge", "l7gate_flow_records_reopens_total": "counter",
    "l7gate_flow_records_open_failures_total": "counter", "l7gate_flow_records_backlog": "gauge",
    "l7gate_host_events_lost_total": "counter",
}
# promtool's lint remarks accepted on purpose (the name is part of the contract).
KNOWN_LINT = {'l7gate_shaper_rate_bits use base unit "bytes" instead of "bits"'}

WORK = None
RUN = None  # the shared run (dict), built by shared_run()


def setUpModule():
    global WORK
    WORK = tempfile.mkdtemp(prefix="l7gate-prometheus-")
    unittest.addModuleCleanup(remove_work)


def remove_work():
    if WORK and os.environ.get("L7GATE_KEEP_TMP"):
        print("l7gate prometheus test: kept %s" % WORK, file=sys.stderr)
    elif WORK:
        shutil.rmtree(WORK, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# helpers


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode("utf-8", errors="replace")


def stop_process(p, name):
    """SIGTERM, then SIGKILL after 10 s; never raises."""
    if p is None or p.poll() is not None:
        return
    try:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        print("%s did not stop on SIGTERM: killed" % name, file=sys.stderr)
        p.kill()
        p.wait(timeout=10)
    except OSError:
        pass


def l7gate_lists_metrics():
    try:
        p = subprocess.run([BIN, "-h"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, "l7gate -h failed: %s" % e
    return "--metrics" in p.stdout, p.stdout


def ensure_prometheus():
    """'' when /usr/bin/prometheus is there (installing it with apt-get if needed), else why not."""
    if os.access(PROMETHEUS, os.X_OK):
        return ""
    if os.geteuid() != 0:
        return "%s missing and not root to install it (apt-get install prometheus)" % PROMETHEUS
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log = []
    for cmd in (["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"],
                ["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"]):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
            log.append("%s: exit %d %s" % (" ".join(cmd), p.returncode, p.stderr.strip()[-300:]))
            if cmd[1] == "install" and p.returncode == 0:
                break
        except (OSError, subprocess.TimeoutExpired) as e:
            log.append("%s: %s" % (" ".join(cmd), e))
    if os.access(PROMETHEUS, os.X_OK):
        return ""
    return "cannot install prometheus: " + " | ".join(log)


def dashboard_exprs(dash):
    """[(panel title, expr)] of every target of every panel (rows' nested panels included)."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((p.get("title", "?"), t["expr"]))
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    return out


def grafana_to_promql(expr):
    for var in ("$__rate_interval", "${__rate_interval}", "$__interval", "${__interval}",
                "$__range", "${__range}"):
        expr = expr.replace(var, "1m")
    return expr.replace("${instance}", ".*").replace("$instance", ".*")


METRIC_IN_EXPR = re.compile(r"\b(l7gate_[a-zA-Z0-9_:]+)")


# ---------------------------------------------------------------------------------------------
# the Prometheus text format, strictly

NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
TYPES = ("counter", "gauge", "summary", "histogram", "untyped")


def parse_labels(s, i):
    """Parses '{a="x",b="y"}' starting at s[i] == '{'. Returns (labels dict, index after '}')."""
    labels = {}
    i += 1
    while True:
        if i >= len(s):
            raise ValueError("unterminated label set")
        if s[i] == "}":
            return labels, i + 1
        eq = s.find("=", i)
        if eq < 0:
            raise ValueError("label without '='")
        name = s[i:eq]
        if not LABEL_RE.match(name):
            raise ValueError("bad label name %r" % name)
        if name in labels:
            raise ValueError("label %r twice" % name)
        if eq + 1 >= len(s) or s[eq + 1] != '"':
            raise ValueError("label value not quoted")
        j, val = eq + 2, []
        while True:
            if j >= len(s):
                raise ValueError("unterminated label value")
            c = s[j]
            if c == "\\":
                if j + 1 >= len(s) or s[j + 1] not in 'n"\\':
                    raise ValueError("bad escape in label value")
                val.append("\n" if s[j + 1] == "n" else s[j + 1])
                j += 2
            elif c == '"':
                break
            elif c == "\n":
                raise ValueError("raw newline in label value")
            else:
                val.append(c)
                j += 1
        labels[name] = "".join(val)
        i = j + 1
        if i < len(s) and s[i] == ",":
            i += 1
        elif i < len(s) and s[i] != "}":
            raise ValueError("expected ',' or '}' after a label")


def parse_exposition(text):
    """Returns (families {name: {"help", "type", "samples": [(sample name, labels, value)]}},
    errors [str]). Checks the grammar and the rules of the text format 0.0.4."""
    fams, errors, series = {}, [], set()
    order, current = [], None

    def fam(name):
        if name not in fams:
            fams[name] = {"help": None, "type": None, "samples": []}
            order.append(name)
        return fams[name]

    def family_of(sample):
        for suffix in ("_bucket", "_sum", "_count"):
            base = sample[:-len(suffix)]
            if sample.endswith(suffix) and base in fams and fams[base]["type"] in ("summary", "histogram"):
                return base
        return sample

    for n, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        where = "line %d: %s" % (n, line[:200])
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                rest = parts[3] if len(parts) > 3 else ""
                if not NAME_RE.match(name):
                    errors.append("bad metric name in %s" % where)
                f = fam(name)
                if f["samples"]:
                    errors.append("%s after the family's samples: %s" % (parts[1], where))
                key = parts[1].lower()
                if f[key] is not None:
                    errors.append("second %s: %s" % (parts[1], where))
                if key == "type" and rest not in TYPES:
                    errors.append("unknown type: %s" % where)
                f[key] = rest
                current = name
            continue  # other comments are allowed
        m = re.match(r"^([^{\s]+)", line)
        if not m:
            errors.append("no metric name: " + where)
            continue
        name = m.group(1)
        if not NAME_RE.match(name):
            errors.append("bad metric name: " + where)
        i = m.end()
        labels = {}
        try:
            if i < len(line) and line[i] == "{":
                labels, i = parse_labels(line, i)
        except ValueError as e:
            errors.append("%s: %s" % (e, where))
            continue
        rest = line[i:]
        if not rest.startswith(" "):
            errors.append("no value: " + where)
            continue
        fields = rest.split()
        if len(fields) not in (1, 2):
            errors.append("bad value/timestamp: " + where)
            continue
        try:
            value = float(fields[0])  # NaN, +Inf, -Inf and prometheus-cpp's "Nan" included
            if len(fields) == 2:
                int(fields[1])
        except ValueError:
            errors.append("bad number: " + where)
            continue
        base = family_of(name)
        if base not in fams or fams[base]["type"] is None:
            errors.append("sample before its TYPE: " + where)
            f = fam(base)
        else:
            f = fams[base]
        if base != current:
            errors.append("family %s not grouped (sample after another family): %s" % (base, where))
        key = (name, tuple(sorted(labels.items())))
        if key in series:
            errors.append("duplicate series: " + where)
        series.add(key)
        f["samples"].append((name, labels, value))
        # The samples a TYPE allows.
        t = f["type"]
        if t in ("counter", "gauge", "untyped"):
            if name != base:
                errors.append("%s sample named %s: %s" % (t, name, where))
            if t == "counter" and not value >= 0:
                errors.append("counter value not >= 0: " + where)
            if "le" in labels or "quantile" in labels:
                errors.append("%s with le/quantile label: %s" % (t, where))
        elif t == "summary":
            if name == base and "quantile" not in labels:
                errors.append("summary sample without quantile: " + where)
            if name != base and name not in (base + "_sum", base + "_count"):
                errors.append("summary sample %s: %s" % (name, where))
        elif t == "histogram":
            if name == base + "_bucket" and "le" not in labels:
                errors.append("histogram bucket without le: " + where)
            if name not in (base + "_bucket", base + "_sum", base + "_count"):
                errors.append("histogram sample %s: %s" % (name, where))
    for name, f in fams.items():
        if f["type"] is None:
            errors.append("family %s has no TYPE" % name)
        if not f["help"]:
            errors.append("family %s has no HELP" % name)
    return fams, errors


# ---------------------------------------------------------------------------------------------
# the shared run


def generate_traffic():
    gen = os.path.join(TOOLS, "gen_traffic.py")
    for mod in ("scapy.all", "cryptography.hazmat.primitives.ciphers.aead"):
        chk = subprocess.run([PY, "-c", "import " + mod], capture_output=True, text=True)
        if chk.returncode != 0:
            return "skip: %s cannot import %s (apt-get install python3-scapy python3-cryptography)" % (PY, mod)
    p = subprocess.run([PY, gen, os.path.join(WORK, "gen"), "--set", "l7"], capture_output=True,
                       text=True, timeout=300)
    if p.returncode != 0:
        return "gen_traffic.py --set l7 failed (%d): %s" % (p.returncode, p.stderr[-2000:])
    return ""


def start_prometheus(run):
    """Starts Prometheus on a free loopback port scraping l7gate's metrics port."""
    pdir = os.path.join(WORK, "prometheus")
    os.makedirs(os.path.join(pdir, "data"))
    cfg = os.path.join(pdir, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: %ds\n  scrape_timeout: %ds\n"
                "scrape_configs:\n  - job_name: l7gate\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % (SCRAPE_INTERVAL, SCRAPE_INTERVAL, run["metrics_port"]))
    run["prom_port"] = harness.free_port()
    while run["prom_port"] == run["metrics_port"]:
        run["prom_port"] = harness.free_port()
    run["prom_url"] = "http://127.0.0.1:%d" % run["prom_port"]
    log = open(os.path.join(pdir, "prometheus.log"), "w")
    cmd = [PROMETHEUS, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(pdir, "data"),
           "--web.listen-address=127.0.0.1:%d" % run["prom_port"], "--log.level=warn",
           "--storage.tsdb.retention.time=1h"]
    run["prom"] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=pdir,
                                   start_new_session=True)
    log.close()
    unittest.addModuleCleanup(stop_process, run["prom"], "prometheus")
    deadline = time.time() + 60
    while time.time() < deadline:
        if run["prom"].poll() is not None:
            break
        try:
            if http_get(run["prom_url"] + "/-/ready", timeout=2)[0] == 200:
                return ""
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    with open(os.path.join(pdir, "prometheus.log"), errors="replace") as f:
        tail = f.read()[-2000:]
    return "Prometheus did not become ready (exit %s):\n%s" % (run["prom"].poll(), tail)


def do_run():
    run = {"error": None, "skip": None, "prom_skip": None, "bodies": 0, "body": None,
           "body_time": None, "stats": None}
    if os.geteuid() != 0:
        run["skip"] = "needs root (DPDK EAL)"
        return run
    if not BIN or not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        run["skip"] = "L7GATE_BIN does not name the l7gate binary (%r)" % BIN
        return run
    listed, _ = l7gate_lists_metrics()
    if not listed:
        run["error"] = "l7gate -h does not list --metrics: the Prometheus exporter is missing"
        return run
    err = generate_traffic()
    if err:
        if err.startswith("skip: "):
            run["skip"] = err[6:]
        else:
            run["error"] = err
        return run
    run["metrics_port"] = harness.free_port()
    why = ensure_prometheus()
    if why:
        run["prom_skip"] = why
    else:
        err = start_prometheus(run)
        if err:
            run["error"] = err
            return run

    work = os.path.join(WORK, "run")
    os.makedirs(work)
    empty = os.path.join(work, "empty.pcap")
    write_pcap(empty, [])
    policy = os.path.join(work, "policy.yaml")
    with open(policy, "w") as f:
        f.write(POLICY)
    stats = os.path.join(work, "stats.json")
    prefix = "l7gprom%d" % os.getpid()
    metrics_url = "http://127.0.0.1:%d/metrics" % run["metrics_port"]
    cmd = [BIN, "--no-huge", "--no-pci", "-m", "1024", lcores_arg(2), "--log-level=*:warning",
           "--file-prefix", prefix,
           "--vdev", "net_pcap0,rx_pcap=%s,tx_pcap=%s" % (os.path.join(WORK, "gen", "l7.pcap"),
                                                         os.path.join(work, "out0.pcap")),
           "--vdev", "net_pcap1,rx_pcap=%s,tx_pcap=%s" % (empty, os.path.join(work, "out1.pcap")),
           "--", "--clock", "capture", "--duration", str(DURATION), "--policy", policy,
           "--metrics", "127.0.0.1:%d" % run["metrics_port"], "--stats-json", stats,
           "--flow-log", os.path.join(work, "flows.jsonl")]  # the record sinks' families (Flow export)
    run["cmd"] = cmd
    out = open(os.path.join(work, "l7gate.out"), "w")
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    harness.note_l7gate("l7gate --metrics", path=os.path.join(work, "l7gate.out"))
    unittest.addModuleCleanup(shutil.rmtree, os.path.join("/var/run/dpdk", prefix), True)
    unittest.addModuleCleanup(stop_process, p, "l7gate")
    # Scrape /metrics ourselves while l7gate runs; keep the last body.
    deadline = time.time() + DURATION + 60
    while p.poll() is None and time.time() < deadline:
        try:
            status, body = http_get(metrics_url, timeout=2)
            if status == 200:
                run["bodies"] += 1
                run["body"] = body
                run["body_time"] = time.time()
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    if p.poll() is None:
        stop_process(p, "l7gate")
        run["error"] = "l7gate still running %d s after its --duration: stopped" % (DURATION + 60)
    with open(os.path.join(work, "l7gate.out"), errors="replace") as f:
        output = f.read()
    run["describe"] = "command: %s\nexit code: %s\noutput (tail):\n%s" % (
        " ".join(cmd), p.returncode, "\n".join(output.splitlines()[-20:]))
    if run["body"] is not None:
        with open(os.path.join(work, "metrics.txt"), "w") as f:
            f.write(run["body"])
    if run["error"] is None and p.returncode != 0:
        run["error"] = "l7gate did not exit 0\n" + run["describe"]
    if run["error"] is None and run["bodies"] == 0:
        run["error"] = "no successful GET %s while l7gate ran\n%s" % (metrics_url, run["describe"])
    if run["error"] is None:
        try:
            with open(stats) as f:
                run["stats"] = json.load(f)
        except (OSError, ValueError) as e:
            run["error"] = "stats JSON: %s\n%s" % (e, run["describe"])
    return run


def shared_run(test):
    global RUN
    if RUN is None:
        RUN = do_run()
    if RUN["skip"]:
        test.skipTest(RUN["skip"])
    if RUN["error"]:
        test.fail(RUN["error"])
    return RUN


# ---------------------------------------------------------------------------------------------


class ExpositionTest(unittest.TestCase):
    """The /metrics body fetched during the run, checked against the text format."""

    maxDiff = 4000

    def test_exposition_format(self):
        r = shared_run(self)
        fams, errors = parse_exposition(r["body"])
        self.assertEqual(errors[:20], [], "%d problem(s) in the exposition" % len(errors))
        for name, typ in FAMILIES.items():
            with self.subTest(family=name):
                self.assertIn(name, fams, "family missing from /metrics")
                self.assertEqual(fams[name]["type"], typ)
                self.assertGreater(len(fams[name]["help"] or ""), 20, "HELP must explain the metric")
        for name, f in fams.items():
            if name.startswith("l7gate_"):
                self.assertEqual(name.endswith("_total"), f["type"] == "counter",
                                 "%s (%s): counters, and only counters, end in _total" % (name, f["type"]))
        # Values that must be there during the run.
        rx = {(s[1]["port"], s[1]["queue"]): s[2] for s in fams["l7gate_rx_packets_total"]["samples"]}
        self.assertIn(("0", "0"), rx)
        self.assertGreater(rx[("0", "0")], 0, "port 0 received the replayed traffic")
        self.assertEqual({s[1]["reason"] for s in fams["l7gate_drops_total"]["samples"]},
                         set(r["stats"]["drops"]), "every drop reason, zeros included")
        self.assertEqual(fams["l7gate_policy_generation"]["samples"][0][2], 1)
        self.assertEqual(fams["l7gate_policy_applied_generation"]["samples"][0][2], 1, "every worker runs it")
        self.assertEqual(fams["l7gate_policy_retired_pending"]["samples"][0][2], 0)
        self.assertEqual({s[2] for s in fams["l7gate_worker_policy_generation"]["samples"]}, {1})
        services = {s[1]["service"]: s[2] for s in fams["l7gate_control_service_seconds_total"]["samples"]}
        self.assertEqual(set(services), {"watchdog", "flow_records", "hosts", "queries", "policy", "metrics"},
                         "the control services (flow_records: this run has --flow-log)")
        self.assertGreater(services["metrics"], 0, "the metrics service's time is measured")
        self.assertEqual({s[1]["shaper"]: s[2] for s in fams["l7gate_shaper_rate_bits"]["samples"]},
                         {"bulk": 20e6})

    def test_promtool_lint(self):
        r = shared_run(self)
        if not os.access(PROMTOOL, os.X_OK):
            self.skipTest("%s missing (apt-get install prometheus)" % PROMTOOL)
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=r["body"], capture_output=True,
                           text=True, timeout=60)
        remarks = [ln.strip() for ln in (p.stdout + p.stderr).splitlines()
                   if ln.strip().startswith("l7gate_")]
        self.assertEqual(sorted(set(remarks) - KNOWN_LINT), [], "promtool check metrics:\n" + p.stdout + p.stderr)


class PrometheusTest(unittest.TestCase):
    """What Prometheus scraped agrees with the stats JSON; the dashboard's queries work."""

    maxDiff = 4000

    def setUp(self):
        r = shared_run(self)
        if r["prom_skip"]:
            self.skipTest(r["prom_skip"])
        self.r = r

    def query(self, promql, at=None):
        params = {"query": promql}
        if at is not None:
            params["time"] = "%.3f" % at
        url = self.r["prom_url"] + "/api/v1/query?" + urllib.parse.urlencode(params)
        try:
            _, body = http_get(url, timeout=30)
        except urllib.error.HTTPError as e:
            body = e.read().decode("utf-8", errors="replace")
        return json.loads(body)

    def vector(self, promql, label):
        """{label value: float} of an instant vector query (last scraped values)."""
        res = self.query(promql)
        self.assertEqual(res.get("status"), "success", "%s: %s" % (promql, res))
        return {s["metric"].get(label, ""): float(s["value"][1]) for s in res["data"]["result"]}

    def scalar(self, promql):
        v = self.vector(promql, "__name__")
        self.assertEqual(len(v), 1, "%s: %r" % (promql, v))
        return next(iter(v.values()))

    def test_1_scraped_values_equal_the_stats_at_exit(self):
        st = self.r["stats"]
        scrapes = self.scalar('sum(count_over_time(l7gate_flows_created_total[1m]))')
        self.assertGreaterEqual(scrapes, 3, "Prometheus scraped l7gate at least 3 times")
        self.assertEqual(self.scalar('max(max_over_time(up{job="l7gate"}[1m]))'), 1)
        rx = self.vector('sum by (port) (last_over_time(l7gate_rx_packets_total[1m]))', "port")
        tx = self.vector('sum by (port) (last_over_time(l7gate_tx_packets_total[1m]))', "port")
        for p in st["ports"]:
            with self.subTest(port=p["port"]):
                self.assertEqual(rx.get(str(p["port"])), p["rx_packets"], "rx packets")
                self.assertEqual(tx.get(str(p["port"])), p["tx_packets"], "tx packets")
                for q in p["queues"]:
                    sel = '{port="%d",queue="%d"}' % (p["port"], q["queue"])
                    self.assertEqual(self.scalar("last_over_time(l7gate_rx_packets_total%s[1m])" % sel),
                                     q["rx_packets"], "rx packets of queue %d" % q["queue"])
                    self.assertEqual(self.scalar("last_over_time(l7gate_rx_bytes_total%s[1m])" % sel),
                                     q["rx_bytes"], "rx bytes of queue %d" % q["queue"])
        self.assertGreater(st["ports"][0]["rx_packets"], 0, "the traffic was replayed")
        drops = self.vector("last_over_time(l7gate_drops_total[1m])", "reason")
        self.assertEqual(drops, {k: float(v) for k, v in st["drops"].items()}, "drops by reason")
        self.assertGreater(drops.get("policy", 0), 0, "the policy dropped SSH")
        self.assertEqual(self.scalar("last_over_time(l7gate_flows_created_total[1m])"),
                         st["flows"]["created"], "flows created")

    def test_2_every_dashboard_query_is_valid_promql(self):
        with open(DASHBOARD) as f:
            dash = json.load(f)
        self.assertGreaterEqual(dash.get("schemaVersion", 0), 36)
        ds_vars = [v for v in dash["templating"]["list"] if v.get("name") == "DS_PROMETHEUS"]
        self.assertEqual(len(ds_vars), 1, "a datasource variable DS_PROMETHEUS")
        self.assertEqual((ds_vars[0]["type"], ds_vars[0]["query"]), ("datasource", "prometheus"))
        exprs = dashboard_exprs(dash)
        self.assertGreaterEqual(len(exprs), 10)
        at = self.r["body_time"]  # while l7gate ran
        # Panels that must have series for this run, once a trailing "> 0" filter is taken off
        # (the replay ends within a second, so rates are 0 by then; the others may be empty:
        # no malformed packets, no risks, no reload, ...).
        must = ("Throughput per port", "Packets per port", "Drops by reason", "Top protocols",
                "Categories", "Verdicts by reason", "Policy generation", "Last reload", "Flows active",
                "Flows created and ended", "Cycles per packet", "Busy ratio", "Shaper rates",
                "Shaper throughput", "Shaper queues and drops", "Flow records by sink", "Sink queues")
        empty = []
        for title, expr in exprs:
            q = grafana_to_promql(expr)
            with self.subTest(panel=title, expr=q):
                res = self.query(q, at=at)
                self.assertEqual(res.get("status"), "success", "Prometheus refused the query: %s" % res)
                if title in must:
                    unfiltered = re.sub(r"\s*>\s*0\s*$", "", q)
                    res = self.query(unfiltered, at=at)
                    if res.get("status") != "success" or not res["data"]["result"]:
                        empty.append((title, unfiltered))
        self.assertEqual(empty, [], "panels without series while l7gate ran")
        self.assertTrue(set(must) <= {t for t, _ in exprs}, "every panel named above is in the dashboard")
        for panel in dash["panels"]:
            if panel.get("type") != "row":
                self.assertEqual(panel.get("datasource", {}).get("uid"), "${DS_PROMETHEUS}", panel.get("title"))

    def test_3_dashboard_metrics_exist(self):
        with open(DASHBOARD) as f:
            dash = json.load(f)
        text = json.dumps(dash)
        used = set(METRIC_IN_EXPR.findall(text))
        self.assertGreaterEqual(len(used), 20)
        fams, _ = parse_exposition(self.r["body"])
        self.assertEqual(sorted(used - set(fams)), [], "dashboard metrics missing from /metrics")



class ConfigFilesTest(unittest.TestCase):
    """The shipped examples on their own (no l7gate run)."""

    def test_prometheus_yml_is_valid(self):
        if not os.access(PROMTOOL, os.X_OK):
            self.skipTest("%s missing (apt-get install prometheus)" % PROMTOOL)
        p = subprocess.run([PROMTOOL, "check", "config", PROM_CONFIG_EXAMPLE], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_dashboard_uses_only_contract_families(self):
        with open(DASHBOARD) as f:
            dash = json.load(f)
        used = set(METRIC_IN_EXPR.findall(json.dumps(dash)))
        self.assertEqual(sorted(used - set(FAMILIES)), [], "dashboard metrics that l7gate does not define")
        ids = [p["id"] for p in dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are unique")


if __name__ == "__main__":
    harness.main()
