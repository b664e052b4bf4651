#pragma once
// l7gate's own command line (after EAL's options and "--"), testpmd style.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/flow_table.hpp"
#include "dataplane/packet_parser.hpp"

namespace l7gate::ctl {

struct Options {
    std::vector<std::pair<uint16_t, uint16_t>> pairs{{0, 1}};
    unsigned rxq = 1;
    bool rss_symmetric = true;       // --rss symmetric|driver
    uint32_t flows = 262144;         // per worker
    uint32_t frags = 4096;           // per worker
    dp::FlowTimeouts timeouts{};
    uint32_t frag_timeout_s = 5;
    bool malformed_drop = true;
    bool table_full_drop = false;
    uint8_t decap = dp::kDecapAll;   // --decap: the encapsulations looked into (a bit per dp::Encap)
    uint32_t mbufs = 0;              // 0 = automatic
    uint16_t rx_desc = 1024;
    uint16_t tx_desc = 1024;
    uint32_t mtu = 0;                // --mtu (68 .. 9000); 0: not given (ports keep their MTU,
                                     // frames up to one default mbuf: dp::kMtuDefault)
    double duration_s = 0;           // 0 = run until signalled
    uint32_t idle_exit_ms = 0;       // 0 = off
    double stats_interval_s = 0;     // 0 = off
    std::string stats_json;
    std::string flow_log;            // "" = off, "-" = stdout
    std::string event_log;           // "" = events go to the flow log; "-" = stdout
    std::string kafka;               // --kafka BROKERS ("" = no Kafka export)
    std::string kafka_topic = "l7gate-flows";
    std::string kafka_events_topic;  // "" = host events not sent to Kafka
    std::vector<std::pair<std::string, std::string>> kafka_config;  // --kafka-config K=V, in order
    bool capture_clock = false;      // --clock capture
    std::string ndpi_protos;
    std::string ndpi_categories;
    uint16_t dpi_max_tcp = 80;
    bool dpi_no_extra = false;       // --no-extra-dissection
    uint16_t dpi_max_udp = 24;
    uint16_t dpi_max_other = 32;
    uint32_t dpi_flows = 0;          // 0 = automatic (flows / 4, at least 1024)
    uint32_t meta_records = 0;       // 0 = automatic (flows / 4, at least 1024, at most flows)
    uint32_t flow_log_ring = 65536;  // records per worker ring
    std::string ipfix;               // --ipfix HOST:PORT ("" = off): IPFIX export over UDP
    uint32_t ipfix_domain = 1;       // --ipfix-domain: observation domain of worker 0
    uint16_t ipfix_mtu = 1400;       // --ipfix-mtu: bytes per IPFIX message
    double ipfix_template_s = 30;    // --ipfix-template-refresh SECONDS
    uint32_t ipfix_template_msgs = 100;  // --ipfix-template-messages N
    uint32_t ipfix_active_s = 120;   // --ipfix-active-timeout SECONDS (0: a flow only when it ends)
    std::string policy;              // --policy FILE ("" = pass everything)
    std::string policy_format = "auto";
    bool monitor = false;            // --mode monitor: no policy enforces its verdicts
    std::string geoip;               // --geoip FILE.mmdb
    uint32_t reject_rate = 1000;     // --reject-rate: injected packets/s per worker
    uint32_t ff_bytes = 16389;       // --first-flight-bytes (0: no first-flight reassembly)
    uint32_t ff_flows = 256;         // --first-flight-flows: reassembly slots per worker
    bool ff_unnamed_drop = true;     // --on-unnamed-first-flight pass|drop
    uint32_t top_hosts = 20;         // --top-hosts: hosts by score in metrics and stats
    uint32_t watchdog_ms = 500;      // --watchdog-ms (0: off)
    bool fail_open = false;          // --fail-open: forward a stalled worker's queues
    int test_stall_queue = -1;       // --test-stall-worker Q:PACKETS:MS (testing only)
    uint32_t bench_fresh_flows = 0;  // --bench-fresh-flows N (benchmarks only)
    bool bench_fresh_syns = false;   // --bench-fresh-syns: only bare SYNs are rewritten
    bool bench_stop_at_end = false;  // --bench-stop-at-end: workers stop at the end of a replay
    uint64_t test_stall_packets = 0;
    uint32_t test_stall_ms = 0;
    uint32_t test_slow_control_ms = 0;  // --test-slow-control MS (testing only)
    std::string metrics = "127.0.0.1:9777";  // --metrics HOST:PORT ("" = off)
    bool check = false;              // --check: validate --policy and exit
    std::string convert_policy;      // --convert-policy FILE.json
    bool help = false;
    bool interactive = false;        // -i: the command prompt
    std::string log_level = "info";  // l7gate's own logger (EAL's --log-level is DPDK's)
    bool version = false;            // --version: print the version and exit
    bool preflight = false;          // --preflight: run the pre-flight checks and exit 0 or 2
    std::string preflight_root = "/";  // --preflight-root DIR: read sysfs/procfs under DIR (tests)
    double link_timeout_s = 5;       // --link-timeout S: how long pre-flight waits for links
};

// Parses argv[first, argc). Returns "" on success, else one line describing the first error.
std::string parse_options(int argc, char** argv, int first, Options& out);

// The --help text.
std::string usage(const char* prog);

// The man page l7gate(8), in roff, from the same option table as usage().
std::string man_page();

// The version of the meson project (meson.build's project()).
const char* version();

// Index of the "--" that separates EAL options from l7gate's, or -1.
int find_separator(int argc, char** argv);

} // namespace l7gate::ctl
