#!/bin/bash
# Soak test (not part of tools/test.sh): mixed generated traffic replayed endlessly through
# l7gate for DURATION seconds while the policy is reloaded every RELOAD seconds (alternating
# two policies and an invalid file). Every SAMPLE seconds it records l7gate's RSS; at the end
# it prints the first, minimum, maximum and last figures, rx = tx + drops, and the mbuf pools
# at exit (stats JSON "mempools"). It fails when RSS grew more than 5% after the first sample,
# or when more mbufs are out of the pool at exit than the replayed capture holds (net_pcap's
# infinite_rx keeps the whole capture in mbufs; anything beyond it would be a leak). DPDK
# 22.11's /mempool/info telemetry has no free count, so the pools are read at exit only.
#   tools/soak.sh [--duration 600] [--reload 3] [--sample 10] [--bin build/l7gate]
set -uo pipefail
cd "$(dirname "$0")/.."
duration=600 reload=3 sample=10 bin=build/l7gate
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --reload) reload=$2; shift 2 ;;
    --sample) sample=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    *) echo "usage: tools/soak.sh [--duration S] [--reload S] [--sample S] [--bin BIN]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "soak: needs root (DPDK vdevs)"; exit 77; }
[ -x "$bin" ] || { echo "soak: $bin not built (tools/build.sh release)"; exit 1; }
exec /usr/bin/python3 - "$bin" "$duration" "$reload" "$sample" <<'PY'
import json, os, subprocess, sys, tempfile, time
sys.path.insert(0, "tests/integration")
import harness
bin_, duration, reload_s, sample_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
work = tempfile.mkdtemp(prefix="l7gate-soak-")
frames = []
for s in ("l7", "flows", "bridge"):
    subprocess.run(["/usr/bin/python3", "tools/gen_traffic.py", work, "--set", s], check=True, capture_output=True)
for name in sorted(os.listdir(work)):
    if name.endswith(".pcap") and "malformed" not in name:
        frames += [f for _, f in harness.read_pcap_records(os.path.join(work, name), strict=False)]
mixed = os.path.join(work, "mixed.pcap")
harness.write_pcap(mixed, frames)
empty = os.path.join(work, "empty.pcap")
harness.write_pcap(empty, [])
pol = os.path.join(work, "policy.yaml")
A = "version: 1\ndefault_policy: p\npolicies:\n  p: {default: pass, protocols: {DNS: drop}}\n"
B = ("version: 1\ndefault_policy: p\nshapers:\n  s: {rate: 50mbit, burst: 256kb}\n"
     "policies:\n  p: {default: pass, protocols: {HTTP: \"shape:s\", SSH: reject}}\n")
open(pol, "w").write(A)
prefix = "l7gsoak%d" % os.getpid()
stats = os.path.join(work, "stats.json")
mbufs = max(16384, 2 * len(frames) + 8192)
cmd = [bin_, "--no-huge", "--no-pci", "-m", "1024", harness.lcores_arg(2), "--file-prefix", prefix,
       "--vdev", "net_pcap0,rx_pcap=%s,tx_pcap=/dev/null,infinite_rx=1" % mixed,
       "--vdev", "net_pcap1,rx_pcap=%s,tx_pcap=/dev/null" % empty,
       "--", "--policy", pol, "--duration", str(duration), "--stats-json", stats, "--metrics", "off",
       "--mbufs", str(mbufs), "--flows", "65536"]
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "stderr.log"), "w"))

def rss_kib():
    with open("/proc/%d/status" % p.pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return -1

samples, t0, next_reload, next_sample, n_reload, flip = [], time.time(), time.time() + reload_s, time.time() + sample_s, 0, 0
while p.poll() is None:
    now = time.time()
    if now >= next_reload:
        flip = (flip + 1) % 3
        open(pol + ".tmp", "w").write([A, B, "version: 1\ndefault_policy: nosuch\n"][flip])
        os.rename(pol + ".tmp", pol)
        n_reload += 1
        next_reload += reload_s
    if now >= next_sample:
        try:
            samples.append((round(now - t0), rss_kib()))
            print("soak: t=%4ds RSS %d KiB" % samples[-1], flush=True)
        except OSError:
            pass
        next_sample += sample_s
    time.sleep(0.2)
st = json.load(open(stats)) if os.path.exists(stats) else None
print("soak: exit %s after %d s, %d policy rewrites" % (p.returncode, time.time() - t0, n_reload))
ok = p.returncode == 0 and st is not None and len(samples) >= 2
if st:
    t = st["totals"]
    print("soak: rx %d tx %d dropped %d (rx = tx + dropped: %s); reloads ok %s failed %s; mempools at exit %s"
          % (t["rx_packets"], t["tx_packets"], t["dropped"], t["rx_packets"] == t["tx_packets"] + t["dropped"],
             st.get("policy", {}).get("reloads_ok"), st.get("policy", {}).get("reloads_failed"), st.get("mempools")))
    ok = ok and t["rx_packets"] == t["tx_packets"] + t["dropped"]
    in_use = sum(m["in_use"] for m in st.get("mempools", []))
    print("soak: mbufs out of the pool at exit %d, frames in the replayed capture %d" % (in_use, len(frames)))
    ok = ok and in_use <= len(frames)
if len(samples) >= 2:
    rss = [s[1] for s in samples[1:]]
    print("soak: RSS KiB first %d min %d max %d last %d" % (samples[0][1], min(rss), max(rss), rss[-1]))
    ok = ok and max(rss) <= rss[0] * 1.05
print("soak: %s" % ("OK" if ok else "FAILED"))
if not os.environ.get("L7GATE_KEEP_TMP"):
    import shutil
    shutil.rmtree(work, ignore_errors=True)
sys.exit(0 if ok else 1)
PY
