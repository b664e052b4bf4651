// MetricsExporter: the families built from a hand-made StatsSnapshot, served over HTTP by
// prometheus-cpp's Exposer on 127.0.0.1 (no EAL, no workers).

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <ndpi_api.h>

#include "control/observe/metrics.hpp"
#include "control/base/ndpi_names.hpp"
#include "control/policy/compiler.hpp"
#include "control/observe/stats_report.hpp"
#include "dataplane/drop_reason.hpp"
#include "dataplane/policy_snapshot.hpp"

namespace l7gate::test {
namespace {

using ctl::MetricsExporter;
using ctl::PolicyStatus;
using ctl::StatsSnapshot;

// A custom protocol with characters that matter in the text format. nDPI keeps the backslash,
// braces, '=' and ',' and turns the quote and the space into '_': Odd_Pro{to}=\Na,me_x.
const std::string kOddProtoLine = "tcp:34001@Odd\"Pro{to}=\\Na,me x";
// A reason name (policy/kind/key from a YAML key) with a newline, a quote and a backslash.
const std::string kOddReason = "lan/hostnames/we\"ird\\host\nname";

// ---------------------------------------------------------------------------------------------
// A strict parser of the Prometheus text format (what the tests assert on).

struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
};

struct Family {
    std::string help, type;
    std::vector<Sample> samples;
};

struct Exposition {
    std::map<std::string, Family> families;
    std::vector<std::string> errors;
    std::vector<std::pair<std::string, std::map<std::string, std::string>>> series;  // every sample, in order
};

bool valid_name(const std::string& n) {
    if (n.empty() || !(std::isalpha(static_cast<unsigned char>(n[0])) || n[0] == '_' || n[0] == ':')) {
        return false;
    }
    for (char c : n) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':')) {
            return false;
        }
    }
    return true;
}

// Family a sample belongs to: the name itself, or summary/histogram suffixes.
std::string family_of(const Exposition& e, const std::string& sample) {
    if (e.families.count(sample) != 0) {
        return sample;
    }
    for (const char* suf : {"_sum", "_count", "_bucket"}) {
        const std::string s(suf);
        if (sample.size() > s.size() && sample.compare(sample.size() - s.size(), s.size(), s) == 0) {
            const std::string base = sample.substr(0, sample.size() - s.size());
            if (e.families.count(base) != 0) {
                return base;
            }
        }
    }
    return sample;
}

Exposition parse_exposition(const std::string& text) {
    Exposition e;
    std::istringstream in(text);
    std::string line;
    int n = 0;
    auto err = [&](const std::string& what) { e.errors.push_back("line " + std::to_string(n) + ": " + what + ": " + line); };
    while (std::getline(in, line)) {
        ++n;
        if (line.empty()) {
            continue;
        }
        if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
            const std::string rest = line.substr(7);
            const size_t sp = rest.find(' ');
            const std::string name = rest.substr(0, sp);
            const std::string val = sp == std::string::npos ? "" : rest.substr(sp + 1);
            if (!valid_name(name)) {
                err("bad metric name");
            }
            Family& f = e.families[name];
            if (line[2] == 'H') {
                if (!f.help.empty()) {
                    err("second HELP");
                }
                f.help = val;
            } else {
                if (!f.type.empty()) {
                    err("second TYPE");
                }
                f.type = val;
            }
            continue;
        }
        if (line[0] == '#') {
            continue;
        }
        Sample s;
        size_t i = 0;
        while (i < line.size() && line[i] != '{' && line[i] != ' ') {
            ++i;
        }
        s.name = line.substr(0, i);
        if (!valid_name(s.name)) {
            err("bad sample name");
        }
        if (i < line.size() && line[i] == '{') {
            ++i;
            while (i < line.size() && line[i] != '}') {
                const size_t eq = line.find('=', i);
                if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
                    err("bad label");
                    break;
                }
                const std::string lname = line.substr(i, eq - i);
                if (!valid_name(lname) || lname.find(':') != std::string::npos) {
                    err("bad label name");
                }
                std::string v;
                size_t j = eq + 2;
                for (; j < line.size() && line[j] != '"'; ++j) {
                    if (line[j] == '\\') {
                        ++j;
                        if (j >= line.size()) {
                            break;
                        }
                        if (line[j] == 'n') {
                            v += '\n';
                        } else if (line[j] == '\\' || line[j] == '"') {
                            v += line[j];
                        } else {
                            err("bad escape");
                        }
                    } else {
                        v += line[j];
                    }
                }
                if (j >= line.size()) {
                    err("unterminated label value");
                    break;
                }
                if (s.labels.count(lname) != 0) {
                    err("label twice");
                }
                s.labels[lname] = v;
                i = j + 1;
                if (i < line.size() && line[i] == ',') {
                    ++i;
                }
            }
            if (i >= line.size()) {
                err("unterminated label set");
                continue;
            }
            ++i;  // '}'
        }
        if (i >= line.size() || line[i] != ' ') {
            err("no value");
            continue;
        }
        const std::string v = line.substr(i + 1);
        char* end = nullptr;
        s.value = std::strtod(v.c_str(), &end);
        if (v.empty() || (*end != '\0' && *end != ' ')) {
            err("bad value");
        }
        const std::string fam = family_of(e, s.name);
        if (e.families.count(fam) == 0) {
            err("sample without HELP/TYPE");
        }
        e.series.emplace_back(s.name, s.labels);
        e.families[fam].samples.push_back(std::move(s));
    }
    return e;
}

// ---------------------------------------------------------------------------------------------

std::string http_get(const std::string& host, int port, const std::string& path, int* status = nullptr) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, host.c_str(), &sa.sin_addr);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
        close(fd);
        return {};
    }
    const std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + host + "\r\n\r\n";
    (void)!write(fd, req.data(), req.size());
    std::string resp;
    char buf[8192];
    for (ssize_t r; (r = read(fd, buf, sizeof(buf))) > 0;) {
        resp.append(buf, static_cast<size_t>(r));
    }
    close(fd);
    const size_t hdr_end = resp.find("\r\n\r\n");
    if (status != nullptr) {
        *status = resp.size() > 12 ? std::atoi(resp.c_str() + 9) : 0;
    }
    return hdr_end == std::string::npos ? std::string() : resp.substr(hdr_end + 4);
}

// connect() to addr:port; returns 0 or errno.
int try_connect(const in_addr& a, int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr = a;
    const int rc = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    const int e = rc == 0 ? 0 : errno;
    close(fd);
    return e;
}

int port_of(const std::string& hostport) {
    const size_t c = hostport.rfind(':');
    return c == std::string::npos ? -1 : std::atoi(hostport.c_str() + c + 1);
}

// Local addresses of TCP sockets in LISTEN state on `port`, from /proc/net/tcp{,6} (hex as the
// kernel prints them: 0100007F is 127.0.0.1).
std::vector<std::string> listeners(int port) {
    std::vector<std::string> out;
    for (const char* f : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        std::ifstream in(f);
        std::string line;
        std::getline(in, line);  // header
        while (std::getline(in, line)) {
            std::istringstream ls(line);
            std::string sl, local, remote, st;
            ls >> sl >> local >> remote >> st;
            const size_t c = local.rfind(':');
            if (st == "0A" && c != std::string::npos && std::stoi(local.substr(c + 1), nullptr, 16) == port) {
                out.push_back(local.substr(0, c));
            }
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------

class Metrics : public testing::Test {
protected:
    static void SetUpTestSuite() {
        protos_file_ = testing::TempDir() + "l7gate-metrics-protos-" + std::to_string(getpid()) + ".txt";
        std::ofstream(protos_file_) << kOddProtoLine << "\n";
        names_ = new ctl::NdpiNames();
        init_error_ = names_->init(protos_file_, "");
        if (init_error_.empty()) {
            odd_proto_id_ = names_->protocol_count() - 1;  // custom protocols come last
            odd_proto_ = names_->protocol(odd_proto_id_);
        }
    }
    static void TearDownTestSuite() {
        delete names_;
        names_ = nullptr;
        std::remove(protos_file_.c_str());
    }
    void SetUp() override {
        ASSERT_EQ(init_error_, "") << "NdpiNames::init";
        ASSERT_NE(odd_proto_.find('\\'), std::string::npos) << "custom protocol name: " << odd_proto_;
        ASSERT_NE(odd_proto_.find("{to}="), std::string::npos) << "custom protocol name: " << odd_proto_;
    }

    unsigned proto(const char* name) {
        const int id = names_->protocol_id(name);
        EXPECT_GE(id, 0) << name;
        return static_cast<unsigned>(id);
    }

    // Two ports with two queues, two workers, some of every counter.
    StatsSnapshot snapshot() {
        StatsSnapshot s;
        for (uint16_t port = 0; port < 2; ++port) {
            ctl::PortStats ps;
            ps.port = port;
            ps.driver = "net_pcap";
            for (unsigned q = 0; q < 2; ++q) {
                ctl::QueueStats qs;
                qs.rx_packets = 1000 * (port + 1) + 10 * q + 1;
                qs.rx_bytes = qs.rx_packets * 100 + 7;
                qs.tx_packets = 500 * (port + 1) + q;
                qs.tx_bytes = qs.tx_packets * 90;
                ps.queues.push_back(qs);
            }
            ps.imissed = 11 + port;
            ps.rx_nombuf = 21 + port;
            ps.ierrors = 31 + port;
            ps.oerrors = 41 + port;
            s.ports.push_back(ps);
        }
        for (unsigned w = 0; w < 2; ++w) {
            ctl::WorkerStats ws;
            ws.lcore = w + 1;
            ws.queue = w;
            ws.rx_packets = 4000 + w;
            ws.busy_cycles = 8'000'000 + 1000 * w;
            ws.flows_active = 300 + w;
            s.workers.push_back(ws);
        }
        s.drops[static_cast<size_t>(dp::DropReason::Policy)] = 17;
        s.drops[static_cast<size_t>(dp::DropReason::TcpTruncated)] = 5;
        s.malformed[static_cast<size_t>(dp::DropReason::TcpTruncated)] = 6;
        s.flows_created = 1234;
        s.flows_expired = 234;
        s.flows_asymmetric = 17;
        s.table_full = 3;
        s.bucket_full = 4;
        s.flowless[static_cast<size_t>(dp::Flowless::Drop)] = 5;
        s.flowless[static_cast<size_t>(dp::Flowless::UndecidedPass)] = 2;
        s.protocols.push_back({proto("TLS"), 50, 50000, 5});
        s.protocols.push_back({proto("HTTP"), 40, 40000, 4});
        s.protocols.push_back({proto("DNS"), 30, 3000, 15});
        s.protocols.push_back({odd_proto_id_, 2, 222, 1});
        s.category_bytes[NDPI_PROTOCOL_CATEGORY_WEB] = 90000;
        s.category_bytes[NDPI_PROTOCOL_CATEGORY_DOWNLOAD_FT] = 3000;
        s.risk_flows[NDPI_URL_POSSIBLE_SQL_INJECTION] = 2;
        s.risk_flows[NDPI_TLS_OBSOLETE_VERSION] = 1;
        s.classified = 25;
        s.ndpi_packets = 99;
        s.dpi_pool_full = 4;
        s.flow_log_records = 77;
        s.flow_log_lost = 2;
        return s;
    }

    // 60 reasons with flows 1000, 999, ... (the odd one first), registered in `reasons`.
    void add_reasons(StatsSnapshot& s, ctl::ReasonRegistry& reasons) {
        for (unsigned i = 0; i < 60; ++i) {
            const std::string name = i == 0 ? kOddReason : "lan/protocols/P" + std::to_string(i);
            const uint16_t id = reasons.id(name);
            s.reasons.push_back({id, 1000 - i, 7 * i});  // packets ascending: not the flows order
        }
    }

    PolicyStatus policy_status() {
        PolicyStatus p;
        p.generation = 3;
        p.reloads_ok = 2;
        p.reloads_failed = 1;
        p.last_reload_unix = 1700000123.5;
        p.last_reload_success = false;
        p.shaper_names = {"slow", "video\"hd"};
        p.shaper_rate_bps = {1'000'000, 25'000'000};
        return p;
    }

    static const Sample* find(const Exposition& e, const std::string& fam,
                              const std::map<std::string, std::string>& labels) {
        const auto it = e.families.find(fam);
        if (it == e.families.end()) {
            return nullptr;
        }
        for (const Sample& s : it->second.samples) {
            if (s.labels == labels) {
                return &s;
            }
        }
        return nullptr;
    }

    static double val(const Exposition& e, const std::string& fam,
                      const std::map<std::string, std::string>& labels = {}) {
        const Sample* s = find(e, fam, labels);
        EXPECT_NE(s, nullptr) << fam << " has no sample with the labels asked";
        return s != nullptr ? s->value : -1;
    }

    static inline ctl::NdpiNames* names_ = nullptr;
    static inline std::string init_error_;
    static inline std::string protos_file_;
    static inline unsigned odd_proto_id_ = 0;
    static inline std::string odd_proto_;
};

// Family name -> TYPE: the contract.
const std::map<std::string, std::string> kFamilies = {
    {"l7gate_rx_packets_total", "counter"},
    {"l7gate_rx_bytes_total", "counter"},
    {"l7gate_tx_packets_total", "counter"},
    {"l7gate_tx_bytes_total", "counter"},
    {"l7gate_port_missed_packets_total", "counter"},
    {"l7gate_port_rx_nombuf_total", "counter"},
    {"l7gate_port_rx_errors_total", "counter"},
    {"l7gate_port_tx_errors_total", "counter"},
    {"l7gate_drops_total", "counter"},
    {"l7gate_malformed_packets_total", "counter"},
    {"l7gate_flows_active", "gauge"},
    {"l7gate_flows_created_total", "counter"},
    {"l7gate_flows_expired_total", "counter"},
    {"l7gate_flows_asymmetric_total", "counter"},
    {"l7gate_flow_table_full_total", "counter"},
    {"l7gate_flow_bucket_full_total", "counter"},
    {"l7gate_flowless_packets_total", "counter"},
    {"l7gate_l7_packets_total", "counter"},
    {"l7gate_l7_bytes_total", "counter"},
    {"l7gate_l7_flows_total", "counter"},
    {"l7gate_category_bytes_total", "counter"},
    {"l7gate_risk_flows_total", "counter"},
    {"l7gate_verdicts_total", "counter"},
    {"l7gate_policy_enforced", "gauge"},
    {"l7gate_monitor_forwarded_packets_total", "counter"},
    {"l7gate_monitor_forwarded_bytes_total", "counter"},
    {"l7gate_policy_generation", "gauge"},
    {"l7gate_policy_reloads_total", "counter"},
    {"l7gate_policy_last_reload_timestamp_seconds", "gauge"},
    {"l7gate_policy_last_reload_success", "gauge"},
    {"l7gate_worker_cycles_per_packet", "gauge"},
    {"l7gate_worker_busy_ratio", "gauge"},
    {"l7gate_flow_log_records_total", "counter"},
    {"l7gate_flow_log_lost_total", "counter"},
    {"l7gate_shaper_rate_bits", "gauge"},
    {"l7gate_classified_flows_total", "counter"},
    {"l7gate_ndpi_packets_total", "counter"},
    {"l7gate_dpi_pool_full_total", "counter"},
};

void expect_well_formed(const Exposition& e) {
    EXPECT_TRUE(e.errors.empty()) << e.errors.size() << " parse error(s), first: " << e.errors.front();
    // No duplicate series.
    std::set<std::pair<std::string, std::map<std::string, std::string>>> seen;
    for (const auto& s : e.series) {
        EXPECT_TRUE(seen.insert(s).second) << "duplicate series " << s.first;
    }
    for (const auto& [name, f] : e.families) {
        EXPECT_FALSE(f.help.empty()) << name << " has no HELP";
        EXPECT_FALSE(f.type.empty()) << name << " has no TYPE";
        if (name.rfind("l7gate_", 0) != 0) {
            continue;  // the Exposer's own exposer_* families
        }
        const bool total = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
        EXPECT_TRUE(f.type == "counter" || f.type == "gauge") << name;
        EXPECT_EQ(total, f.type == "counter") << name << ": counters and only counters end in _total";
        for (const Sample& s : f.samples) {
            EXPECT_EQ(s.name, name) << "a counter/gauge sample is named as its family";
        }
    }
}

TEST_F(Metrics, EveryFamilyHasHelpTypeAndTheSnapshotValues) {
    StatsSnapshot s = snapshot();
    ctl::ReasonRegistry reasons;
    add_reasons(s, reasons);
    MetricsExporter m;
    m.update_at(100.0, s, *names_, reasons, policy_status(), 2.0e9);
    const Exposition e = parse_exposition(m.text());
    expect_well_formed(e);
    for (const auto& [name, type] : kFamilies) {
        const auto it = e.families.find(name);
        ASSERT_NE(it, e.families.end()) << name << " missing";
        EXPECT_EQ(it->second.type, type) << name;
        EXPECT_GT(it->second.help.size(), 20u) << name << ": HELP must explain the metric";
    }

    // Ports and queues.
    EXPECT_EQ(val(e, "l7gate_rx_packets_total", {{"port", "0"}, {"queue", "1"}}), 1011);
    EXPECT_EQ(val(e, "l7gate_rx_bytes_total", {{"port", "1"}, {"queue", "0"}}), 2001 * 100 + 7);
    EXPECT_EQ(val(e, "l7gate_tx_packets_total", {{"port", "1"}, {"queue", "1"}}), 1001);
    EXPECT_EQ(val(e, "l7gate_tx_bytes_total", {{"port", "0"}, {"queue", "0"}}), 500 * 90);
    EXPECT_EQ(e.families.at("l7gate_rx_packets_total").samples.size(), 4u);
    EXPECT_EQ(val(e, "l7gate_port_missed_packets_total", {{"port", "1"}}), 12);
    EXPECT_EQ(val(e, "l7gate_port_rx_nombuf_total", {{"port", "0"}}), 21);
    EXPECT_EQ(val(e, "l7gate_port_rx_errors_total", {{"port", "1"}}), 32);
    EXPECT_EQ(val(e, "l7gate_port_tx_errors_total", {{"port", "0"}}), 41);

    // Every drop reason, zeros included; malformed reasons only in the malformed family.
    EXPECT_EQ(e.families.at("l7gate_drops_total").samples.size(), dp::kDropReasonCount);
    size_t n_malformed = 0;
    for (const auto& r : dp::kDropReasons) {
        const std::string name(r.name);
        EXPECT_NE(find(e, "l7gate_drops_total", {{"reason", name}}), nullptr) << name;
        EXPECT_EQ(find(e, "l7gate_malformed_packets_total", {{"reason", name}}) != nullptr, r.malformed) << name;
        n_malformed += r.malformed ? 1 : 0;
    }
    EXPECT_EQ(e.families.at("l7gate_malformed_packets_total").samples.size(), n_malformed);
    EXPECT_EQ(val(e, "l7gate_drops_total", {{"reason", "policy"}}), 17);
    EXPECT_EQ(val(e, "l7gate_drops_total", {{"reason", "tcp_truncated"}}), 5);
    EXPECT_EQ(val(e, "l7gate_drops_total", {{"reason", "tx_full"}}), 0);
    EXPECT_EQ(val(e, "l7gate_malformed_packets_total", {{"reason", "tcp_truncated"}}), 6);

    // Flows.
    EXPECT_EQ(val(e, "l7gate_flows_active", {{"worker", "0"}}), 300);
    EXPECT_EQ(val(e, "l7gate_flows_active", {{"worker", "1"}}), 301);
    EXPECT_EQ(val(e, "l7gate_flows_created_total"), 1234);
    EXPECT_EQ(val(e, "l7gate_flows_expired_total"), 234);
    EXPECT_EQ(val(e, "l7gate_flows_asymmetric_total"), 17);
    EXPECT_EQ(val(e, "l7gate_flow_table_full_total"), 3);
    EXPECT_EQ(val(e, "l7gate_flow_bucket_full_total"), 4);
    EXPECT_EQ(val(e, "l7gate_flowless_packets_total", {{"outcome", "drop"}}), 5);
    EXPECT_EQ(val(e, "l7gate_flowless_packets_total", {{"outcome", "undecided_pass"}}), 2);
    EXPECT_EQ(val(e, "l7gate_flowless_packets_total", {{"outcome", "pass"}}), 0);

    // Protocols, categories (per flow, from the snapshot), risks.
    EXPECT_EQ(val(e, "l7gate_l7_bytes_total", {{"protocol", "TLS"}}), 50000);
    EXPECT_EQ(val(e, "l7gate_l7_packets_total", {{"protocol", "HTTP"}}), 40);
    EXPECT_EQ(val(e, "l7gate_l7_flows_total", {{"protocol", "DNS"}}), 15);
    EXPECT_EQ(e.families.at("l7gate_l7_flows_total").samples.size(), 4u);
    const std::map<std::string, double> want_cat = {
        {names_->category(NDPI_PROTOCOL_CATEGORY_WEB), 90000}, {names_->category(NDPI_PROTOCOL_CATEGORY_DOWNLOAD_FT), 3000}};
    EXPECT_EQ(e.families.at("l7gate_category_bytes_total").samples.size(), want_cat.size());
    for (const auto& [c, bytes] : want_cat) {
        EXPECT_EQ(val(e, "l7gate_category_bytes_total", {{"category", c}}), bytes) << c;
    }
    EXPECT_EQ(val(e, "l7gate_risk_flows_total", {{"risk", ctl::NdpiNames::risk(NDPI_URL_POSSIBLE_SQL_INJECTION)}}), 2);
    EXPECT_EQ(val(e, "l7gate_risk_flows_total", {{"risk", ctl::NdpiNames::risk(NDPI_TLS_OBSOLETE_VERSION)}}), 1);
    EXPECT_EQ(val(e, "l7gate_risk_flows_total", {{"risk", ctl::NdpiNames::risk(NDPI_TLS_WEAK_CIPHER)}}), 0)
        << "known risks are exported with zeros";
    EXPECT_EQ(e.families.at("l7gate_risk_flows_total").samples.size(), static_cast<size_t>(NDPI_MAX_RISK - 1));

    // Verdicts: the 50 reasons with most flows, then "other" with the sum of the rest.
    const Family& v = e.families.at("l7gate_verdicts_total");
    EXPECT_EQ(v.samples.size(), MetricsExporter::kMaxVerdictReasons + 1);
    EXPECT_EQ(val(e, "l7gate_verdicts_total", {{"action", ""}, {"reason", "lan/protocols/P1"}}), 999);
    EXPECT_EQ(val(e, "l7gate_verdicts_total", {{"action", ""}, {"reason", "lan/protocols/P49"}}), 951);
    EXPECT_EQ(find(e, "l7gate_verdicts_total", {{"action", ""}, {"reason", "lan/protocols/P50"}}), nullptr);
    double other = 0;
    for (unsigned i = 50; i < 60; ++i) {
        other += 1000 - i;
    }
    EXPECT_EQ(val(e, "l7gate_verdicts_total", {{"action", ""}, {"reason", "other"}}), other);
    double total = 0;
    for (const Sample& x : v.samples) {
        total += x.value;
    }
    EXPECT_EQ(total, (1000.0 + 941.0) * 60 / 2) << "no flow lost or counted twice by the top-50 cut";

    // Policy.
    EXPECT_EQ(val(e, "l7gate_policy_generation"), 3);
    EXPECT_EQ(val(e, "l7gate_policy_reloads_total", {{"result", "success"}}), 2);
    EXPECT_EQ(val(e, "l7gate_policy_reloads_total", {{"result", "failure"}}), 1);
    EXPECT_EQ(val(e, "l7gate_policy_last_reload_timestamp_seconds"), 1700000123.5);
    EXPECT_EQ(val(e, "l7gate_policy_last_reload_success"), 0);
    EXPECT_EQ(val(e, "l7gate_shaper_rate_bits", {{"shaper", "slow"}}), 1e6);
    EXPECT_EQ(val(e, "l7gate_shaper_rate_bits", {{"shaper", "video\"hd"}}), 25e6);

    // Workers: cycles per packet since start; no busy ratio before a second update.
    EXPECT_DOUBLE_EQ(val(e, "l7gate_worker_cycles_per_packet", {{"worker", "1"}}), 8001000.0 / 4001.0);
    EXPECT_TRUE(e.families.at("l7gate_worker_busy_ratio").samples.empty());

    // Flow log and classification.
    EXPECT_EQ(val(e, "l7gate_flow_log_records_total"), 77);
    EXPECT_EQ(val(e, "l7gate_flow_log_lost_total"), 2);
    EXPECT_EQ(val(e, "l7gate_classified_flows_total"), 25);
    EXPECT_EQ(val(e, "l7gate_ndpi_packets_total"), 99);
    EXPECT_EQ(val(e, "l7gate_dpi_pool_full_total"), 4);
}

TEST_F(Metrics, OddNamesAreEscapedInLabelValues) {
    StatsSnapshot s = snapshot();
    ctl::ReasonRegistry reasons;
    add_reasons(s, reasons);
    MetricsExporter m;
    m.update_at(1.0, s, *names_, reasons, policy_status(), 2.0e9);
    const std::string text = m.text();
    // On the wire: \" for a quote, \\ for a backslash, \n for a newline.
    EXPECT_NE(text.find("protocol=\"Odd_Pro{to}=\\\\Na,me_x\""), std::string::npos) << odd_proto_;
    EXPECT_NE(text.find("reason=\"lan/hostnames/we\\\"ird\\\\host\\nname\""), std::string::npos);
    EXPECT_NE(text.find("shaper=\"video\\\"hd\""), std::string::npos);
    // Parsed back, the values are the original names.
    const Exposition e = parse_exposition(text);
    expect_well_formed(e);
    EXPECT_EQ(val(e, "l7gate_l7_bytes_total", {{"protocol", odd_proto_}}), 222);
    EXPECT_EQ(val(e, "l7gate_verdicts_total", {{"action", ""}, {"reason", kOddReason}}), 1000);
}

TEST_F(Metrics, PmdCountersOnlyWhenReadAndNoDuplicateSeries) {
    StatsSnapshot s = snapshot();
    for (ctl::PortStats& p : s.ports) {
        p.driver.clear();  // collect_stats(..., with_pmd=false)
    }
    // Two ids of one name become one series with the sum: 0 is Unknown, and so is any id
    // beyond nDPI's protocols.
    s.protocols.push_back({0, 1, 10, 1});
    s.protocols.push_back({511, 2, 20, 1});
    ctl::ReasonRegistry reasons;
    MetricsExporter m;
    m.update_at(1.0, s, *names_, reasons, PolicyStatus{}, 2.0e9);
    const Exposition e = parse_exposition(m.text());
    expect_well_formed(e);
    EXPECT_EQ(names_->protocol(511), "Unknown");
    EXPECT_EQ(val(e, "l7gate_l7_bytes_total", {{"protocol", "Unknown"}}), 30);
    EXPECT_EQ(val(e, "l7gate_l7_flows_total", {{"protocol", "Unknown"}}), 2);
    EXPECT_TRUE(e.families.at("l7gate_port_missed_packets_total").samples.empty());
    EXPECT_TRUE(e.families.at("l7gate_port_tx_errors_total").samples.empty());
    // No reasons: the "other" series alone, at 0.
    EXPECT_EQ(e.families.at("l7gate_verdicts_total").samples.size(), 1u);
    EXPECT_EQ(val(e, "l7gate_verdicts_total", {{"action", ""}, {"reason", "other"}}), 0);
    EXPECT_TRUE(e.families.at("l7gate_shaper_rate_bits").samples.empty());
    EXPECT_EQ(val(e, "l7gate_policy_generation"), 0);
    EXPECT_EQ(val(e, "l7gate_policy_last_reload_success"), 1);
}

TEST_F(Metrics, BusyRatioIsOverTheLastInterval) {
    StatsSnapshot s = snapshot();
    ctl::ReasonRegistry reasons;
    MetricsExporter m;
    const double hz = 2.0e9;
    m.update_at(10.0, s, *names_, reasons, PolicyStatus{}, hz);
    s.workers[0].busy_cycles += 1'000'000'000;  // 1e9 cycles in 2 s at 2 GHz: 25 %
    s.workers[1].busy_cycles += 3'000'000'000;  // 75 %
    m.update_at(12.0, s, *names_, reasons, PolicyStatus{}, hz);
    Exposition e = parse_exposition(m.text());
    EXPECT_DOUBLE_EQ(val(e, "l7gate_worker_busy_ratio", {{"worker", "0"}}), 0.25);
    EXPECT_DOUBLE_EQ(val(e, "l7gate_worker_busy_ratio", {{"worker", "1"}}), 0.75);
    m.update_at(13.0, s, *names_, reasons, PolicyStatus{}, hz);  // idle second
    e = parse_exposition(m.text());
    EXPECT_EQ(val(e, "l7gate_worker_busy_ratio", {{"worker", "0"}}), 0);
}

TEST_F(Metrics, VerdictActionComesFromTheCurrentPolicy) {
    StatsSnapshot s = snapshot();
    ctl::ReasonRegistry reasons;
    const uint16_t drop = reasons.id("lan/protocols/SSH");
    const uint16_t shape = reasons.id("lan/protocols/YouTube");
    const uint16_t def = reasons.id("lan/default");
    const uint16_t pending = reasons.id("pending");
    const uint16_t gone = reasons.id("old/protocols/Telnet");  // not in the current policy
    for (uint16_t id : {drop, shape, def, pending, gone}) {
        s.reasons.push_back({id, 10u + id, 0});
    }
    dp::PolicySnapshot pol;
    pol.markers.push_back({dp::Action::Drop, 0, drop});
    pol.markers.push_back({dp::Action::Shape, 0, shape});
    pol.policies.emplace_back();
    pol.policies.back().default_marker = {dp::Action::Pass, 0, def};
    pol.pending_reason = pending;
    MetricsExporter m;
    m.update_at(1.0, s, *names_, reasons, PolicyStatus{}, 2.0e9, &pol);
    const Exposition e = parse_exposition(m.text());
    expect_well_formed(e);
    EXPECT_EQ(val(e, "l7gate_verdicts_total", {{"action", "drop"}, {"reason", "lan/protocols/SSH"}}), 10 + drop);
    EXPECT_EQ(val(e, "l7gate_verdicts_total", {{"action", "shape"}, {"reason", "lan/protocols/YouTube"}}), 10 + shape);
    EXPECT_EQ(val(e, "l7gate_verdicts_total", {{"action", "pass"}, {"reason", "lan/default"}}), 10 + def);
    EXPECT_EQ(val(e, "l7gate_verdicts_total", {{"action", "pass"}, {"reason", "pending"}}), 10 + pending);
    EXPECT_EQ(val(e, "l7gate_verdicts_total", {{"action", ""}, {"reason", "old/protocols/Telnet"}}), 10 + gone);
}

// Monitor mode: which policies enforce (the policy in force), and what monitor mode forwarded
// although its verdict said otherwise, by verdict.
TEST_F(Metrics, MonitorModeFamilies) {
    StatsSnapshot s = snapshot();
    for (size_t k = 0; k < static_cast<size_t>(dp::Monitored::Count); ++k) {
        s.monitor_forwarded_packets[k] = 10 + k;
        s.monitor_forwarded_bytes[k] = 1000 + k;
    }
    ctl::ReasonRegistry reasons;
    dp::PolicySnapshot pol;
    pol.policies.emplace_back();
    pol.policies.back().name = "prod";
    pol.policies.emplace_back();
    pol.policies.back().name = "trial";
    pol.policies.back().enforce = false;
    MetricsExporter m;
    m.update_at(1.0, s, *names_, reasons, PolicyStatus{}, 2.0e9, &pol);
    const Exposition e = parse_exposition(m.text());
    expect_well_formed(e);
    EXPECT_EQ(val(e, "l7gate_policy_enforced", {{"policy", "prod"}}), 1);
    EXPECT_EQ(val(e, "l7gate_policy_enforced", {{"policy", "trial"}}), 0);
    EXPECT_EQ(val(e, "l7gate_monitor_forwarded_packets_total", {{"verdict", "drop"}}), 10);
    EXPECT_EQ(val(e, "l7gate_monitor_forwarded_packets_total", {{"verdict", "reject"}}), 11);
    EXPECT_EQ(val(e, "l7gate_monitor_forwarded_packets_total", {{"verdict", "block"}}), 12);
    EXPECT_EQ(val(e, "l7gate_monitor_forwarded_packets_total", {{"verdict", "shape"}}), 13);
    EXPECT_EQ(val(e, "l7gate_monitor_forwarded_bytes_total", {{"verdict", "police"}}), 1004);
}

TEST_F(Metrics, ServesOverHttpOnLoopbackOnly) {
    StatsSnapshot s = snapshot();
    ctl::ReasonRegistry reasons;
    add_reasons(s, reasons);
    MetricsExporter m;
    m.update_at(1.0, s, *names_, reasons, policy_status(), 2.0e9);
    ASSERT_EQ(m.bound_address(), "") << "not started yet";
    ASSERT_EQ(m.start("127.0.0.1:0"), "");
    const std::string bound = m.bound_address();
    ASSERT_EQ(bound.rfind("127.0.0.1:", 0), 0u) << bound;
    const int port = port_of(bound);
    ASSERT_GT(port, 0) << "port 0 resolved to the port chosen by the kernel: " << bound;

    int status = 0;
    const std::string body = http_get("127.0.0.1", port, "/metrics", &status);
    ASSERT_EQ(status, 200);
    const Exposition e = parse_exposition(body);
    expect_well_formed(e);
    for (const auto& [name, type] : kFamilies) {
        ASSERT_NE(e.families.find(name), e.families.end()) << name << " missing from /metrics";
        EXPECT_EQ(e.families.at(name).type, type) << name;
    }
    EXPECT_EQ(val(e, "l7gate_rx_packets_total", {{"port", "0"}, {"queue", "1"}}), 1011);
    // Every line of ours is served as built.
    std::istringstream ours(m.text());
    for (std::string line; std::getline(ours, line);) {
        EXPECT_NE(body.find(line + "\n"), std::string::npos) << line;
    }

    // The next update is what the next scrape sees.
    s.ports[0].queues[1].rx_packets += 5;
    m.update_at(2.0, s, *names_, reasons, policy_status(), 2.0e9);
    const Exposition e2 = parse_exposition(http_get("127.0.0.1", port, "/metrics"));
    EXPECT_EQ(val(e2, "l7gate_rx_packets_total", {{"port", "0"}, {"queue", "1"}}), 1016);

    // Listening on 127.0.0.1 only: the kernel's socket table, and a connection attempt to every
    // other local IPv4 address of the machine.
    const std::vector<std::string> l = listeners(port);
    ASSERT_EQ(l.size(), 1u) << "one listening socket on port " << port;
    EXPECT_EQ(l[0], "0100007F") << "bound to 127.0.0.1";
    ifaddrs* ifs = nullptr;
    ASSERT_EQ(getifaddrs(&ifs), 0);
    int others = 0;
    for (ifaddrs* i = ifs; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) {
            continue;
        }
        const in_addr a = reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr;
        if (a.s_addr == htonl(INADDR_LOOPBACK)) {
            continue;
        }
        ++others;
        char txt[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &a, txt, sizeof(txt));
        EXPECT_EQ(try_connect(a, port), ECONNREFUSED) << "metrics reachable on " << txt;
    }
    freeifaddrs(ifs);
    in_addr lo{};
    lo.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(try_connect(lo, port), 0);
    if (others == 0) {
        std::printf("note: no non-loopback IPv4 address here; checked the socket table only\n");
    }
}

TEST_F(Metrics, StartReportsBadAddressesAndBusyPorts) {
    MetricsExporter m;
    for (const char* bad : {"", "9777", "127.0.0.1", "127.0.0.1:", ":9777", "127.0.0.1:65536",
                            "127.0.0.1:port", "example.org:9777", "300.1.1.1:9777", "[::1:9777"}) {
        const std::string err = m.start(bad);
        EXPECT_NE(err.find("bad address"), std::string::npos) << "'" << bad << "': " << err;
    }
    EXPECT_EQ(m.bound_address(), "");
    EXPECT_NE(m.start("[::1]:0").find("IPv6"), std::string::npos);

    MetricsExporter first;
    ASSERT_EQ(first.start("localhost:0"), "");
    const std::string bound = first.bound_address();
    ASSERT_EQ(bound.rfind("127.0.0.1:", 0), 0u) << bound;
    MetricsExporter second;
    const std::string err = second.start(bound);
    EXPECT_NE(err.find("in use"), std::string::npos) << err;
    EXPECT_EQ(second.bound_address(), "");
    EXPECT_NE(first.start("127.0.0.1:0"), "") << "a second start() is refused";

    MetricsExporter foreign;
    const std::string err2 = foreign.start("192.0.2.1:0");  // TEST-NET-1: not ours
    EXPECT_NE(err2.find("not an address of this host"), std::string::npos) << err2;
}

} // namespace
} // namespace l7gate::test
