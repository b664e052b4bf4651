#!/usr/bin/python3
"""Flow metadata per flow: how many shared records a capture's flows need.

    perf/meta_sharing.py [--binary build/l7gate] CAPTURE...

Replays each capture once through l7gate (tools/compare_ndpireader.py's runner: --clock
capture, so every flow of a short capture is alive at the end) with the flow log on, and
counts from the log, not from l7gate's counters: the flows, those with metadata (a hostname,
JA3 digests or a TLS version), and the distinct (hostname, JA3c, JA3s, TLS version) values,
i.e. the interned records they share (src/dataplane/meta_table.hpp). It prints the records'
bytes per flow (136 B each with their index) and, as a cross-check, the meta_records gauge
of the stats JSON (records held at the last housekeeping; 0 when no round ran after the
flows were classified). The counts are deterministic: one run per capture.

Captures: perf/traffic.sh established|newflow, ../shared/pcaps/mix-shared.pcap.
"""

import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import compare_ndpireader as cmp  # noqa: E402

RECORD_BYTES = 120 + 16  # a FlowMeta record and its two index slots


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=os.path.join(HERE, "..", "build", "l7gate"))
    ap.add_argument("captures", nargs="+")
    a = ap.parse_args()
    print("| capture | flows | with metadata | records | shared bytes per flow | meta_records gauge |")
    print("|---|---|---|---|---|---|")
    failed = False
    with tempfile.TemporaryDirectory(prefix="l7gate-meta-") as work:
        for cap in a.captures:
            r = cmp.run_l7gate(a.binary, cap, work)
            if r.errors or not os.path.exists(r.flow_log):
                print("%s: %s" % (cap, "; ".join(r.errors) or "no flow log"), file=sys.stderr)
                failed = True
                continue
            with open(r.flow_log) as f:
                log = [json.loads(line) for line in f]
            meta = [x for x in log if x.get("host") or x.get("ja3c") or x.get("tls_version")]
            records = {(x.get("host"), x.get("ja3c"), x.get("ja3s"), x.get("tls_version")) for x in meta}
            gauge = (r.stats or {}).get("classification", {}).get("meta_records", "-")
            print("| %s | %d | %d | %d | %.1f | %s |" % (
                os.path.basename(cap), len(log), len(meta), len(records),
                len(records) * RECORD_BYTES / len(log) if log else 0.0, gauge))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
