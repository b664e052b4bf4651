#!/bin/bash
# Blocked-set churn (issue 18, point 4): instructions per packet of known flows with and
# without a new blocked set published before every burst, counted by valgrind's callgrind
# (deterministic; the wall clock of this machine is too noisy for a 5% question).
#
#   perf/blocked_churn.sh [BUILDDIR]
#
# Runs the EAL tests BlockedChurn.Quiet, .RepublishedEvery16Bursts and .RepublishedEveryBurst
# (tests/eal/test_verdict_release.cpp) under callgrind, collecting only inside
# l7gate::test::measured_replay: a worker driven directly replays the generated l7 set (its
# flows classified by a first pass) 20 times in bursts of 32 under a policy with hostname
# rules (Hyperscan regexes among them); with churn, a new blocked set (holding none of the
# flows' hosts) is published and loaded before every 16th burst (512 packets: every 0.5 ms
# at 1 Mpps per worker, ten times auto-block's at most one per 5 ms) or before every burst
# (every 32 packets, the extreme). Prints Ir per packet of each and the churned runs' excess;
# exit 1 when the 16-burst churn costs more than 5% more than none.
set -euo pipefail
cd "$(dirname "$0")/.."
builddir=${1:-build}
exe=${EAL_TESTS:-$builddir/tests/eal_tests}
pcap=$builddir/tests/l7.pcap
for f in "$exe" "$pcap"; do
  [ -e "$f" ] || { echo "perf/blocked_churn.sh: $f missing (tools/build.sh release)" >&2; exit 2; }
done
command -v valgrind >/dev/null || { echo "perf/blocked_churn.sh: valgrind not found" >&2; exit 2; }
tmp=$(mktemp -d /tmp/l7gate-churn.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
declare -A ir
for t in Quiet RepublishedEvery16Bursts RepublishedEveryBurst; do
  L7GATE_L7_PCAP=$pcap valgrind --tool=callgrind --callgrind-out-file="$tmp/$t.out" \
    --toggle-collect='l7gate::test::measured_replay*' \
    "$exe" --gtest_filter="BlockedChurn.$t" > "$tmp/$t.txt" 2>&1 || echo "perf/blocked_churn.sh: BlockedChurn.$t failed (measured anyway)" >&2
  [ -s "$tmp/$t.out" ] || { tail -n 30 "$tmp/$t.txt" >&2; exit 1; }
  grep '^blocked churn:' "$tmp/$t.txt" | head -n 1
  ir[$t]=$(awk '/^(summary|totals):/ {print $2; exit}' "$tmp/$t.out")
done
packets=$(grep -m1 '^blocked churn:' "$tmp/Quiet.txt" | sed -E 's/.*: ([0-9]+) passes of ([0-9]+) frames.*/\1 \2/' | awk '{print $1 * $2}')
/usr/bin/python3 - "${ir[Quiet]}" "${ir[RepublishedEvery16Bursts]}" "${ir[RepublishedEveryBurst]}" "$packets" <<'PY'
import sys
quiet, every16, every1, n = (int(x) for x in sys.argv[1:5])
print("blocked churn: Ir per packet of known flows: %.1f without a new blocked set; %.1f with one every 16 bursts "
      "(%+.2f%%); %.1f with one every burst (%+.2f%%); %d packets each"
      % (quiet / n, every16 / n, 100.0 * (every16 - quiet) / quiet, every1 / n, 100.0 * (every1 - quiet) / quiet, n))
sys.exit(0 if every16 <= quiet * 1.05 else 1)
PY
