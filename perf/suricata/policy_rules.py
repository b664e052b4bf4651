#!/usr/bin/python3
"""Writes the enforceable parts of an l7gate policy as Suricata 7 rules, for the peer
benchmark's "policy" configuration (perf/run.sh --peers suricata): Suricata with these rules
does the same matching work as l7gate with the policy, as far as Suricata can express it.

    /usr/bin/python3 perf/suricata/policy_rules.py POLICY.yaml > policy.rules

What is translated (each marker that drops or rejects):
  hostnames   one rule per name and keyword: tls.sni, http.host, quic.sni and dns.query
              (nDPI takes the flow's host name from any of them); "*.example.com" becomes an
              endswith match on ".example.com", otherwise an exact match, case-insensitive
              (nocase; http.host is lowercased by Suricata itself).
  ips         one rule per list entry (a peer address or prefix), either direction.
  protocols   app-layer-protocol rules for the protocols Suricata names (HTTP, TLS, SSH,
              DNS, QUIC, ...); others are listed as not translated.
Each rule's source is the pool's prefixes of the policy that carries the marker (pools with
MAC addresses are left out: Suricata rules have no MAC match); markers on the default policy
or on a parent apply to every host.
Not the same work, listed on stderr and in the file's header: categories (Suricata has no
application categories), flow risks and the risk score (nDPI's analysis, no Suricata
equivalent short of a signature set), shaping (Suricata IDS cannot shape), countries and
continents (would need Suricata's geoip keyword and a GeoLite2 database), protocols Suricata
does not identify (Tor, BitTorrent over TCP, ...).
The action is `drop` (Suricata runs in IDS mode here, where drop acts as alert: the matching
work is the same, and the benchmark's traffic is replayed whatever the verdict).
"""

import os
import sys

import yaml

# l7gate (nDPI) protocol names -> Suricata app-layer-protocol names.
SURICATA_PROTO = {
    "HTTP": "http", "TLS": "tls", "SSH": "ssh", "DNS": "dns", "QUIC": "quic", "SMTP": "smtp",
    "FTP_CONTROL": "ftp", "IMAP": "imap", "SMBv23": "smb", "SMBv1": "smb", "NTP": "ntp",
    "DHCP": "dhcp", "SNMP": "snmp", "SIP": "sip", "RDP": "rdp", "MQTT": "mqtt",
    "PostgreSQL": "pgsql", "Telnet": "telnet", "RFB": "rfb", "Kerberos": "krb5",
    "TFTP": "tftp", "IKE": "ike", "HTTP2": "http2",
}
HOST_KEYWORDS = ("tls.sni", "http.host", "quic.sni", "dns.query")
BLOCKING = ("drop", "reject")


def load_list(policy_dir, spec, kind):
    if "file" in spec:
        path = os.path.join(policy_dir, spec["file"])
        with open(path) as f:
            return [ln.split("#", 1)[0].strip() for ln in f if ln.split("#", 1)[0].strip()]
    return list(spec.get(kind, []))


def shaping(value):
    return isinstance(value, str) and value.split(":", 1)[0] in ("shape", "police")


def blocking(value):
    return isinstance(value, str) and value.split(":", 1)[0] in BLOCKING


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    path = argv[1]
    with open(path) as f:
        pol = yaml.safe_load(f)
    pdir = os.path.dirname(os.path.abspath(path))
    lists = pol.get("lists", {}) or {}
    policies = pol.get("policies", {}) or {}
    pools = pol.get("pools", []) or []
    default_policy = pol.get("default_policy")

    # Which sources each policy applies to: its pools' prefixes, "any" for the default policy
    # (hosts in no pool) and for a policy that is the parent of one that applies to "any".
    sources = {name: [] for name in policies}
    for pool in pools:
        sources.setdefault(pool["policy"], []).extend(pool.get("ip", []) or [])

    def chain(name):
        out = []
        while name:
            out.append(name)
            name = (policies.get(name) or {}).get("parent")
        return out

    def source_of(name):
        # Hosts whose policy chain contains `name`.
        srcs, anyhost = [], False
        for leaf in policies:
            if name not in chain(leaf):
                continue
            if leaf == default_policy:
                anyhost = True
            srcs.extend(sources.get(leaf, []))
        if anyhost or not srcs:
            return "any"
        return "[" + ",".join(srcs) + "]"

    rules, gaps = [], []
    sid = 1000000

    def add(rule):
        nonlocal sid
        sid += 1
        rules.append(rule.replace("SID", str(sid)))

    def named(key, kind):
        """A marker key's entries: the key itself, or the entries of the list "@name"."""
        if not key.startswith("@"):
            return [key]
        if key[1:] not in lists:
            raise SystemExit("policy_rules: %s: list %s is not defined" % (path, key))
        return load_list(pdir, lists[key[1:]], kind)

    for name, p in policies.items():
        p = p or {}
        src = source_of(name)
        for key, label in (("hostnames", "hostname"), ("ips", "ips"), ("protocols", "protocol")):
            for k, action in (p.get(key) or {}).items():
                if shaping(action):
                    gaps.append("%s: %s %s: %s (no shaping in Suricata)" % (name, label, k, action))
        for host, action in (p.get("hostnames") or {}).items():
            if not blocking(action):
                continue
            for h in named(host, "hostnames"):
                h = h.rstrip(".").lower()
                if h.startswith("*."):
                    match = 'content:"%s"; nocase; endswith;' % h[1:]
                else:
                    match = 'content:"%s"; nocase; startswith; endswith;' % h
                for kw in HOST_KEYWORDS:
                    proto = kw.split(".")[0]
                    # http.host is lowercased by Suricata, which refuses nocase on it.
                    m = match.replace(" nocase;", "") if kw == "http.host" else match
                    add('drop %s %s any -> any any (msg:"l7gate %s hostname %s"; %s; %s sid:SID; rev:1;)'
                        % (proto, src, name, h, kw, m))
        for key, action in (p.get("ips") or {}).items():
            if not blocking(action):
                continue
            for net in named(key, "ips"):
                add('drop ip %s any <> %s any (msg:"l7gate %s ips %s"; sid:SID; rev:1;)'
                    % (src, net, name, net))
        for proto, action in (p.get("protocols") or {}).items():
            if not blocking(action):
                continue
            if proto in SURICATA_PROTO:
                add('drop %s %s any -> any any (msg:"l7gate %s protocol %s"; flow:to_server; sid:SID; rev:1;)'
                    % (SURICATA_PROTO[proto], src, name, proto))
            else:
                gaps.append("%s: protocol %s: %s (Suricata does not identify it)" % (name, proto, action))
        for key in ("categories", "risks", "countries", "continents"):
            for k, action in (p.get(key) or {}).items():
                gaps.append("%s: %s %s: %s" % (name, key, k, action))
        if p.get("score"):
            gaps.append("%s: score %s" % (name, p["score"]))

    out = sys.stdout
    out.write("# Generated by perf/suricata/policy_rules.py from %s: %d rules.\n" % (path, len(rules)))
    out.write("# Markers of the policy with no Suricata rule here (not the same work):\n")
    for g in gaps:
        out.write("#   %s\n" % g)
    for r in rules:
        out.write(r + "\n")
    sys.stderr.write("policy_rules: %d rules, %d markers not translated\n" % (len(rules), len(gaps)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
