#include "control/ops/options.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string_view>

#include "dataplane/counters.hpp"
#include "dataplane/memory.hpp"
#include "l7gate_version.h"

namespace l7gate::ctl {

namespace {

struct OptSpec {
    const char* name;   // long name without dashes
    char short_name;    // 0 when none
    bool has_arg;
    const char* arg;
    const char* help;
};

// One table drives parsing and --help, so the two cannot disagree.
constexpr OptSpec kOpts[] = {
    {"pairs", 0, true, "A:B[,C:D...]",
     "bridge pairs of port ids; frames received on one port of a pair leave on the other "
     "(default 0:1)"},
    {"rxq", 0, true, "N",
     "RX/TX queues per port, one worker lcore per queue index; the EAL core list gives the "
     "workers, the main lcore runs the control thread (default 1)"},
    {"rss", 0, true, "symmetric|driver",
     "symmetric: with --rxq > 1 every port must offer RSS, programmed with a symmetric "
     "Toeplitz key so both directions of a flow meet on one worker (default); driver: trust "
     "the driver's own spreading (af_packet fanout, pcap files per queue)"},
    {"flows", 0, true, "N", "flow-table capacity per worker (default 262144)"},
    {"frags", 0, true, "N", "fragment-table entries per worker (default 4096)"},
    {"timeouts", 0, true, "K=S[,K=S...]",
     "idle timeouts in seconds; keys: tcp-syn (one direction seen, default 30), tcp "
     "(established, 300), tcp-closed (after RST or FIN both ways, 10), udp (60), other "
     "(ICMP and other protocols, 30), frag (fragment entries, 5)"},
    {"on-flow-table-full", 0, true, "pass|drop",
     "what to do with a packet whose new flow finds the table full (or both its buckets "
     "full) when the verdicts that need no flow state (blocked hosts, pools, ips, "
     "countries, continents, the default) leave it to L7 markers; counted either way, as "
     "table_full or bucket_full and by outcome as flowless (default pass: the gateway "
     "stays open)"},
    {"malformed", 0, true, "pass|drop",
     "what to do with malformed packets and fragments with no first fragment; counted by "
     "reason either way (default drop)"},
    {"decap", 0, true, "all|none|ndpireader|LIST",
     "the encapsulations whose inner packets are classified and judged (README \"Tunnels\"): a "
     "comma-separated LIST of pppoe, mpls, ip_in_ip, gre, vxlan, gtp_u, capwap; ndpireader is "
     "ndpiReader 4.2's default set (pppoe, mpls, ip_in_ip); a tunnel not looked into is the "
     "carrier's flow, counted as uninspected (default all)"},
    {"mbufs", 0, true, "N",
     "mbufs in the packet pool (one pool per NUMA socket; default: every descriptor ring, "
     "worker cache and burst plus 4096 of shaper backlog per worker, at least 8191; what is "
     "left after the rings, caches and bursts is the workers' shaper backlog cap; a pcap vdev "
     "with infinite_rx needs more than the capture's packet count)"},
    {"rxd", 0, true, "N", "RX descriptors per queue (default 1024)"},
    {"mtu", 0, true, "N",
     "the links' MTU, 68 to 9000, set on the ports: an IP packet longer than N, or a frame "
     "longer than N + 22 (Ethernet header, two VLAN tags), is dropped as over_mtu; above "
     "2022 a frame spans several mbufs where the ports scatter, else every mbuf holds a "
     "whole frame (more pool memory: see README). Default: the ports keep their driver's "
     "MTU and frames up to one 2 KiB mbuf are taken (IP length up to 2022)"},
    {"txd", 0, true, "N", "TX descriptors per queue (default 1024)"},
    {"duration", 0, true, "S", "stop after S seconds (default: run until SIGINT/SIGTERM)"},
    {"idle-exit", 0, true, "MS",
     "stop once no port has received anything for MS milliseconds after the first packet "
     "(for replaying captures)"},
    {"stats-interval", 0, true, "S", "print a one-line stats summary every S seconds"},
    {"stats-json", 0, true, "FILE", "write every counter as one JSON object to FILE at exit"},
    {"metrics", 0, true, "HOST:PORT|off",
     "serve Prometheus metrics at http://HOST:PORT/metrics, refreshed every second (default "
     "127.0.0.1:9777, loopback only; port 0 picks a free port); off: no metrics endpoint"},
    {"flow-log", 0, true, "FILE",
     "write one JSON object per line for every flow when it ends (FIN/RST + grace, idle "
     "timeout, or l7gate stopping, which flushes every active flow); - for stdout. Opened for "
     "append, reopened on SIGUSR1 (log rotation); never blocks l7gate: a FIFO or file that "
     "cannot keep up loses records, counted"},
    {"ipfix", 0, true, "HOST:PORT",
     "export every flow when it ends as an IPFIX biflow record (RFC 7011/5103) over UDP to "
     "HOST:PORT, with ntop's L7 elements (PEN 35632) and l7gate's own (docs/export.md); never "
     "blocks: a collector that is down or slow loses records, counted"},
    {"ipfix-domain", 0, true, "N",
     "IPFIX observation domain of worker 0; worker w exports as N + w (default 1)"},
    {"ipfix-mtu", 0, true, "BYTES",
     "largest IPFIX message, IP and UDP headers not counted (512 to 65000, default 1400)"},
    {"ipfix-template-refresh", 0, true, "SECONDS",
     "IPFIX templates are sent again at least this often (default 30)"},
    {"ipfix-template-messages", 0, true, "N",
     "IPFIX templates are sent again every N messages of a domain (default 100)"},
    {"ipfix-active-timeout", 0, true, "SECONDS",
     "a flow that lives longer is exported every SECONDS too (flowEndReason 2, counters since "
     "its previous record); 0: only when it ends (0 to 86400, default 120, as nProbe)"},
    {"flow-log-ring", 0, true, "N",
     "records the flow-log ring of each worker holds until the control thread writes them (a "
     "power of two, default 65536); a flow ending when it is full loses its record (counted "
     "as lost), except at stop, when the worker waits for room"},
    {"event-log", 0, true, "FILE",
     "write host block / release events (hosts.auto_block) as JSON lines to FILE instead of "
     "the flow log; - for stdout"},
    {"kafka", 0, true, "BROKERS",
     "also send every flow record to Kafka (bootstrap servers host:port[,host:port...]): one "
     "message per record, the flow log's JSON line without its newline; asynchronous, never "
     "blocks l7gate: records librdkafka's bounded queue cannot take, or it could not deliver, "
     "are counted lost (sink kafka)"},
    {"kafka-topic", 0, true, "TOPIC", "the topic of the flow records (default l7gate-flows)"},
    {"kafka-events-topic", 0, true, "TOPIC",
     "also send host block / release events (hosts.auto_block) to this topic, one JSON object "
     "per message (default: not sent to Kafka)"},
    {"kafka-config", 0, true, "KEY=VALUE[,KEY=VALUE...]",
     "librdkafka producer properties (repeatable), e.g. queue.buffering.max.messages=100000 "
     "(l7gate's default), queue.buffering.max.kbytes=65536 (default), message.timeout.ms, "
     "compression.type=lz4, security.protocol"},
    {"clock", 0, true, "tsc|capture",
     "time source for flows and nDPI: tsc (default, the wall clock), or capture: the RX "
     "timestamp the port delivers (net_pcap gives the capture's timestamps), so replays are "
     "deterministic"},
    {"ndpi-protos", 0, true, "FILE", "load nDPI custom protocols from FILE (nDPI's format)"},
    {"ndpi-categories", 0, true, "FILE", "load nDPI custom categories from FILE (nDPI's format)"},
    {"dpi-max-packets", 0, true, "TCP[,UDP[,OTHER]]",
     "packets of a flow nDPI may see before l7gate gives up on it with guessing (default "
     "80,24,32: ndpiReader's limits)"},
    {"no-extra-dissection", 0, false, nullptr,
     "end a flow's classification as soon as nDPI names its application protocol, without "
     "the metadata that follows (TLS ServerHello, certificate and JA3S, the HTTP response, "
     "the DNS answer): fewer nDPI calls per flow, but the risks and fields found only there "
     "(certificate risks among them) are not seen; results then differ from ndpiReader's"},
    {"dpi-flows", 0, true, "N",
     "nDPI flow states per worker: flows in classification at once (default: --flows / 4, "
     "at least 1024); a new flow that finds none is never classified (counted as "
     "dpi_pool_full, protocol Unknown)"},
    {"first-flight-bytes", 0, true, "N",
     "TCP client bytes reassembled, and held back, per flow before nDPI sees a ClientHello or "
     "HTTP request that arrives in several segments (default 16389: one full TLS record; at "
     "most 65000; 0: no reassembly, nDPI sees each segment)"},
    {"first-flight-flows", 0, true, "N",
     "flows whose first flight is reassembled at once per worker (default 256); they hold "
     "at most 4 segments each on average, 128 per flow"},
    {"on-unnamed-first-flight", 0, true, "pass|drop",
     "a first flight that ends on a bound (bytes, segments, FIN/RST, IP fragment, 1 s) "
     "without nDPI naming a host, or finds no free slot: drop (default, fail-closed) or "
     "pass (fail-open); counted either way"},
    {"meta-records", 0, true, "N",
     "distinct flow metadata records per worker (hostname, JA3 digests, TLS version), each "
     "shared by every flow with the same values (default: --flows / 4, at least 1024, at most "
     "--flows); a flow classified when none is free keeps its verdict but not its metadata "
     "(counted as meta_pool_full; flow log without hostname)"},
    {"policy", 0, true, "FILE",
     "the policy (YAML, or nProbe IPS's JSON lines): pools of hosts mapped to a tree of "
     "policies with markers; without it every flow passes"},
    {"policy-format", 0, true, "auto|yaml|nprobe", "format of --policy (default auto: by content)"},
    {"mode", 0, true, "enforce|monitor",
     "enforce (default): verdicts apply; monitor: every policy only records its verdicts (flow "
     "log \"enforced\": false, l7gate_monitor_forwarded_*_total), whatever its `enforce` says: "
     "nothing is dropped, rejected, shaped or blocked (README \"Monitor mode\")"},
    {"geoip", 0, true, "FILE.mmdb",
     "MaxMind GeoIP2/GeoLite2 country database for countries/continents markers"},
    {"reject-rate", 0, true, "N",
     "at most N packets per second per worker sent for reject verdicts (TCP RST, ICMP port "
     "unreachable); default 1000, 0 sends none (reject then acts as drop)"},
    {"top-hosts", 0, true, "N",
     "hosts by risk score in the metrics (l7gate_host_score) and the stats JSON (default 20)"},
    {"watchdog-ms", 0, true, "MS",
     "the watchdog thread counts (and the control thread logs) a worker whose loop has not moved for MS "
     "milliseconds (default 500; 0: no watchdog)"},
    {"fail-open", 0, false, nullptr,
     "when the watchdog sees a worker stalled, its thread forwards that worker's "
     "queues uninspected until it recovers (needs one TX queue per port beyond --rxq; for "
     "net_pcap one more tx_pcap)"},
    {"test-stall-worker", 0, true, "Q:PACKETS:MS",
     "testing only: worker Q stops for MS milliseconds once it has received PACKETS "
     "packets, holding its burst (exercises the watchdog)"},
    {"test-slow-control", 0, true, "MS",
     "testing only: the control thread sleeps MS milliseconds more on every tick, as if a "
     "service took that long (the watchdog and fail-open must not wait for it)"},
    {"bench-fresh-flows", 0, true, "N",
     "benchmarks only: every N packets received on a queue (one pass of a capture replayed "
     "with infinite_rx) the IP addresses of every frame are rewritten (a new 16-bit value "
     "XORed into their low bits, both directions alike), so each pass is new flows; "
     "rewrites traffic, never use it inline"},
    {"bench-fresh-syns", 0, false, nullptr,
     "benchmarks only, with --bench-fresh-flows: rewrite only TCP SYNs without ACK, so a "
     "replayed SYN flood is new flows every pass while the established connections around it "
     "stay known flows"},
    {"bench-stop-at-end", 0, false, nullptr,
     "benchmarks and tests only: a worker stops at its first idle poll (no port of it "
     "received anything) after it has received packets, flushes its flows and l7gate exits "
     "once every worker has; with captures replayed once (net_pcap rx_pcap without "
     "infinite_rx) that is the end of the capture, so a run does exactly the same work "
     "every time (perf/callgrind.sh counts instructions so). Refused unless every port is "
     "a net_pcap or net_null vdev and without --fail-open; never use it inline"},
    {"check", 0, false, nullptr,
     "validate --policy (with --geoip and the nDPI files if given) and exit: 0 when valid, 1 "
     "with every error as FILE:LINE:COLUMN: message"},
    {"convert-policy", 0, true, "FILE.json", "print an nProbe IPS JSON policy as l7gate YAML and exit"},
    {"log-level", 0, true, "error|warning|info|debug",
     "l7gate's log level (default info); DPDK's own is EAL's --log-level before --"},
    {"interactive", 'i', false, nullptr,
     "a testpmd-like command prompt on the control thread (help lists the commands); reads "
     "a pipe too: echo \"show port stats\" | l7gate ... -- -i; end of input stops l7gate"},
    {"preflight", 0, false, nullptr,
     "check that this machine can run the configuration given (hugepages and their mount, "
     "NUMA placement of ports, pools and worker cores, the driver of every PCI port, the "
     "IOMMU, vdev files; then, with the ports started, links, MTU and promiscuous mode), "
     "print one line per finding with its fix and exit: 0 when nothing is fatal, 2 "
     "otherwise. Every start runs the same checks, prints warnings and stops with exit 2 on "
     "a fatal finding"},
    {"link-timeout", 0, true, "S",
     "seconds pre-flight waits for every port's link to come up (default 5; 0: no wait); a "
     "link still down is a warning, l7gate forwards once it comes up"},
    {"preflight-root", 0, true, "DIR",
     "read /sys and /proc under DIR instead of / for the pre-flight checks (tests fake a "
     "machine's topology with it)"},
    {"version", 0, false, nullptr, "print the version and exit"},
    {"help", 'h', false, nullptr, "print this help and exit"},
};

const OptSpec* find_long(std::string_view name) {
    for (const OptSpec& o : kOpts) {
        if (name == o.name) {
            return &o;
        }
    }
    return nullptr;
}

bool parse_u64(const std::string& s, uint64_t max, uint64_t& out) {
    if (s.empty() || s[0] == '-' || s[0] == '+') {
        return false;
    }
    errno = 0;
    char* end = nullptr;
    unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (errno != 0 || end == s.c_str() || *end != '\0' || v > max) {
        return false;
    }
    out = v;
    return true;
}

bool parse_seconds(const std::string& s, double& out) {
    if (s.empty()) {
        return false;
    }
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(s.c_str(), &end);
    if (errno != 0 || *end != '\0' || !std::isfinite(v) || v < 0 || v > 1e9) {
        return false;
    }
    out = v;
    return true;
}

std::string apply(const OptSpec& o, const std::string& v, Options& opt) {
    const std::string name = std::string("--") + o.name;
    auto bad = [&](const std::string& why) { return name + ": " + why + " (got '" + v + "')"; };
    uint64_t n = 0;
    std::string_view key = o.name;
    if (key == "pairs") {
        opt.pairs.clear();
        std::set<uint16_t> used;
        size_t pos = 0;
        while (pos <= v.size()) {
            size_t comma = v.find(',', pos);
            std::string item = v.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
            size_t colon = item.find(':');
            uint64_t a = 0;
            uint64_t b = 0;
            if (colon == std::string::npos || !parse_u64(item.substr(0, colon), 65535, a) ||
                !parse_u64(item.substr(colon + 1), 65535, b)) {
                return bad("expected port pairs like 0:1,2:3");
            }
            if (a == b) {
                return bad("a pair needs two different ports");
            }
            if (a >= dp::kMaxPorts || b >= dp::kMaxPorts) {
                return bad("port ids must be below " + std::to_string(dp::kMaxPorts));
            }
            if (!used.insert(static_cast<uint16_t>(a)).second ||
                !used.insert(static_cast<uint16_t>(b)).second) {
                return bad("each port may appear in one pair only");
            }
            opt.pairs.emplace_back(static_cast<uint16_t>(a), static_cast<uint16_t>(b));
            if (comma == std::string::npos) {
                break;
            }
            pos = comma + 1;
        }
    } else if (key == "rxq") {
        if (!parse_u64(v, 128, n) || n == 0) {
            return bad("expected a queue count from 1 to 128");
        }
        opt.rxq = static_cast<unsigned>(n);
    } else if (key == "rss") {
        if (v == "symmetric") {
            opt.rss_symmetric = true;
        } else if (v == "driver") {
            opt.rss_symmetric = false;
        } else {
            return bad("expected symmetric or driver");
        }
    } else if (key == "flows") {
        if (!parse_u64(v, 1u << 30, n) || n < 16) {
            return bad("expected a flow count from 16 to 1073741824");
        }
        opt.flows = static_cast<uint32_t>(n);
    } else if (key == "frags") {
        if (!parse_u64(v, 1u << 24, n) || n < 4) {
            return bad("expected an entry count from 4 to 16777216");
        }
        opt.frags = static_cast<uint32_t>(n);
    } else if (key == "timeouts") {
        size_t pos = 0;
        while (pos < v.size()) {
            size_t comma = v.find(',', pos);
            std::string item = v.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
            size_t eq = item.find('=');
            if (eq == std::string::npos || !parse_u64(item.substr(eq + 1), 86400 * 7, n) || n == 0) {
                return bad("expected KEY=SECONDS items (1 to 604800 s)");
            }
            const std::string k = item.substr(0, eq);
            using dp::TimeoutClass;
            auto set = [&](TimeoutClass c) { opt.timeouts.seconds[static_cast<unsigned>(c)] = static_cast<uint32_t>(n); };
            if (k == "tcp-syn") {
                set(TimeoutClass::TcpSyn);
            } else if (k == "tcp") {
                set(TimeoutClass::Tcp);
            } else if (k == "tcp-closed") {
                set(TimeoutClass::TcpClosed);
            } else if (k == "udp") {
                set(TimeoutClass::Udp);
            } else if (k == "other") {
                set(TimeoutClass::Other);
            } else if (k == "frag") {
                opt.frag_timeout_s = static_cast<uint32_t>(n);
            } else {
                return bad("unknown timeout '" + k + "' (tcp-syn, tcp, tcp-closed, udp, other, frag)");
            }
            if (comma == std::string::npos) {
                break;
            }
            pos = comma + 1;
        }
        if (v.empty()) {
            return bad("expected KEY=SECONDS items");
        }
    } else if (key == "on-flow-table-full" || key == "malformed") {
        bool drop;
        if (v == "pass") {
            drop = false;
        } else if (v == "drop") {
            drop = true;
        } else {
            return bad("expected pass or drop");
        }
        (key == "malformed" ? opt.malformed_drop : opt.table_full_drop) = drop;
    } else if (key == "decap") {
        if (v == "all") {
            opt.decap = dp::kDecapAll;
        } else if (v == "none") {
            opt.decap = 0;
        } else if (v == "ndpireader") {
            opt.decap = dp::kDecapNdpiReader;
        } else {
            uint8_t bits = 0;
            size_t pos = 0;
            while (pos <= v.size()) {
                const size_t comma = v.find(',', pos);
                const std::string item(v.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
                unsigned k = 1;
                while (k < static_cast<unsigned>(dp::Encap::Count) && item != dp::kEncapNames[k]) {
                    ++k;
                }
                if (k == static_cast<unsigned>(dp::Encap::Count)) {
                    return bad("unknown encapsulation '" + item + "' (pppoe, mpls, ip_in_ip, gre, vxlan, gtp_u, capwap)");
                }
                bits = static_cast<uint8_t>(bits | 1u << k);
                if (comma == std::string::npos) {
                    break;
                }
                pos = comma + 1;
            }
            opt.decap = bits;
        }
    } else if (key == "mbufs") {
        if (!parse_u64(v, 1u << 28, n) || n < 1024) {
            return bad("expected an mbuf count from 1024 to 268435456");
        }
        opt.mbufs = static_cast<uint32_t>(n);
    } else if (key == "mtu") {
        if (!parse_u64(v, dp::kMtuMax, n) || n < dp::kMtuMin) {
            return bad("expected an MTU from 68 to 9000 (jumbo frames beyond 9000 bytes are not supported)");
        }
        opt.mtu = static_cast<uint32_t>(n);
    } else if (key == "rxd" || key == "txd") {
        if (!parse_u64(v, 32768, n) || n < 32) {
            return bad("expected a descriptor count from 32 to 32768");
        }
        (key == "rxd" ? opt.rx_desc : opt.tx_desc) = static_cast<uint16_t>(n);
    } else if (key == "duration" || key == "stats-interval") {
        double s = 0;
        if (!parse_seconds(v, s) || s <= 0) {
            return bad("expected a positive number of seconds");
        }
        (key == "duration" ? opt.duration_s : opt.stats_interval_s) = s;
    } else if (key == "idle-exit") {
        if (!parse_u64(v, 86400000, n) || n == 0) {
            return bad("expected milliseconds from 1 to 86400000");
        }
        opt.idle_exit_ms = static_cast<uint32_t>(n);
    } else if (key == "stats-json" || key == "flow-log" || key == "event-log" || key == "ndpi-protos" ||
               key == "ndpi-categories" || key == "policy" || key == "geoip" || key == "convert-policy") {
        if (v.empty()) {
            return bad("expected a file name");
        }
        (key == "stats-json"        ? opt.stats_json
         : key == "flow-log"        ? opt.flow_log
         : key == "event-log"       ? opt.event_log
         : key == "ndpi-protos"     ? opt.ndpi_protos
         : key == "policy"          ? opt.policy
         : key == "geoip"           ? opt.geoip
         : key == "convert-policy"  ? opt.convert_policy
                                    : opt.ndpi_categories) = v;
    } else if (key == "kafka" || key == "kafka-topic" || key == "kafka-events-topic") {
        if (v.empty()) {
            return bad(key == "kafka" ? "expected host:port[,host:port...]" : "expected a topic name");
        }
        (key == "kafka" ? opt.kafka : key == "kafka-topic" ? opt.kafka_topic : opt.kafka_events_topic) = v;
    } else if (key == "kafka-config") {
        size_t pos = 0;
        while (pos <= v.size()) {
            const size_t comma = std::min(v.find(',', pos), v.size());
            const std::string item = v.substr(pos, comma - pos);
            const size_t eq = item.find('=');
            if (eq == std::string::npos || eq == 0) {
                return bad("expected KEY=VALUE items (librdkafka properties)");
            }
            opt.kafka_config.emplace_back(item.substr(0, eq), item.substr(eq + 1));
            pos = comma + 1;
        }
    } else if (key == "metrics") {
        if (v.empty()) {
            return bad("expected HOST:PORT or off");
        }
        opt.metrics = v == "off" ? std::string() : v;  // the address is checked when it is bound
    } else if (key == "log-level") {
        if (v != "error" && v != "warning" && v != "info" && v != "debug") {
            return bad("expected error, warning, info or debug");
        }
        opt.log_level = v;
    } else if (key == "reject-rate") {
        if (!parse_u64(v, 10000000, n)) {
            return bad("expected packets per second from 0 to 10000000");
        }
        opt.reject_rate = static_cast<uint32_t>(n);
    } else if (key == "top-hosts") {
        if (!parse_u64(v, 1000, n) || n == 0) {
            return bad("expected a host count from 1 to 1000");
        }
        opt.top_hosts = static_cast<uint32_t>(n);
    } else if (key == "watchdog-ms") {
        if (!parse_u64(v, 60000, n)) {
            return bad("expected milliseconds from 0 to 60000");
        }
        opt.watchdog_ms = static_cast<uint32_t>(n);
    } else if (key == "bench-fresh-flows") {
        if (!parse_u64(v, UINT32_MAX, n) || n == 0) {
            return bad("expected the packets of one pass, 1 to 4294967295");
        }
        opt.bench_fresh_flows = static_cast<uint32_t>(n);
    } else if (key == "test-stall-worker") {
        const size_t a = v.find(':');
        const size_t b = a == std::string::npos ? a : v.find(':', a + 1);
        uint64_t q = 0, pk = 0, ms = 0;
        if (b == std::string::npos || !parse_u64(v.substr(0, a), 127, q) ||
            !parse_u64(v.substr(a + 1, b - a - 1), UINT32_MAX, pk) || !parse_u64(v.substr(b + 1), 60000, ms) || ms == 0) {
            return bad("expected Q:PACKETS:MS (worker queue, packets received first, 1 to 60000 ms)");
        }
        opt.test_stall_queue = static_cast<int>(q);
        opt.test_stall_packets = pk;
        opt.test_stall_ms = static_cast<uint32_t>(ms);
    } else if (key == "test-slow-control") {
        uint64_t ms = 0;
        if (!parse_u64(v, 60000, ms)) {
            return bad("expected milliseconds, 0 to 60000");
        }
        opt.test_slow_control_ms = static_cast<uint32_t>(ms);
    } else if (key == "mode") {
        if (v != "enforce" && v != "monitor") {
            return bad("expected enforce or monitor");
        }
        opt.monitor = v == "monitor";
    } else if (key == "policy-format") {
        if (v != "auto" && v != "yaml" && v != "nprobe") {
            return bad("expected auto, yaml or nprobe");
        }
        opt.policy_format = v;
    } else if (key == "clock") {
        if (v != "tsc" && v != "capture") {
            return bad("expected tsc or capture");
        }
        opt.capture_clock = v == "capture";
    } else if (key == "dpi-max-packets") {
        uint16_t* dst[3] = {&opt.dpi_max_tcp, &opt.dpi_max_udp, &opt.dpi_max_other};
        size_t pos = 0;
        for (unsigned k = 0; k < 3; ++k) {
            size_t comma = v.find(',', pos);
            if (!parse_u64(v.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos), 1000, n) || n == 0) {
                return bad("expected 1 to 3 packet counts from 1 to 1000, e.g. 80,24");
            }
            *dst[k] = static_cast<uint16_t>(n);
            if (comma == std::string::npos) {
                break;
            }
            if (k == 2) {
                return bad("expected at most 3 counts");
            }
            pos = comma + 1;
        }
    } else if (key == "link-timeout") {
        double s = 0;
        if (!parse_seconds(v, s) || s > 600) {
            return bad("expected seconds from 0 to 600");
        }
        opt.link_timeout_s = s;
    } else if (key == "preflight-root") {
        if (v.empty() || v[0] != '/') {
            return bad("expected an absolute directory");
        }
        opt.preflight_root = v;
    } else if (key == "dpi-flows") {
        if (!parse_u64(v, 1u << 26, n) || n < 16) {
            return bad("expected a count from 16 to 67108864");
        }
        opt.dpi_flows = static_cast<uint32_t>(n);
    } else if (key == "ipfix") {
        if (v.empty() || v.rfind(':') == std::string::npos) {
            return bad("expected HOST:PORT");
        }
        opt.ipfix = v;  // resolved when the exporter opens
    } else if (key == "ipfix-domain") {
        if (!parse_u64(v, UINT32_MAX - 1024, n)) {
            return bad("expected a domain id from 0 to 4294966271");
        }
        opt.ipfix_domain = static_cast<uint32_t>(n);
    } else if (key == "ipfix-mtu") {
        if (!parse_u64(v, 65000, n) || n < 512) {
            return bad("expected bytes from 512 to 65000");
        }
        opt.ipfix_mtu = static_cast<uint16_t>(n);
    } else if (key == "ipfix-template-refresh") {
        double s = 0;
        if (!parse_seconds(v, s) || s <= 0 || s > 3600) {
            return bad("expected seconds from 0 to 3600");
        }
        opt.ipfix_template_s = s;
    } else if (key == "ipfix-template-messages") {
        if (!parse_u64(v, 1000000, n) || n == 0) {
            return bad("expected a message count from 1 to 1000000");
        }
        opt.ipfix_template_msgs = static_cast<uint32_t>(n);
    } else if (key == "ipfix-active-timeout") {
        if (!parse_u64(v, 86400, n)) {
            return bad("expected seconds from 0 to 86400");
        }
        opt.ipfix_active_s = static_cast<uint32_t>(n);
    } else if (key == "flow-log-ring") {
        if (!parse_u64(v, 1u << 24, n) || n < 1024 || (n & (n - 1)) != 0) {
            return bad("expected a power of two from 1024 to 16777216");
        }
        opt.flow_log_ring = static_cast<uint32_t>(n);
    } else if (key == "first-flight-bytes") {
        if (!parse_u64(v, 65000, n) || (n != 0 && n < 64)) {
            return bad("expected 0 or a byte count from 64 to 65000");
        }
        opt.ff_bytes = static_cast<uint32_t>(n);
    } else if (key == "first-flight-flows") {
        if (!parse_u64(v, 1u << 20, n) || n == 0) {
            return bad("expected a count from 1 to 1048576");
        }
        opt.ff_flows = static_cast<uint32_t>(n);
    } else if (key == "on-unnamed-first-flight") {
        if (v != "pass" && v != "drop") {
            return bad("expected pass or drop");
        }
        opt.ff_unnamed_drop = v == "drop";
    } else if (key == "meta-records") {
        if (!parse_u64(v, 1u << 28, n) || n < 16) {
            return bad("expected a count from 16 to 268435456");
        }
        opt.meta_records = static_cast<uint32_t>(n);
    }
    return {};
}

} // namespace

int find_separator(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--") == 0) {
            return i;
        }
    }
    return -1;
}

std::string parse_options(int argc, char** argv, int first, Options& out) {
    for (int i = first; i < argc; ++i) {
        std::string a = argv[i];
        const OptSpec* o = nullptr;
        std::string value;
        bool inline_value = false;
        if (a.rfind("--", 0) == 0 && a.size() > 2) {
            std::string name = a.substr(2);
            size_t eq = name.find('=');
            if (eq != std::string::npos) {
                value = name.substr(eq + 1);
                name = name.substr(0, eq);
                inline_value = true;
            }
            o = find_long(name);
            if (o == nullptr) {
                return "unknown option '" + a + "' (see --help)";
            }
        } else if (a.size() == 2 && a[0] == '-') {
            for (const OptSpec& s : kOpts) {
                if (s.short_name == a[1]) {
                    o = &s;
                }
            }
            if (o == nullptr) {
                return "unknown option '" + a + "' (see --help)";
            }
        } else {
            return "unexpected argument '" + a + "' (see --help)";
        }
        if (!o->has_arg) {
            if (inline_value) {
                return std::string("--") + o->name + " takes no value";
            }
            if (std::string_view(o->name) == "check") {
                out.check = true;
            } else if (std::string_view(o->name) == "interactive") {
                out.interactive = true;
            } else if (std::string_view(o->name) == "preflight") {
                out.preflight = true;
            } else if (std::string_view(o->name) == "version") {
                out.version = true;
            } else if (std::string_view(o->name) == "fail-open") {
                out.fail_open = true;
            } else if (std::string_view(o->name) == "bench-fresh-syns") {
                out.bench_fresh_syns = true;
            } else if (std::string_view(o->name) == "bench-stop-at-end") {
                out.bench_stop_at_end = true;
            } else if (std::string_view(o->name) == "no-extra-dissection") {
                out.dpi_no_extra = true;
            } else {
                out.help = true;
            }
            continue;
        }
        if (!inline_value) {
            if (i + 1 >= argc) {
                return std::string("--") + o->name + " needs a value: " + o->arg;
            }
            value = argv[++i];
        }
        if (std::string err = apply(*o, value, out); !err.empty()) {
            return err;
        }
    }
    if (out.bench_fresh_syns && out.bench_fresh_flows == 0) {
        return "--bench-fresh-syns needs --bench-fresh-flows N";
    }
    if (out.bench_stop_at_end && out.fail_open) {
        return "--bench-stop-at-end cannot be used with --fail-open";
    }
    return {};
}

std::string usage(const char* prog) {
    std::string s = "Usage: ";
    s += prog;
    s += " [EAL options] -- [l7gate options]\n\n"
         "l7gate bridges DPDK ports in pairs and inspects every flow on the way.\n"
         "EAL options are DPDK's (-l, --lcores, --vdev, -a, --no-huge, ...; see dpdk docs).\n\n"
         "l7gate options:\n";
    for (const OptSpec& o : kOpts) {
        std::string head = "  ";
        if (o.short_name != 0) {
            head += "-";
            head += o.short_name;
            head += ", ";
        }
        head += "--";
        head += o.name;
        if (o.has_arg) {
            head += " ";
            head += o.arg;
        }
        s += head + "\n";
        // Wrap the help text at 76 columns, indented by 8.
        std::string_view h = o.help;
        while (!h.empty()) {
            size_t take = h.size() <= 70 ? h.size() : h.rfind(' ', 70);
            if (take == std::string_view::npos || take == 0) {
                take = std::min<size_t>(70, h.size());
            }
            s += "        ";
            s += h.substr(0, take);
            s += "\n";
            h.remove_prefix(take);
            while (!h.empty() && h[0] == ' ') {
                h.remove_prefix(1);
            }
        }
    }
    s += "\nExit status: 0 after a clean stop, 2 on bad arguments or a port that cannot do what "
         "is asked.\nSIGINT/SIGTERM stop cleanly: drain, print the summary, write --stats-json.\n";
    return s;
}

const char* version() { return L7GATE_VERSION; }

namespace {

// Text for roff: backslashes and hyphens escaped, no line starting with a control character.
std::string roff(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '\\') {
            out += "\\e";
        } else if (c == '-') {
            out += "\\-";
        } else {
            out += c;
        }
    }
    if (!out.empty() && (out[0] == '.' || out[0] == '\'')) {
        out.insert(0, "\\&");
    }
    return out;
}

} // namespace

std::string man_page() {
    std::string s;
    s += ".\\\" Generated from src/control/ops/options.cpp (the table behind --help); do not edit.\n";
    s += ".TH L7GATE 8 \"\" \"l7gate " + std::string(version()) + "\" \"System Administration\"\n";
    s += ".SH NAME\nl7gate \\- inline IPS: bridges DPDK ports in pairs and classifies every flow with nDPI\n";
    s += ".SH SYNOPSIS\n.B l7gate\n[\\fIEAL options\\fR]\n.B \\-\\-\n[\\fIl7gate options\\fR]\n.br\n"
         ".B l7gate \\-\\-check \\-\\-policy\n.I FILE\n.br\n.B l7gate \\-\\-version\n";
    s += ".SH DESCRIPTION\n"
         "l7gate bridges DPDK ports in pairs as a bump in the wire: a frame received on one port of a "
         "pair leaves on the other unless the policy drops, rejects or shapes its flow. Every flow is "
         "classified with nDPI, scored with nDPI's flow risks and matched against a YAML policy.\n.PP\n"
         "EAL options come first and are DPDK's own (\\fB\\-l\\fR, \\fB\\-\\-lcores\\fR, "
         "\\fB\\-a\\fR, \\fB\\-\\-vdev\\fR, \\fB\\-\\-no\\-huge\\fR, \\fB\\-m\\fR, "
         "\\fB\\-\\-file\\-prefix\\fR, ...). The main lcore runs the control thread; each further "
         "lcore runs one worker, and worker \\fIq\\fR owns queue \\fIq\\fR of every port.\n";
    s += ".SH OPTIONS\n";
    for (const OptSpec& o : kOpts) {
        s += ".TP\n";
        std::string head;
        if (o.short_name != 0) {
            head += "\\fB\\-";
            head += o.short_name;
            head += "\\fR, ";
        }
        head += "\\fB" + roff(std::string("--") + o.name) + "\\fR";
        if (o.has_arg) {
            head += " \\fI" + roff(o.arg) + "\\fR";
        }
        s += head + "\n" + roff(o.help) + "\n";
    }
    s += ".SH FILES\n"
         ".TP\n.I /etc/l7gate/l7gate.conf\n"
         "EAL and l7gate options of the l7gate.service unit (L7GATE_EAL_ARGS, L7GATE_ARGS): ports, "
         "cores, queues, policy, metrics address.\n"
         ".TP\n.I /etc/l7gate/policy.yaml\nthe policy the service loads (a configuration file: kept "
         "across upgrades); as shipped, conservative and in monitor mode (enforce: false).\n"
         ".TP\n.I /usr/share/doc/l7gate/examples/\nexample policies (demo\\-policy.yaml enforces) and lists.\n"
         ".TP\n.I /usr/share/l7gate/\nthe Grafana dashboard and a Prometheus scrape example.\n";
    s += ".SH SIGNALS\n"
         "SIGHUP reloads the policy (as does saving the file); an invalid policy is logged and the "
         "running one stays. SIGINT and SIGTERM stop cleanly: workers drain, the summary is printed, "
         "\\fB\\-\\-stats\\-json\\fR is written and the ports are closed.\n";
    s += ".SH EXIT STATUS\n"
         "0 after a clean stop (and for \\fB\\-\\-check\\fR, \\fB\\-\\-preflight\\fR with nothing "
         "fatal); 1 for an invalid policy under \\fB\\-\\-check\\fR; 2 for bad arguments, a port that "
         "cannot do what is asked, or a fatal pre-flight finding.\n";
    s += ".SH EXAMPLES\n.nf\n"
         "l7gate \\-l 0\\-2 \\-a 0000:3b:00.0 \\-a 0000:3b:00.1 \\-\\- \\-\\-pairs 0:1 \\-\\-rxq 2 \\e\n"
         "    \\-\\-policy /etc/l7gate/policy.yaml\n"
         "l7gate \\-l 0\\-2 \\-a 0000:3b:00.0 \\-a 0000:3b:00.1 \\-\\- \\-\\-rxq 2 \\-\\-preflight\n"
         "systemctl reload l7gate\n.fi\n";
    s += ".SH SEE ALSO\n"
         "dpdk\\-devbind.py(8), systemctl(1), journalctl(1); the deployment guide in "
         "/usr/share/doc/l7gate/deployment.md.gz\n";
    return s;
}

} // namespace l7gate::ctl
