#!/bin/bash
# Prints the path of a benchmark capture, generating it first when it is not cached yet.
#   perf/traffic.sh established|attack|syn|newflow|flood|real|onepass [--flows N]
# Captures live in perf/.cache/traffic-<generator hash>-f<flows>/ (git-ignored), so a change
# to tools/gen_perf_traffic.py or tools/gen_traffic.py makes fresh ones. `real` is derived
# from ../shared/pcaps/mix-shared.pcap (or $L7GATE_PCAPS/mix-shared.pcap); exit status 3 when
# that capture is not there.
# onepass: --flows new short flows of the newflow mix's templates (perf/run.sh asks for
# 200,000; tools/gen_perf_traffic.py --mix onepass), read once from the file by l7gate and
# Suricata (perf/run.sh --peers suricata); in
# its own cache folder, beside onepass-head.pcap, the same capture's first 10% of packets
# (start-up and shutdown cost cancel out between the two: see perf/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
mix=${1:?usage: perf/traffic.sh established|attack|syn|newflow|flood|real|onepass [--flows N]}
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
  onepass)
    cache=$PWD/perf/.cache/traffic-$key-onepass-f$flows
    mkdir -p "$cache"
    if [ ! -f "$cache/onepass.pcap" ] || [ ! -f "$cache/onepass.json" ] || [ ! -f "$cache/onepass-head.pcap" ]; then
      echo "generating the one-pass capture ($flows new flows) in $cache (once; about 2 minutes)..." >&2
      $PY tools/gen_perf_traffic.py "$cache" --mix onepass --flows "$flows" >&2
      # The first 10% of the records of the classic pcap file (24-byte file header, 16-byte
      # record headers).
      $PY - "$cache/onepass.pcap" "$cache/onepass-head.pcap" "$cache/onepass.json" <<'PY'
import json, os, struct, sys
src, dst, meta = sys.argv[1:4]
n = json.load(open(meta))["packets"] // 10
with open(src, "rb") as f, open(dst + ".tmp", "wb") as g:
    g.write(f.read(24))
    for _ in range(n):
        h = f.read(16)
        g.write(h + f.read(struct.unpack("<I", h[8:12])[0]))
os.rename(dst + ".tmp", dst)
PY
    fi ;;
  flood)
    # The attack capture; run.sh has l7gate rewrite only its bare SYNs on every pass.
    "$0" attack --flows "$flows" > /dev/null
    if [ ! -f "$cache/flood.pcap" ] || [ ! -f "$cache/flood.json" ]; then
      ln -f "$cache/attack.pcap" "$cache/flood.pcap"
      $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); d["mix"]="flood"; json.dump(d, open(sys.argv[2], "w"), indent=1)' \
        "$cache/attack.json" "$cache/flood.json"
    fi ;;
  *) echo "perf/traffic.sh: unknown mix $mix (established, attack, syn, newflow, flood, real, onepass)" >&2; exit 2 ;;
esac
echo "$cache/$mix.pcap"
