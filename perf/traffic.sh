#!/bin/bash
# Prints the path of a benchmark capture, generating it first when it is not cached yet.
#   perf/traffic.sh established|attack|syn|newflow|flood|real [--flows N]
# Captures live in perf/.cache/traffic-<generator hash>-f<flows>/ (git-ignored), so a change
# to tools/gen_perf_traffic.py or tools/gen_traffic.py makes fresh ones. `real` is derived
# from ../shared/pcaps/mix-shared.pcap (or $L7GATE_PCAPS/mix-shared.pcap); exit status 3 when
# that capture is not there.
set -euo pipefail
cd "$(dirname "$0")/.."
mix=${1:?usage: perf/traffic.sh established|attack|syn|newflow|flood|real [--flows N]}
flows=10000
if [ "${2:-}" = "--flows" ]; then
  flows=${3:?--flows needs a number}
fi
PY=/usr/bin/python3
key=$(cat tools/gen_perf_traffic.py tools/gen_traffic.py | sha256sum | cut -c1-12)
cache=$PWD/perf/.cache/traffic-$key-f$flows
mkdir -p "$cache"
case "$mix" in
  established|attack|syn|newflow)
    if [ ! -f "$cache/$mix.pcap" ] || [ ! -f "$cache/$mix.json" ]; then
      # All at once: three are built from the same established flows (the slow part).
      echo "generating the established, attack, syn and newflow mixes in $cache (once; 1-3 minutes)..." >&2
      $PY tools/gen_perf_traffic.py "$cache" --mix all --flows "$flows" >&2
    fi ;;
  real)
    shared=${L7GATE_PCAPS:-$PWD/../shared/pcaps}/mix-shared.pcap
    if [ ! -f "$shared" ]; then
      echo "perf/traffic.sh: $shared not found" >&2
      exit 3
    fi
    if [ ! -f "$cache/real.pcap" ] || [ ! -f "$cache/real.json" ] || [ "$shared" -nt "$cache/real.pcap" ]; then
      $PY tools/gen_perf_traffic.py "$cache" --mix real --real-capture "$shared" >&2
    fi ;;
  flood)
    # The attack capture; run.sh has l7gate rewrite only its bare SYNs on every pass.
    "$0" attack --flows "$flows" > /dev/null
    if [ ! -f "$cache/flood.pcap" ] || [ ! -f "$cache/flood.json" ]; then
      ln -f "$cache/attack.pcap" "$cache/flood.pcap"
      $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); d["mix"]="flood"; json.dump(d, open(sys.argv[2], "w"), indent=1)' \
        "$cache/attack.json" "$cache/flood.json"
    fi ;;
  *) echo "perf/traffic.sh: unknown mix $mix (established, attack, syn, newflow, flood, real)" >&2; exit 2 ;;
esac
echo "$cache/$mix.pcap"
