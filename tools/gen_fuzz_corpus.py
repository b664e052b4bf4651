#!/usr/bin/python3
"""Writes the seed corpora of the libFuzzer targets (tests/fuzz/corpus/<target>/).

    /usr/bin/python3 tools/gen_fuzz_corpus.py [OUTDIR]     (default tests/fuzz/corpus)

Seeds come from the project's generated traffic (tools/gen_traffic.py: the bridge, malformed
and l7 sets), the hostile frames of the robustness tests (tests/integration/hostile.py), the
example policies (config/, and small YAML / nProbe JSON texts here) and list files.
Deterministic: the same tree gives the same files (named by content hash).
"""

import hashlib
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import hostile  # noqa: E402
from harness import read_pcap_records  # noqa: E402


def put(d, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def flow_of(fr):
    """(client side endpoint, server side endpoint) of an untagged IPv4/IPv6 frame, or None."""
    if len(fr) < 14:
        return None
    et = struct.unpack_from("!H", fr, 12)[0]
    if et == 0x0800 and len(fr) >= 34:
        ihl = (fr[14] & 15) * 4
        proto, a, b, l4 = fr[23], fr[26:30], fr[30:34], 14 + ihl
    elif et == 0x86DD and len(fr) >= 54:
        proto, a, b, l4 = fr[20], fr[22:38], fr[38:54], 54
    else:
        return None
    sp = dp = 0
    if proto in (6, 17) and len(fr) >= l4 + 4:
        sp, dp = struct.unpack_from("!HH", fr, l4)
    return proto, (a, sp), (b, dp)


def worker_input(frames, fold=True, step_k=0):
    """Records for fuzz_worker (see tests/fuzz/fuzz_worker.cpp): port by direction, folded
    onto conversations by flow."""
    clients, convs, out = {}, {}, []
    for fr in frames:
        f = flow_of(fr)
        port, conv = 0, 0
        if f is not None:
            proto, a, b = f
            key = (proto, frozenset([a, b]))
            if key not in clients:
                clients[key] = a
                convs[key] = len(convs) % 4
            port = 0 if a == clients[key] else 1
            conv = convs[key]
        h = port | (2 if fold and f is not None else 0) | (conv << 2) | (step_k << 4)
        out.append(struct.pack("!BH", h, len(fr)) + fr)
    return b"".join(out)


POLICIES = [
    """version: 1
default_policy: guest
shapers:
  bulk:    {rate: 20mbit, burst: 256kb}
  perhost: {rate: 5mbit, burst: 64kb, per: host, queue: 512, max_delay: 100ms}
lists:
  ads:    {hostnames: ["*.doubleclick.net", "ads.example.com"]}
  badips: {ips: ["203.0.113.7", "2001:db8:bad::/48"]}
pools:
  - {name: office, ip: [192.168.1.0/24, "2001:db8:1::/48"], mac: ["e8:06:88:ff:fe:e4"], policy: office}
hosts: {auto_block: {score: 500, window: 60s, block_for: 10m}}
policies:
  root:
    default: pass
    risks: {url_possible_xss: drop, url_possible_sql_injection: reject, 12: drop}
    score: {at_least: 250, marker: drop}
    protocols: {Tor: drop}
  office:
    parent: root
    default: pass
    protocols: {HTTP: pass, BitTorrent: "shape:perhost", 5: pass}
    categories: {Video: "shape:bulk", Game: "police:bulk"}
    hostnames: {"*.doubleclick.net": drop, "www.youtube.com": pass, "@ads": drop, "~^cdn[0-9]+\\\\.": pass}
    ips: {"@badips": drop, "203.0.113.0/24": drop}
    risk_exceptions:
      - {risks: [known_protocol_on_non_standard_port], hostnames: ["*.corp.example"]}
  guest: {parent: root, default: pass, categories: {Game: drop}}
""",
    "version: 1\ndefault_policy: p\npolicies:\n  p: {default: drop}\n",
    "version: 1\ndefault_policy: a\npolicies:\n  a: {parent: b}\n  b: {parent: a}\n",
    "{ \"pool\": { \"id\":1, \"name\": \"p1\", \"ip\": [\"192.168.0.1/24\", \"2a03:b0c0:2:d0::360:4001/48\"], \"mac\": [] }, \"policy\": { \"id\":1 }}\n"
    "{ \"policy\": { \"id\": 0, \"name\": \"root\", \"default_marker\": \"pass\", \"flow_risk\": { \"risks\": [ 12 ], \"marker\": \"drop\" }, \"markers\": { \"categories\": { \"Video\": \"drop\" }, \"protocols\": { \"TLS\": \"pass\" }}}}\n"
    "{ \"policy\": { \"id\": 1, \"root\": 0, \"name\": \"r1\", \"default_marker\": \"drop\", \"markers\": { \"protocols\": { \"53\": \"pass\" }}, \"hostnames\": { \"www.gstatic.com\": \"drop\" }}}\n",
    "# comment\n{\"policy\": {\"id\": 0, \"name\": \"\\ud83d\\ude00\", \"default_marker\": \"pass\"}}\r\n",
]

LISTS = [
    "# bad addresses\n203.0.113.7\n198.51.100.0/24\n2001:db8:bad::/48\n",
    "ads.example.com\n*.doubleclick.net  # trailing comment\n\n~^cdn[0-9]+\\.\n",
    "10.0.0.0/8\nexample.com\n",
    "a" * 300 + "\n",
]


def main():
    out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fuzz", "corpus"))
    for t in ("parser", "worker", "policy", "lists"):
        shutil.rmtree(os.path.join(out, t), ignore_errors=True)
    tmp = tempfile.mkdtemp(prefix="l7gate-corpus-")
    try:
        sets = {}
        for s in ("bridge", "malformed", "l7"):
            p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tools", "gen_traffic.py"), tmp, "--set", s],
                               capture_output=True, text=True)
            if p.returncode != 0:
                sys.exit("gen_traffic.py --set %s failed: %s" % (s, p.stderr[-400:]))
        for name in sorted(os.listdir(tmp)):
            if name.endswith(".pcap"):
                sets[name] = [fr for _, fr in read_pcap_records(os.path.join(tmp, name), strict=False)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rng = random.Random(7)
    hostile_frames = (hostile.truncated_tls("10.0.0.1", 40001, "10.1.0.1")
                      + hostile.huge_http_headers("10.0.0.1", 40002, "10.1.0.1", headers=8)
                      + hostile.dns_compression_loop("10.0.0.1", 40003, "10.1.0.1")
                      + hostile.tcp_fragments("10.0.0.1", 40004, "10.1.0.1", 80, 77, b"GET / HTTP/1.1\r\n" * 8, 8)
                      + hostile.tcp_fragments("10.0.0.1", 40005, "10.1.0.1", 80, 78, b"GET / HTTP/1.1\r\n" * 8, 24, overlap=16)
                      + [hostile.ipv6_ext_chain(n) for n in (0, 1, 8, 9, 12)]
                      + [hostile.syn(rng) for _ in range(4)])

    # parser: distinct frames (every malformed one, a sample of the rest).
    seen = set()
    for name, frames in sorted(sets.items()):
        step = 1 if "malformed" in name else max(1, len(frames) // 150)
        for fr in frames[::step]:
            if fr not in seen:
                seen.add(fr)
                put(os.path.join(out, "parser"), fr)
    for fr in hostile_frames + hostile.tunnel_frames():  # tunnels: one seed per encapsulation
        if fr not in seen:
            seen.add(fr)
            put(os.path.join(out, "parser"), fr)

    # worker: each l7 conversation on its own (folded), runs of the bridge and malformed
    # captures (unfolded), the hostile conversations, and one input that crosses timeouts.
    wdir = os.path.join(out, "worker")
    for name, frames in sorted(sets.items()):
        if name.startswith("l7"):
            by = {}
            for fr in frames:
                f = flow_of(fr)
                key = (f[0], frozenset([f[1], f[2]])) if f else None
                by.setdefault(key, []).append(fr)
            for key, fl in by.items():
                put(wdir, worker_input(fl[:40]))
        else:
            for i in range(0, min(len(frames), 400), 40):
                put(wdir, worker_input(frames[i:i + 40], fold=False))
    put(wdir, worker_input(hostile.truncated_tls("10.0.0.1", 40001, "10.1.0.1")))
    put(wdir, worker_input(hostile.huge_http_headers("10.0.0.1", 40002, "10.1.0.1", headers=8)))
    put(wdir, worker_input(hostile.dns_compression_loop("10.0.0.1", 40003, "10.1.0.1")))
    put(wdir, worker_input(hostile_frames[-13:], fold=False))
    put(wdir, worker_input([hostile.syn(rng) for _ in range(8)], fold=False, step_k=15))
    put(wdir, worker_input(hostile.tunnel_frames(), fold=False))

    # policy and lists.
    pdir = os.path.join(out, "policy")
    with open(os.path.join(ROOT, "config", "demo-policy.yaml"), "rb") as f:
        put(pdir, f.read())
    for p in POLICIES:
        put(pdir, p.encode())
    ldir = os.path.join(out, "lists")
    lists_dir = os.path.join(ROOT, "config", "lists")
    for name in sorted(os.listdir(lists_dir)):
        with open(os.path.join(lists_dir, name), "rb") as f:
            put(ldir, f.read())
    for text in LISTS:
        put(ldir, text.encode())
    for t in ("parser", "worker", "policy", "lists"):
        d = os.path.join(out, t)
        files = os.listdir(d)
        print("%s: %d files, %d bytes" % (t, len(files), sum(os.path.getsize(os.path.join(d, x)) for x in files)))


if __name__ == "__main__":
    main()
