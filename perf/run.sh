#!/bin/bash
# The l7gate benchmark suite: testpmd io forwarding (the I/O limit of these virtual devices),
# l7gate (pass-all) and ndpiReader 4.2 on the same traffic, in alternating runs, min / median
# / max. Prints one table and writes perf/results/<date>.md (+ .jsonl with every run's
# figures). See perf/README.md for what is measured and how.
#
#   perf/run.sh [--runs N] [--duration S] [--mixes established,real,attack,newflow]
#               [--flows N] [--hugepages N] [--no-build] [--keep]   (also: --mixes syn,flood)
#               [--l7gate-args "ARGS"]  (added to every l7gate run, e.g. --no-extra-dissection)
#               [--peers suricata] [--onepass-flows N]
#
# --peers suricata adds Suricata 7 (installed by perf/install-suricata.sh from
# bookworm-backports when missing; perf/ only) in the same rotation, configured by
# perf/suricata/suricata.yaml (IDS mode, one worker core), in two configurations of equal work:
#   suricata         no rules (flow tracking and protocol identification), beside l7gate's
#                    pass-all run;
#   suricata-policy  config/demo-policy.yaml's enforceable markers as rules
#                    (perf/suricata/policy_rules.py), beside l7gate-policy (l7gate with
#                    --policy config/demo-policy.yaml).
# Both replay the established and real mixes on the same net_pcap vdev; Suricata's rate is its
# own decoder.pkts over the time from "Engine started" to the SIGINT (start-up left out, as
# l7gate's elapsed_seconds leaves it out). On the newflow mix, l7gate-file and suricata-file
# read a one-pass capture of --onepass-flows (200,000) new flows from the file (Suricata with
# -r, l7gate with net_pcap and --bench-stop-at-end): new flows/s = (flows of the capture -
# flows of its first 10%) / (wall time of the capture - wall time of its first 10%).
#
# The new-flow mixes (newflow, attack, syn) run l7gate with --bench-fresh-flows: every pass of
# the replay rewrites the addresses, so every pass is new flows, with short idle timeouts and
# a table sized for them (FRESH_ARGS below): the steady state of flow setup, classification
# and expiry. Their rate is the mean of l7gate's per-second RX rates after the first second
# (the end-of-run flush of millions of flows is left out).
# flood replays the attack capture with only its bare SYNs rewritten (--bench-fresh-syns):
# every pass the flood (and each connection's own SYN) is new half-open flows, while the
# connections' other packets stay known flows. testpmd and l7gate only.
#
# Run as root: it raises /proc/sys/vm/nr_hugepages to --hugepages (default 2048 x 2 MiB) for
# the run and restores the previous value at exit (unless another user changed it meanwhile);
# DPDK then runs with --in-memory (no hugetlbfs mount needed). Without root, or when the
# pages cannot be had, it falls back to --no-huge and records that in the results.
# Cores: l7gate and testpmd run on -l 0-1 (lcore 0 control/main, lcore 1 the one worker /
# forwarding core); ndpiReader runs single-threaded pinned to core 1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

runs=5
duration=5
mixes=established,real,attack,newflow
flows=10000
hugepages=2048
build=1
keep=0
l7args=()
peers=""
onepass_flows=200000
usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --mixes) mixes=$2; shift 2 ;;
    --flows) flows=$2; shift 2 ;;
    --hugepages) hugepages=$2; shift 2 ;;
    --l7gate-args) read -r -a l7args <<< "$2"; shift 2 ;;
    --peers) peers=$2; shift 2 ;;
    --onepass-flows) onepass_flows=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "perf/run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
case ",$peers," in
  ,,|,suricata,) ;;
  *) echo "perf/run.sh: unknown --peers '$peers' (suricata)" >&2; exit 2 ;;
esac
for v in "$runs" "$duration" "$flows" "$hugepages" "$onepass_flows"; do
  if ! [[ "$v" =~ ^[0-9]+$ ]] || [ "$v" -eq 0 ]; then
    echo "perf/run.sh: bad number '$v'" >&2
    exit 2
  fi
done

PY=/usr/bin/python3
# A fresh machine: the project's packages first (idempotent; quick when all are there).
if [ "$(id -u)" -eq 0 ]; then
  tools/install-deps.sh >&2
fi
need() {
  command -v "$1" >/dev/null 2>&1 || { echo "perf/run.sh: $1 not found (apt-get install $2)" >&2; exit 2; }
}
need dpdk-testpmd dpdk
need ndpiReader libndpi-bin
need taskset util-linux
need timeout coreutils
$PY -c 'import scapy, cryptography' 2>/dev/null ||
  { echo "perf/run.sh: $PY needs scapy and cryptography (apt-get install python3-scapy python3-cryptography)" >&2; exit 2; }

if [ "$peers" = suricata ]; then
  # Installs it when missing (root); fails with the reason otherwise.
  perf/install-suricata.sh >&2
  need suricata suricata
fi

if [ "$build" = 1 ]; then
  builddir=$(tools/build.sh release | tail -n 1)
else
  builddir=build
fi
[ -x "$ROOT/$builddir/l7gate" ] || { echo "perf/run.sh: $builddir/l7gate missing (run tools/build.sh release)" >&2; exit 2; }

tmp=$(mktemp -d /tmp/l7gate-perf.XXXXXX)
huge_old=""
huge_set=""
child=""
cleanup() {
  local rc=$?
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill -INT "$child" 2>/dev/null || true
    sleep 1
    kill -KILL "$child" 2>/dev/null || true
  fi
  # Restore the previous value, unless another user changed it while we ran.
  if [ -n "$huge_old" ] && [ "$(cat /proc/sys/vm/nr_hugepages 2>/dev/null)" = "$huge_set" ]; then
    echo "$huge_old" > /proc/sys/vm/nr_hugepages 2>/dev/null || true
  fi
  if [ "$keep" = 1 ]; then
    echo "perf/run.sh: run outputs kept in $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A private copy: a rebuild of build/ during the run (someone else's ninja) must not swap the
# binary under the benchmark.
cp "$ROOT/$builddir/l7gate" "$tmp/l7gate"
L7GATE=$tmp/l7gate

# ---- traffic (generated once, cached by generator version: perf/traffic.sh) ---------------
skipped=()
active=()
cache=""
IFS=, read -r -a mix_list <<< "$mixes"
for mix in "${mix_list[@]}"; do
  case "$mix" in
    established|attack|syn|newflow|flood|real) ;;
    *) echo "perf/run.sh: unknown mix $mix (established, real, attack, syn, newflow, flood)" >&2; exit 2 ;;
  esac
  rc=0
  pcap=$(perf/traffic.sh "$mix" --flows "$flows") || rc=$?
  if [ "$rc" = 3 ]; then
    skipped+=("$mix: ${L7GATE_PCAPS:-../shared/pcaps}/mix-shared.pcap not found (the shared captures are not beside this checkout)")
    continue
  elif [ "$rc" != 0 ]; then
    exit "$rc"
  fi
  cache=$(dirname "$pcap")
  active+=("$mix")
done
[ ${#active[@]} -gt 0 ] || { echo "perf/run.sh: no traffic mix available" >&2; exit 1; }
onepass=""
if [ "$peers" = suricata ] && [[ " ${active[*]} " == *" newflow "* ]]; then
  onepass=$(dirname "$(perf/traffic.sh onepass --flows "$onepass_flows")")
fi
packets_of() { $PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["packets"])' "$cache/$1.json"; }

# ---- memory: hugepages when we can have them ------------------------------------------------
mem=(--no-huge -m 4096)
memory_mode="--no-huge -m 4096 (no hugepages)"
if [ -w /proc/sys/vm/nr_hugepages ]; then
  cur=$(cat /proc/sys/vm/nr_hugepages)
  if [ "$cur" -lt "$hugepages" ]; then
    # Ours to restore at exit, unless someone else changes it meanwhile (see cleanup).
    if echo "$hugepages" > /proc/sys/vm/nr_hugepages 2>/dev/null; then
      huge_old=$cur
      huge_set=$hugepages
    fi
  fi
  free_pages=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
  if [ "$free_pages" -ge $((hugepages * 9 / 10)) ]; then
    mem=(--in-memory)
    memory_mode="hugepages: $free_pages x 2 MiB free (nr_hugepages $cur before the run, $(cat /proc/sys/vm/nr_hugepages) during), EAL --in-memory"
  else
    memory_mode="--no-huge -m 4096 (wanted $((hugepages * 9 / 10)) free hugepages, only $free_pages free: another process holds the rest)"
  fi
else
  memory_mode="--no-huge -m 4096 (not root: /proc/sys/vm/nr_hugepages not writable)"
fi
echo "memory: $memory_mode" >&2

# ---- one run of each tool ------------------------------------------------------------------
raw=$tmp/raw.jsonl
: > "$raw"

wait_child() {  # wait_child SECONDS: wait for $child, kill it after SECONDS
  local limit=$1 waited=0 rc=0
  while kill -0 "$child" 2>/dev/null; do
    if [ "$waited" -ge $((limit * 10)) ]; then
      echo "perf/run.sh: pid $child still running after ${limit}s, killing it" >&2
      kill -KILL "$child" 2>/dev/null || true
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  wait "$child" || rc=$?
  child=""
  return $rc
}

wait_output() {  # FILE PATTERN SECONDS: until FILE holds PATTERN (0) or $child is gone (1)
  local i
  for ((i = 0; i < $3 * 50; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$child" 2>/dev/null || break
    sleep 0.02
  done
  grep -q "$2" "$1" 2>/dev/null
}

record() {  # record MIX TOOL RUN JSON_LINE
  echo "$4" >> "$raw"
  $PY - "$4" <<'PY' >&2
import json, sys
r = json.loads(sys.argv[1])
pps = r.get("pps")
print("  run %d %-12s %-12s %8s Mpps  cyc/pkt %s" % (
    r["run"], r["mix"], r["tool"], "%.3f" % (pps / 1e6) if pps else "-",
    "%.0f" % r["cyc_pkt"] if r.get("cyc_pkt") else "-"))
PY
}

# New flows on every pass: 1-2 s timeouts (expiry has second granularity) and a table for
# many millions of them (l7gate's default is 262,144 per worker, 30 s for a half-open flow):
# SYNs arrive at 5 Mpps until the first expiry, and at most 6.2M were alive at once in
# 10 s runs, so 8M entries (about 2.2 GB with their metadata, within the 4 GB of hugepages).
# A run whose table still filled (table_full in its stats) measured the cheaper table-full
# path: bench.py leaves it out of the figures.
FRESH_ARGS=(--flows 8388608 --dpi-flows 65536 --timeouts tcp-syn=1,tcp=2,tcp-closed=1,udp=1,other=1)
fresh_mix() { case "$1" in newflow|attack|syn|flood) return 0 ;; esac; return 1; }

run_l7gate() {  # MIX RUN [policy]
  local mix=$1 run=$2 pcap=$cache/$1.pcap out=$tmp/$1-l7gate-$2 n extra=() mode=replay tool=l7gate
  n=$(packets_of "$mix")
  if fresh_mix "$mix"; then
    extra=(--bench-fresh-flows "$n" "${FRESH_ARGS[@]}")
    mode=fresh
  fi
  if [ "$mix" = flood ]; then
    extra+=(--bench-fresh-syns)
  fi
  if [ "${3:-}" = policy ]; then
    extra+=(--policy "$ROOT/config/demo-policy.yaml")
    out=$tmp/$1-l7gate-policy-$2
    tool=l7gate-policy
  fi
  if ! timeout -s INT $((duration + 180)) "$L7GATE" -l 0-1 "${mem[@]}" --no-pci \
      --file-prefix "l7perf-$$-$mix-$run-g" --log-level='*:warning' \
      --vdev "net_pcap0,rx_pcap=$pcap,infinite_rx=1" --vdev net_null1,no-rx=1 \
      -- --metrics off --duration "$duration" --stats-interval 1 --stats-json "$out.json" \
      --mbufs $((n + 16384)) "${extra[@]}" "${l7args[@]+"${l7args[@]}"}" > "$out.txt" 2>&1; then
    echo "perf/run.sh: l7gate failed on $mix (run $run):" >&2; tail -n 20 "$out.txt" >&2; exit 1
  fi
  record "$mix" "$tool" "$run" "$($PY perf/bench.py parse-l7gate "$mix" "$run" "$out.json" "$out.txt" "$cache/$mix.json" "$mode" "$tool")"
}

run_l7gate_1pass() {  # MIX RUN: one pass, no infinite_rx: every flow is new
  local mix=$1 run=$2 pcap=$cache/$1.pcap out=$tmp/$1-l7gate1-$2
  if ! timeout -s INT 300 "$L7GATE" -l 0-1 "${mem[@]}" --no-pci \
      --file-prefix "l7perf-$$-$mix-$run-1" --log-level='*:warning' \
      --vdev "net_pcap0,rx_pcap=$pcap" --vdev net_null1,no-rx=1 \
      -- --metrics off --idle-exit 300 --stats-json "$out.json" "${l7args[@]+"${l7args[@]}"}" > "$out.txt" 2>&1; then
    echo "perf/run.sh: l7gate (one pass) failed on $mix (run $run):" >&2; tail -n 20 "$out.txt" >&2; exit 1
  fi
  record "$mix" l7gate-1pass "$run" "$($PY perf/bench.py parse-l7gate "$mix" "$run" "$out.json" "$out.txt" "$cache/$mix.json" single-pass)"
}

run_testpmd() {  # MIX RUN
  local mix=$1 run=$2 pcap=$cache/$1.pcap out=$tmp/$1-testpmd-$2 n
  n=$(packets_of "$mix")
  dpdk-testpmd -l 0-1 "${mem[@]}" --no-pci --file-prefix "l7perf-$$-$mix-$run-t" \
    --log-level='*:warning' \
    --vdev "net_pcap0,rx_pcap=$pcap,infinite_rx=1" --vdev net_null1,no-rx=1 \
    -- --forward-mode=io --auto-start --nb-cores=1 --total-num-mbufs $((n + 16384)) \
    --stats-period 1 --record-core-cycles < /dev/null > "$out.txt" 2>&1 &
  child=$!
  # Forwarding has started once the first statistics display is out (after the preload).
  wait_output "$out.txt" "NIC statistics for port 0" 120 || true
  if ! kill -0 "$child" 2>/dev/null; then
    wait "$child" || true
    child=""
    echo "perf/run.sh: testpmd failed on $mix (run $run):" >&2; tail -n 20 "$out.txt" >&2; exit 1
  fi
  # At least 3 s: the rate comes from testpmd's per-second displays after the first one.
  sleep $((duration < 3 ? 3 : duration))
  kill -INT "$child"
  wait_child 60 || true
  grep -q "Accumulated forward statistics" "$out.txt" ||
    { echo "perf/run.sh: testpmd printed no final statistics ($mix, run $run):" >&2; tail -n 20 "$out.txt" >&2; exit 1; }
  record "$mix" testpmd "$run" "$($PY perf/bench.py parse-testpmd "$mix" "$run" "$out.txt" "$cache/$mix.json")"
}

run_ndpireader() {  # MIX RUN
  local mix=$1 run=$2 pcap=$cache/$1.pcap out=$tmp/$1-ndpireader-$2 n loops
  n=$(packets_of "$mix")
  # About `duration` seconds of packet processing at ~250 kpps (each loop also re-initialises
  # nDPI, ~50-400 ms): at least 2 loops, at most 10 per second of duration; +1 for the first
  # loop, which is left out (cold caches).
  loops=$(( (duration * 250000 + n / 2) / n ))
  [ "$loops" -ge 2 ] || loops=2
  [ "$loops" -le $((duration * 10)) ] || loops=$((duration * 10))
  loops=$((loops + 1))
  if ! timeout -s INT $((duration * 20 + 120)) taskset -c 1 ndpiReader -i "$pcap" -l "$loops" \
      > "$out.txt" 2>&1; then
    echo "perf/run.sh: ndpiReader failed on $mix (run $run):" >&2; tail -n 20 "$out.txt" >&2; exit 1
  fi
  record "$mix" ndpiReader "$run" "$($PY perf/bench.py parse-ndpireader "$mix" "$run" "$out.txt" "$cache/$mix.json")"
}

# ---- the Suricata peer (--peers suricata) ---------------------------------------------------
SURICATA_CONF=$ROOT/perf/suricata/suricata.yaml
if [ "$peers" = suricata ]; then
  # The shipped policy's enforceable markers as rules; every rule must load (a rule Suricata
  # refused would be work it silently skips).
  $PY perf/suricata/policy_rules.py config/demo-policy.yaml > "$tmp/policy.rules"
  mkdir -p "$tmp/suricata-check"
  if ! suricata -T -c "$SURICATA_CONF" -S "$tmp/policy.rules" -l "$tmp/suricata-check" \
      > "$tmp/suricata-check/out.txt" 2>&1 || grep -q '^E: ' "$tmp/suricata-check/out.txt"; then
    echo "perf/run.sh: Suricata refused the configuration or a rule:" >&2
    grep -E '^(E|W): ' "$tmp/suricata-check/out.txt" >&2 || tail -n 20 "$tmp/suricata-check/out.txt" >&2
    exit 1
  fi
fi

suricata_dpdk_yaml() {  # PCAP MEMPOOL FILE_PREFIX: the per-run dpdk: section, on stdout
  local memyaml
  if [ "${mem[0]}" = --in-memory ]; then
    memyaml='    in-memory: ""'
  else
    memyaml=$(printf '    no-huge: ""\n    m: "4096"')
  fi
  cat <<YAML
%YAML 1.1
---
# Written by perf/run.sh for one run: the same EAL and vdev as the other tools.
dpdk:
  eal-params:
    proc-type: primary
    l: "0-1"
$memyaml
    no-pci: ""
    file-prefix: "$3"
    vdev: "net_pcap0,rx_pcap=$1,infinite_rx=1"
  interfaces:
    - interface: net_pcap0
      threads: 1
      # net_pcap cannot change these; Suricata refuses to start when asked to.
      promisc: true
      multicast: true
      # No checksum validation (l7gate does not verify checksums).
      checksum-checks: false
      checksum-checks-offload: false
      mtu: 1500
      # The preloaded capture plus room for the RX ring, as for testpmd and l7gate.
      mempool-size: $2
      mempool-cache-size: auto
      rx-descriptors: 1024
      tx-descriptors: 1024
      # IDS: no transmit (see perf/README.md: this spares Suricata l7gate's TX work).
      copy-mode: none
      copy-iface: none
YAML
}

run_suricata() {  # MIX RUN none|policy
  local mix=$1 run=$2 conf=$3 pcap=$cache/$1.pcap out n rules=/dev/null t0 t1 tool=suricata started
  out=$tmp/$mix-suricata-$conf-$run
  n=$(packets_of "$mix")
  if [ "$conf" = policy ]; then
    rules=$tmp/policy.rules
    tool=suricata-policy
  fi
  mkdir -p "$out"
  suricata_dpdk_yaml "$pcap" $((n + 16384)) "l7perf-$$-$mix-$run-s$conf" > "$out/dpdk.yaml"
  suricata -c "$SURICATA_CONF" --include "$out/dpdk.yaml" --dpdk -l "$out" -S "$rules" \
    < /dev/null > "$out/stdout.txt" 2>&1 &
  child=$!
  # The worker receives from "Engine started" on (the capture is preloaded before).
  started=0
  wait_output "$out/stdout.txt" "Engine started" 120 && started=1
  t0=$(date +%s.%N)
  if [ "$started" = 0 ] || ! kill -0 "$child" 2>/dev/null; then
    kill -KILL "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
    child=""
    echo "perf/run.sh: suricata failed on $mix ($conf, run $run):" >&2; tail -n 20 "$out/stdout.txt" >&2; exit 1
  fi
  sleep "$duration"
  t1=$(date +%s.%N)
  kill -INT "$child"
  wait_child 60 || true
  record "$mix" "$tool" "$run" "$($PY perf/bench.py parse-suricata "$mix" "$run" "$tool" "$out/eve.json" "$t0" "$t1" "$cache/$mix.json")"
}

# One pass over the one-pass capture and over its first 10%, read from the file; the
# difference of the two cancels start-up and shutdown (see the header).
run_file() {  # MIX RUN l7gate|suricata
  local mix=$1 run=$2 who=$3 part out t0 t1 args=()
  for part in onepass-head onepass; do
    out=$tmp/$mix-$who-file-$run-$part
    t0=$(date +%s.%N)
    if [ "$who" = suricata ]; then
      mkdir -p "$out"
      if ! timeout -s INT 600 suricata -c "$SURICATA_CONF" --runmode single -k none \
          -r "$onepass/$part.pcap" -l "$out" -S /dev/null > "$out/stdout.txt" 2>&1; then
        echo "perf/run.sh: suricata -r failed ($part, run $run):" >&2; tail -n 20 "$out/stdout.txt" >&2; exit 1
      fi
      args+=("$out/eve.json")
    else
      # A table with room for every flow of the capture (they end within seconds of each
      # other, faster than any idle timeout).
      if ! timeout -s INT 600 "$L7GATE" -l 0-1 "${mem[@]}" --no-pci \
          --file-prefix "l7perf-$$-$mix-$run-f" --log-level='*:warning' \
          --vdev "net_pcap0,rx_pcap=$onepass/$part.pcap" --vdev net_null1,no-rx=1 \
          -- --metrics off --bench-stop-at-end --flows 1048576 --stats-json "$out.json" \
          "${l7args[@]+"${l7args[@]}"}" > "$out.txt" 2>&1; then
        echo "perf/run.sh: l7gate (file) failed ($part, run $run):" >&2; tail -n 20 "$out.txt" >&2; exit 1
      fi
      args+=("$out.json")
    fi
    t1=$(date +%s.%N)
    args+=("$t0" "$t1")
  done
  record "$mix" "$who-file" "$run" "$($PY perf/bench.py parse-file "$mix" "$run" "$who" "${args[@]}" "$onepass/onepass.json")"
}

# Which tool runs on which mix: Suricata cannot rewrite addresses on every pass, so it replays
# only the mixes whose flows stay known (established, real); its new-flow figure is the
# one-pass read of the file, on the newflow mix.
applies() {  # TOOL MIX
  case "$1" in
    ndpiReader|l7gate-1pass) [ "$2" != flood ] ;;
    suricata|suricata-policy|l7gate-policy) ! fresh_mix "$2" ;;
    l7gate-file|suricata-file) [ "$2" = newflow ] ;;
    *) return 0 ;;
  esac
}

tools=(testpmd l7gate ndpiReader l7gate-1pass)
if [ "$peers" = suricata ]; then
  tools+=(suricata l7gate-policy suricata-policy l7gate-file suricata-file)
fi
loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)
start_s=$(date +%s)
echo "perf/run.sh: ${#active[@]} mix(es) x ${#tools[@]} tools x $runs runs, ${duration}s each" >&2
for ((run = 1; run <= runs; run++)); do
  for mix in "${active[@]}"; do
    # Rotate the order every run so that no tool always follows the same one.
    for ((k = 0; k < ${#tools[@]}; k++)); do
      tool=${tools[$(( (k + run - 1) % ${#tools[@]} ))]}
      # flood: the attack capture again, only l7gate's steady state beside the I/O limit.
      applies "$tool" "$mix" || continue
      case "$tool" in
        testpmd) run_testpmd "$mix" "$run" ;;
        l7gate) run_l7gate "$mix" "$run" ;;
        l7gate-policy) run_l7gate "$mix" "$run" policy ;;
        suricata) run_suricata "$mix" "$run" none ;;
        suricata-policy) run_suricata "$mix" "$run" policy ;;
        l7gate-file) run_file "$mix" "$run" l7gate ;;
        suricata-file) run_file "$mix" "$run" suricata ;;
        ndpiReader) run_ndpireader "$mix" "$run" ;;
        l7gate-1pass) run_l7gate_1pass "$mix" "$run" ;;
      esac
    done
  done
done
loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report ------------------------------------------------------------------------------
stamp=$(date +%Y-%m-%d_%H%M%S)
meta=$tmp/meta.json
skipped_json=$(printf '%s\n' "${skipped[@]+"${skipped[@]}"}" | $PY -c 'import json,sys; print(json.dumps([l.strip() for l in sys.stdin if l.strip()]))')
$PY - "$meta" "$cache" "$stamp" "$runs" "$duration" "$memory_mode" "$skipped_json" \
    "${active[*]}" "${tools[*]}" "$loadavg_start" "$loadavg_end" "$(( $(date +%s) - start_s ))" <<'PY'
import json, os, subprocess, sys
(path, cache, stamp, runs, duration, memory_mode, skipped, active, tools, la0, la1,
 wall) = sys.argv[1:13]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
def sh(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"
mixes = active.split()
meta = {
    "date": stamp, "cpu": cpu, "cores": os.cpu_count(), "memory_mode": memory_mode,
    "runs": int(runs), "duration": int(duration), "mixes": mixes, "order": tools.split(),
    "skipped": json.loads(skipped), "loadavg_start": la0, "loadavg_end": la1, "wall_s": int(wall),
    "mix_info": {m: json.load(open(os.path.join(cache, m + ".json"))) for m in mixes},
    "git": sh("git", "describe", "--always", "--dirty"),
    "dpdk": sh("dpkg-query", "-W", "-f=${Version}", "dpdk"),
    "ndpi": sh("dpkg-query", "-W", "-f=${Version}", "libndpi-bin"),
    "kernel": sh("uname", "-r"),
}
json.dump(meta, open(path, "w"), indent=1)
PY
report=$tmp/report.md
$PY perf/bench.py report "$raw" "$meta" > "$report"
mkdir -p perf/results
res=perf/results/$stamp.md
{
  echo "# l7gate benchmark $stamp"
  echo
  echo "Command: \`perf/run.sh --runs $runs --duration $duration --mixes $(IFS=,; echo "${active[*]}") --flows $flows${peers:+ --peers $peers --onepass-flows $onepass_flows}${l7args[0]+ --l7gate-args \"${l7args[*]}\"}\`"
  echo "(git $($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["git"])' "$meta"),"\
       "DPDK $(dpkg-query -W -f='${Version}' dpdk 2>/dev/null), nDPI $(dpkg-query -W -f='${Version}' libndpi-bin 2>/dev/null),"\
       "load average $loadavg_start at start, $loadavg_end at end, $(( $(date +%s) - start_s )) s)"
  echo
  echo "Traffic: ${cache#"$ROOT"/} (tools/gen_perf_traffic.py via perf/traffic.sh)."
  echo
  echo "EAL: \`-l 0-1 ${mem[*]} --no-pci --vdev net_pcap0,rx_pcap=MIX.pcap,infinite_rx=1 --vdev net_null1,no-rx=1\`"
  echo
  echo "- l7gate: \`$builddir/l7gate EAL -- --duration $duration --stats-interval 1 --stats-json F --mbufs PACKETS+16384\`; for newflow, attack and syn also \`--bench-fresh-flows PACKETS ${FRESH_ARGS[*]}\` (every pass new flows; rate: mean of the per-second RX rates after the first), for flood the same plus \`--bench-fresh-syns\`"
  echo "- l7gate one pass: \`$builddir/l7gate EAL(without infinite_rx) -- --idle-exit 300 --stats-json F\`"
  echo "- testpmd: \`dpdk-testpmd EAL -- --forward-mode=io --auto-start --nb-cores=1 --total-num-mbufs PACKETS+16384 --stats-period 1 --record-core-cycles\`, SIGINT after $duration s of forwarding"
  echo "- ndpiReader: \`taskset -c 1 ndpiReader -i MIX.pcap -l LOOPS\` (first loop left out)"
  if [ "$peers" = suricata ]; then
    echo "- l7gate-policy: as l7gate, plus \`--policy config/demo-policy.yaml\`"
    echo "- suricata: \`$(suricata -V 2>&1 | head -n 1)\`: \`suricata -c perf/suricata/suricata.yaml --include DPDK.yaml --dpdk -l DIR -S /dev/null\` (DPDK.yaml: the same EAL and vdev, written by run.sh), SIGINT $duration s after \"Engine started\"; suricata-policy: \`-S policy.rules\` (\`perf/suricata/policy_rules.py config/demo-policy.yaml\`)"
    echo "- l7gate-file: \`build/l7gate EAL(vdev net_pcap0,rx_pcap=ONEPASS.pcap, no infinite_rx) -- --bench-stop-at-end --flows 1048576 --stats-json F\`; suricata-file: \`suricata -c perf/suricata/suricata.yaml --runmode single -k none -r ONEPASS.pcap -S /dev/null\`; each on onepass.pcap and onepass-head.pcap ($(basename "$onepass"))"
  fi
  echo
  cat "$report"
} > "$res"
cp "$raw" "perf/results/$stamp.jsonl"
echo
sed -n '/^## Results/,/<details>/p' "$report" | grep -v '<details>'
echo "written: $res (and $stamp.jsonl)"
