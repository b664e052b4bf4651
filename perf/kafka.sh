#!/bin/bash
# Cost of the Kafka export (issue 21): l7gate with --kafka to librdkafka's mock cluster
# (build/tests/kafka_mock, a broker on 127.0.0.1) against the same run without export, on the
# established and newflow mixes, alternating, N runs each; prints the forwarding rate ratio
# on/off (min / median / max) and the export rate (records acked per second) the control
# thread sustained, with what it lost by cause.
#   perf/kafka.sh [--runs N] [--duration S] [--mixes established,newflow,syn] [--with-log]   (as root)
# --with-log adds a third side, --flow-log /dev/null: the record stream (the workers' record
# rings, formatting on the control thread) without Kafka, to tell the two costs apart.
# syn (every packet a SYN of a new flow, each ending a second later) ends far more flows than
# the control thread can format and hand over: its acked records/s is the export rate one
# core sustains, the rest counted lost (ring_full, sink_full).
# Same EAL set-up as perf/run.sh (lcore 0: control thread and Kafka sink; lcore 1: the worker;
# net_pcap infinite_rx into net_null), --no-huge -m 4096. The mock broker is a third process
# on this 2-core machine: its threads share the cores with l7gate's (the figure is a floor).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=/usr/bin/python3
runs=3
duration=4
mixes=established,newflow,syn
with_log=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --mixes) mixes=$2; shift 2 ;;
    --with-log) with_log=1; shift ;;
    *) echo "usage: perf/kafka.sh [--runs N] [--duration S] [--mixes established,newflow,syn] [--with-log]" >&2; exit 2 ;;
  esac
done
L7GATE=$ROOT/build/l7gate
MOCK=$ROOT/build/tests/kafka_mock
[ -x "$L7GATE" ] && [ -x "$MOCK" ] || { echo "perf/kafka.sh: needs build/l7gate and build/tests/kafka_mock (tools/build.sh release, librdkafka-dev)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/l7gate-kafka-perf.XXXXXX)
mock_pid=
cleanup() {
  [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# The broker: stdin held open by a FIFO until the end.
mkfifo "$tmp/mock.in"
# Pinned to core 0 with the control thread (and librdkafka's threads, which inherit its
# affinity): the worker's core stays the worker's, as with a broker on another machine.
taskset -c 0 "$MOCK" flows:8 < "$tmp/mock.in" > "$tmp/mock.out" 2>/dev/null &
mock_pid=$!
exec 3> "$tmp/mock.in"
for _ in $(seq 50); do [ -s "$tmp/mock.out" ] && break; sleep 0.1; done
bootstrap=$(head -n 1 "$tmp/mock.out")
[ -n "$bootstrap" ] || { echo "perf/kafka.sh: the mock broker printed no address" >&2; exit 1; }

FRESH_ARGS=(--flows 8388608 --dpi-flows 65536 --timeouts tcp-syn=1,tcp=2,tcp-closed=1,udp=1,other=1)
results=$tmp/results.jsonl
IFS=, read -r -a mix_list <<< "$mixes"
for mix in "${mix_list[@]}"; do
  pcap=$(perf/traffic.sh "$mix")
  n=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["packets"])' "${pcap%.pcap}.json")
  extra=()
  fresh=0
  case "$mix" in newflow|syn) extra=(--bench-fresh-flows "$n" "${FRESH_ARGS[@]}"); fresh=1 ;; esac
  for run in $(seq "$runs"); do
    # The order alternates every run so the machine's noise hits both sides alike.
    order=(off on); [ $((run % 2)) -eq 0 ] && order=(on off)
    [ $with_log -eq 1 ] && order+=(log)
    for mode in "${order[@]}"; do
      out=$tmp/$mix-$mode-$run
      kafka=()
      [ "$mode" = on ] && kafka=(--kafka "$bootstrap" --kafka-topic flows)
      [ "$mode" = log ] && kafka=(--flow-log /dev/null)  # the record stream without Kafka
      port=$((20000 + RANDOM % 20000))
      timeout -s INT $((duration + 120)) "$L7GATE" -l 0-1 --no-huge -m 4096 --no-pci \
        --file-prefix "l7kperf-$$-$mix-$mode-$run" --log-level='*:warning' \
        --vdev "net_pcap0,rx_pcap=$pcap,infinite_rx=1" --vdev net_null1,no-rx=1 \
        -- --metrics "127.0.0.1:$port" --duration "$duration" --stats-interval 1 --stats-json "$out.json" \
        --mbufs $((n + 16384)) "${extra[@]+"${extra[@]}"}" "${kafka[@]+"${kafka[@]}"}" > "$out.txt" 2>&1 &
      l7pid=$!
      : > "$out.acked"
      [ "$mode" = on ] && { $PY perf/kafka_figures.py acked "$port" "$duration" > "$out.acked" || true; }
      wait "$l7pid" ||
        { echo "perf/kafka.sh: l7gate failed ($mix $mode run $run):" >&2; tail -n 20 "$out.txt" >&2; exit 1; }
      $PY perf/kafka_figures.py run "$mix" "$mode" "$run" "$out.json" "$out.txt" "$out.acked" "$fresh" >> "$results"
    done
  done
done

$PY perf/kafka_figures.py table "$results" "$runs" "$duration"
