#include "control/observe/metrics.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>

#include <ndpi_api.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include "control/base/ndpi_names.hpp"
#include "control/policy/compiler.hpp"
#include "control/policy/manager.hpp"
#include "dataplane/drop_reason.hpp"
#include "dataplane/policy_snapshot.hpp"

namespace l7gate::ctl {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// The Collectable the Exposer's HTTP threads call: a copy of the last update's families.
class MetricsExporter::Store : public prometheus::Collectable {
public:
    std::vector<MetricFamily> Collect() const override {
        std::lock_guard<std::mutex> lock(mu_);
        return families_;
    }
    void set(std::vector<MetricFamily>& f) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            families_.swap(f);
        }
        f.clear();  // the previous families are freed outside the lock
    }

private:
    mutable std::mutex mu_;
    std::vector<MetricFamily> families_;
};

namespace {

using Labels = std::vector<ClientMetric::Label>;

MetricFamily family(const char* name, MetricType type, const char* help) {
    MetricFamily f;
    f.name = name;
    f.type = type;
    f.help = help;
    return f;
}

void add(MetricFamily& f, Labels labels, double v) {
    ClientMetric m;
    m.label = std::move(labels);
    std::sort(m.label.begin(), m.label.end());
    if (f.type == MetricType::Counter) {
        m.counter.value = v;
    } else {
        m.gauge.value = v;
    }
    f.metric.push_back(std::move(m));
}

void add(MetricFamily& f, double v) { add(f, Labels{}, v); }

// Families built together, one per row {name, type, help}, in the rows' order: the update
// binds them to names, fills them in one loop, and appends them with append().
struct Spec {
    const char* name;
    MetricType type;
    const char* help;
};

template <size_t N>
std::array<MetricFamily, N> families(const Spec (&specs)[N]) {
    std::array<MetricFamily, N> fs;
    for (size_t i = 0; i < N; ++i) {
        fs[i] = family(specs[i].name, specs[i].type, specs[i].help);
    }
    return fs;
}

// A family with one unlabelled sample, appended to out.
void single(std::vector<MetricFamily>& out, const char* name, MetricType type, const char* help, double v) {
    MetricFamily f = family(name, type, help);
    add(f, v);
    out.push_back(std::move(f));
}

// Two ids can resolve to one label value (two custom protocols of one name, an nDPI risk text
// used twice): one series per label set, the values summed, in a stable order.
void merge_duplicates(MetricFamily& f) {
    std::map<Labels, size_t> seen;
    std::vector<ClientMetric> out;
    out.reserve(f.metric.size());
    for (ClientMetric& m : f.metric) {
        auto [it, fresh] = seen.emplace(m.label, out.size());
        if (fresh) {
            out.push_back(std::move(m));
        } else if (f.type == MetricType::Counter) {
            out[it->second].counter.value += m.counter.value;
        } else {
            out[it->second].gauge.value += m.gauge.value;
        }
    }
    f.metric = std::move(out);
}

// Moves f to out; merged: after merge_duplicates() (label values that may repeat).
void append(std::vector<MetricFamily>& out, MetricFamily& f, bool merged) {
    if (merged) {
        merge_duplicates(f);
    }
    out.push_back(std::move(f));
}

template <size_t N>
void append(std::vector<MetricFamily>& out, std::array<MetricFamily, N>& fs, bool merged) {
    for (MetricFamily& f : fs) {
        append(out, f, merged);
    }
}

double d(uint64_t v) { return static_cast<double>(v); }
std::string u(uint64_t v) { return std::to_string(v); }

std::string sv(std::string_view s) { return std::string(s); }

const char* action_name(const dp::Marker& m) {
    switch (m.action) {
    case dp::Action::Drop:
        return "drop";
    case dp::Action::Reject:
        return "reject";
    case dp::Action::Shape:
        return "shape";
    case dp::Action::Police:
        return "police";
    default:
        return "pass";
    }
}

// sockaddr of an IPv4 "a.b.c.d" and a port.
sockaddr_in ipv4(const std::string& ip, uint16_t port) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &sa.sin_addr);
    return sa;
}

// Splits "HOST:PORT" into an IPv4 address civetweb can listen on and a port; "" or an error.
std::string parse_address(const std::string& addr, std::string& host, uint16_t& port) {
    const std::string bad = "--metrics: bad address '" + addr + "' (expected HOST:PORT with an IPv4 "
                            "address or localhost, e.g. " + MetricsExporter::kDefaultAddress + ", or off)";
    const size_t colon = addr.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == addr.size()) {
        return bad;
    }
    const std::string p = addr.substr(colon + 1);
    if (p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos || std::stoul(p) > 65535) {
        return bad;
    }
    port = static_cast<uint16_t>(std::stoul(p));
    std::string h = addr.substr(0, colon);
    if (h == "localhost") {
        h = "127.0.0.1";
    }
    if (h.size() > 2 && h.front() == '[' && h.back() == ']') {
        // Debian's civetweb (under prometheus-cpp's Exposer) is built without IPv6.
        return "--metrics " + addr + ": IPv6 addresses are not supported (civetweb without IPv6); "
               "use an IPv4 address such as " + MetricsExporter::kDefaultAddress;
    }
    in_addr a4{};
    if (inet_pton(AF_INET, h.c_str(), &a4) != 1) {
        return bad;
    }
    host = h;
    return {};
}

// Why civetweb could not listen: bind a socket the same way and report errno.
std::string probe_bind(const std::string& host, uint16_t port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return std::strerror(errno);
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    const sockaddr_in sa = ipv4(host, port);
    int rc = bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa));
    if (rc == 0) {
        rc = listen(fd, 1);
    }
    const int e = errno;
    close(fd);
    if (rc == 0) {
        return {};
    }
    if (e == EADDRINUSE) {
        return "port " + std::to_string(port) + " is in use";
    }
    if (e == EADDRNOTAVAIL) {
        return "address " + host + " is not an address of this host";
    }
    return std::strerror(e);
}

} // namespace

PolicyStatus policy_status(const PolicyManager* pm) {
    PolicyStatus p;
    if (pm == nullptr) {
        return p;
    }
    const ReloadStatus& rs = pm->status();
    p.generation = rs.generation;
    p.reloads_ok = rs.reloads_ok;
    p.reloads_failed = rs.reloads_failed;
    p.last_reload_unix = rs.last_reload_unix;
    p.last_reload_success = rs.last_reload_success;
    p.applied_generation = rs.applied_generation;
    p.reloads_unacknowledged = rs.reloads_unacknowledged;
    p.retired_pending = pm->retired_pending();
    if (const dp::PolicySnapshot* cur = pm->current(); cur != nullptr) {
        for (const dp::ShaperProfile& sh : cur->shapers) {
            p.shaper_names.push_back(sh.name);
            p.shaper_rate_bps.push_back(sh.rate_bps);
            p.shaper_defined.push_back(sh.defined ? 1 : 0);
        }
    }
    return p;
}

MetricsExporter::MetricsExporter() : store_(std::make_shared<Store>()) {}

MetricsExporter::~MetricsExporter() { stop(); }

void MetricsExporter::stop() {
    if (exposer_ == nullptr) {
        return;
    }
    // civetweb's listening thread polls with a 2 s quantum (SOCKET_TIMEOUT_QUANTUM) and only
    // then sees the stop flag: connecting to it (and closing at once) while the server stops
    // wakes it, so l7gate exits without that delay.
    const std::string bound = bound_address();
    const size_t colon = bound.rfind(':');
    const uint16_t port = colon == std::string::npos ? 0 : static_cast<uint16_t>(std::stoul(bound.substr(colon + 1)));
    const sockaddr_in sa = ipv4(host_ == "0.0.0.0" ? "127.0.0.1" : host_, port);
    std::atomic<bool> done{false};
    std::thread waker([&] {
        while (!done.load() && port != 0) {
            if (const int fd = socket(AF_INET, SOCK_STREAM, 0); fd >= 0) {
                (void)connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa));
                close(fd);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    });
    exposer_.reset();
    done.store(true);
    waker.join();
}

std::string MetricsExporter::start(const std::string& addr) {
    if (exposer_ != nullptr) {
        return "--metrics: the exporter is already started";
    }
    std::string host;
    uint16_t port = 0;
    if (std::string err = parse_address(addr, host, port); !err.empty()) {
        return err;
    }
    const std::string listen = host + ":" + std::to_string(port);
    try {
        // listening_ports with an explicit address: civetweb binds that address only.
        exposer_ = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
            "listening_ports", listen, "num_threads", "2", "request_timeout_ms", "5000"});
    } catch (const std::exception& e) {
        exposer_.reset();
        std::string why = probe_bind(host, port);
        if (why.empty()) {
            why = e.what();
        }
        return "--metrics " + addr + ": cannot listen: " + why;
    }
    exposer_->RegisterCollectable(store_);
    host_ = host;
    return {};
}

std::string MetricsExporter::bound_address() const {
    if (exposer_ == nullptr) {
        return {};
    }
    const std::vector<int> ports = exposer_->GetListeningPorts();
    return ports.empty() ? std::string() : host_ + ":" + std::to_string(ports.front());
}

std::string MetricsExporter::text() const {
    std::ostringstream o;
    prometheus::TextSerializer().Serialize(o, store_->Collect());
    return o.str();
}

void MetricsExporter::update(const StatsSnapshot& s, const NdpiNames& names, const ReasonRegistry& reasons,
                             const PolicyStatus& policy, double tsc_hz, const dp::PolicySnapshot* current) {
    const double now =
        std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    update_at(now, s, names, reasons, policy, tsc_hz, current);
}

namespace {

// Ports and queues: the workers' packets and bytes, the PMD's own counters.
void add_port_metrics(std::vector<MetricFamily>& out, const StatsSnapshot& s) {
    const auto C = MetricType::Counter;
    std::array<MetricFamily, 8> port_families = families({
        {"l7gate_rx_packets_total", C,
         "Packets received on a port's RX queue (worker N owns queue N of every port)."},
        {"l7gate_rx_bytes_total", C,
         "Bytes received on a port's RX queue, whole Ethernet frames."},
        {"l7gate_tx_packets_total", C,
         "Packets transmitted on a port's TX queue: frames forwarded from the peer port of its bridge pair."},
        {"l7gate_tx_bytes_total", C,
         "Bytes transmitted on a port's TX queue, whole Ethernet frames."},
        {"l7gate_port_missed_packets_total", C,
         "Packets the NIC dropped because the RX queues were full (PMD imissed): the workers did not keep up."},
        {"l7gate_port_rx_nombuf_total", C,
         "Packets the PMD could not receive for lack of an mbuf (packet pool exhausted, see --mbufs)."},
        {"l7gate_port_rx_errors_total", C,
         "Erroneous packets received, as reported by the PMD (ierrors)."},
        {"l7gate_port_tx_errors_total", C,
         "Packets the PMD failed to transmit (oerrors)."},
    });
    auto& [rxp, rxb, txp, txb, missed, nombuf, ierr, oerr] = port_families;
    for (const PortStats& p : s.ports) {
        const std::string port = u(p.port);
        for (size_t q = 0; q < p.queues.size(); ++q) {
            const QueueStats& qs = p.queues[q];
            const Labels l{{"port", port}, {"queue", u(q)}};
            add(rxp, l, d(qs.rx_packets));
            add(rxb, l, d(qs.rx_bytes));
            add(txp, l, d(qs.tx_packets));
            add(txb, l, d(qs.tx_bytes));
        }
        // PMD counters are only in a snapshot collected with them (driver set): no zeros
        // that were never read.
        if (!p.driver.empty()) {
            add(missed, {{"port", port}}, d(p.imissed));
            add(nombuf, {{"port", port}}, d(p.rx_nombuf));
            add(ierr, {{"port", port}}, d(p.ierrors));
            add(oerr, {{"port", port}}, d(p.oerrors));
        }
    }
    append(out, port_families, false);
}

// Drops by reason and malformed packets by anomaly.
void add_drop_metrics(std::vector<MetricFamily>& out, const StatsSnapshot& s) {
    const auto C = MetricType::Counter;
    std::array<MetricFamily, 2> drop_families = families({
        {"l7gate_drops_total", C,
         "Packets dropped, by reason (README: Drop reasons). Every received packet is either transmitted or dropped under exactly one reason."},
        {"l7gate_malformed_packets_total", C,
         "Malformed packets seen by the parser, by anomaly, whether dropped or forwarded (--malformed)."},
    });
    auto& [drops, malformed] = drop_families;
    for (size_t r = 0; r < dp::kDropReasonCount; ++r) {
        const std::string name = sv(dp::kDropReasons[r].name);
        add(drops, {{"reason", name}}, d(s.drops[r]));
        if (dp::kDropReasons[r].malformed) {
            add(malformed, {{"reason", name}}, d(s.malformed[r]));
        }
    }
    append(out, drop_families, false);
}

// Flow tables: active, created, expired, full; packets that got no flow entry.
void add_flow_metrics(std::vector<MetricFamily>& out, const StatsSnapshot& s) {
    const auto C = MetricType::Counter;
    const auto G = MetricType::Gauge;
    MetricFamily active = family("l7gate_flows_active", G,
        "Flows in a worker's flow table now (worker = its queue index).");
    for (const WorkerStats& w : s.workers) {
        add(active, {{"worker", u(w.queue)}}, d(w.flows_active));
    }
    append(out, active, false);
    single(out, "l7gate_flows_created_total", C, "Flows created in the flow tables.", d(s.flows_created));
    single(out, "l7gate_flows_asymmetric_total", C,
        "TCP flows a worker first saw as the server's SYN-ACK: the client's SYN reached another worker (RSS not symmetric) or passed before l7gate started.",
        d(s.flows_asymmetric));
    single(out, "l7gate_flows_expired_total", C,
        "Flows ended by their idle timeout (--timeouts).", d(s.flows_expired));
    single(out, "l7gate_flow_table_full_total", C,
        "Packets whose new flow found the flow table full; forwarded without a flow or dropped (--on-flow-table-full).", d(s.table_full));
    single(out, "l7gate_flow_bucket_full_total", C,
        "Packets whose new flow found both its hash buckets full while the table had free entries; forwarded without a flow or dropped (--on-flow-table-full).", d(s.bucket_full));
    MetricFamily flowless = family("l7gate_flowless_packets_total", C,
        "Packets whose new flow got no entry (table_full + bucket_full), by outcome: the verdict that needs no flow state (pass, drop, reject, shape, police), or --on-flow-table-full where L7 markers could still change it (undecided_pass, undecided_drop).");
    for (size_t k = 0; k < static_cast<size_t>(dp::Flowless::Count); ++k) {
        add(flowless, {{"outcome", dp::kFlowlessNames[k]}}, d(s.flowless[k]));
    }
    append(out, flowless, false);
    MetricFamily unin = family("l7gate_uninspected_packets_total", C,
        "Packets forwarded without their content classified, by cause (README \"What is not inspected\"): non_ip, encapsulation (a tunnel not looked into), no_flow (no flow-table entry), malformed (--malformed pass), fail_open (the watchdog's standby path), monitor (monitor mode), no_dpi_state (no nDPI state was free for the flow).");
    MetricFamily unin_b = family("l7gate_uninspected_bytes_total", C,
        "Bytes of the packets of l7gate_uninspected_packets_total, by cause.");
    for (size_t k = 0; k < dp::kUninspectedCauses; ++k) {
        add(unin, {{"cause", dp::kUninspectedNames[k]}}, d(s.uninspected_packets[k]));
        add(unin_b, {{"cause", dp::kUninspectedNames[k]}}, d(s.uninspected_bytes[k]));
    }
    append(out, unin, false);
    append(out, unin_b, false);
    MetricFamily encap = family("l7gate_tunnel_packets_total", C,
        "Packets whose inner packet was classified and judged, by the encapsulation that carried it (README \"Tunnels\").");
    MetricFamily skipped = family("l7gate_tunnel_skipped_packets_total", C,
        "Tunnel packets whose inside was not looked into, by encapsulation and why (too_deep, unsupported, outer_fragment, garbled).");
    for (size_t k = 1; k < dp::kEncapKinds; ++k) {
        add(encap, {{"encap", dp::kEncapNames[k]}}, d(s.encap_packets[k]));
        for (size_t j = 1; j < dp::kTunSkips; ++j) {
            add(skipped, {{"encap", dp::kEncapNames[k]}, {"why", dp::kTunSkipNames[j]}}, d(s.encap_skipped[k][j]));
        }
    }
    append(out, encap, false);
    append(out, skipped, false);
    single(out, "l7gate_tunnel_reject_dropped_total", C,
        "Reject verdicts on tunnelled flows: dropped, no RST or ICMP error injected.", d(s.reject_tunnelled));
}

// Application protocols, categories and risks, and nDPI's pools.
void add_l7_metrics(std::vector<MetricFamily>& out, const StatsSnapshot& s, const NdpiNames& names) {
    const auto C = MetricType::Counter;
    const auto G = MetricType::Gauge;
    std::array<MetricFamily, 4> l7_families = families({
        {"l7gate_l7_packets_total", C,
         "Packets of classified flows by nDPI protocol (app protocol, else master), counted from the end of classification with the packets seen before it."},
        {"l7gate_l7_bytes_total", C,
         "Bytes (whole frames) of classified flows by nDPI protocol, counted as l7gate_l7_packets_total."},
        {"l7gate_l7_flows_total", C,
         "Flows whose classification ended, by nDPI protocol (app protocol, else master; Unknown when nDPI gave up)."},
        {"l7gate_category_bytes_total", C,
         "Bytes of classified flows by the nDPI category of each flow (counted as l7gate_l7_bytes_total)."},
    });
    auto& [l7p, l7b, l7f, cat] = l7_families;
    for (const ProtoStats& p : s.protocols) {
        const Labels l{{"protocol", names.protocol(p.id)}};
        add(l7p, l, d(p.packets));
        add(l7b, l, d(p.bytes));
        add(l7f, l, d(p.flows));
    }
    for (unsigned c = 0; c < 256; ++c) {
        if (s.category_bytes[c] != 0) {
            add(cat, {{"category", names.category(c)}}, d(s.category_bytes[c]));
        }
    }
    append(out, l7_families, true);
    MetricFamily risks = family("l7gate_risk_flows_total", C,
        "Flows whose classification ended with this nDPI flow risk set (a flow can carry several risks).");
    for (unsigned bit = 1; bit < 64; ++bit) {
        // Every risk nDPI knows, zeros included, so a first occurrence shows in rate().
        if (bit < NDPI_MAX_RISK || s.risk_flows[bit] != 0) {
            const char* t = NdpiNames::risk(bit);
            add(risks, {{"risk", t != nullptr && t[0] != '\0' ? std::string(t) : "risk " + u(bit)}},
                d(s.risk_flows[bit]));
        }
    }
    append(out, risks, true);

    single(out, "l7gate_classified_flows_total", C,
        "Flows whose nDPI classification ended (protocol found, or given up with guessing).", d(s.classified));
    single(out, "l7gate_ndpi_packets_total", C,
        "Packets handed to nDPI (ndpi_detection_process_packet calls).", d(s.ndpi_packets));
    single(out, "l7gate_dpi_pool_full_total", C,
        "Flows never classified because the worker's nDPI flow-state pool was empty (--dpi-flows).", d(s.dpi_pool_full));
    single(out, "l7gate_ndpi_arena_full_total", C,
        "Flows whose classification was given up because the worker's nDPI arena (sized from --dpi-flows) "
        "ran low.", d(s.ndpi_arena_full));
    single(out, "l7gate_ndpi_arena_refused_total", C,
        "Allocations nDPI asked for on a worker that its arena could not serve (refused, never taken from "
        "the C heap).", d(s.ndpi_arena_refused));
    single(out, "l7gate_meta_pool_full_total", C,
        "Classified flows whose hostname and TLS data could not be kept: no free metadata record (--meta-records).",
        d(s.meta_pool_full));
    single(out, "l7gate_meta_records", G,
        "Flow metadata records in use (hostname, JA3, TLS version), each shared by the flows with the same values.",
        d(s.meta_in_use));
}

// Verdicts by reason, with the action of the policy in force.
void add_verdict_metrics(std::vector<MetricFamily>& out, const StatsSnapshot& s, const ReasonRegistry& reasons,
                         const dp::PolicySnapshot* current) {
    const auto C = MetricType::Counter;
    std::map<uint16_t, const char*> action_of;
    if (current != nullptr) {
        for (const dp::Marker& m : current->markers) {
            action_of.emplace(m.reason, action_name(m));
        }
        for (const dp::CompiledPolicy& p : current->policies) {
            action_of.emplace(p.default_marker.reason, action_name(p.default_marker));
        }
        action_of.emplace(current->pending_reason, "pass");  // pending flows pass meanwhile
        action_of.emplace(current->unnamed_reason, "drop");  // --on-unnamed-first-flight drop
    }
    MetricFamily verdicts = family("l7gate_verdicts_total", C,
        "Flows given a verdict, by reason (policy/kind/key; a flow is counted again when its verdict changes). The 50 reasons with most flows have their own series, reason=\"other\" sums the rest.");
    std::vector<StatsSnapshot::ReasonStats> by_flows;
    for (const auto& r : reason_totals(s, reasons)) {
        if (r.flows != 0) {
            by_flows.push_back(r);
        }
    }
    std::sort(by_flows.begin(), by_flows.end(), [](const auto& a, const auto& b) {
        return a.flows != b.flows ? a.flows > b.flows : a.id < b.id;
    });
    uint64_t other = 0;
    size_t own = 0;
    for (const auto& r : by_flows) {
        if (r.id == dp::kReasonOther || own >= MetricsExporter::kMaxVerdictReasons) {
            other += r.flows;
            continue;
        }
        ++own;
        const auto it = action_of.find(r.id);
        add(verdicts, {{"action", it != action_of.end() ? it->second : ""}, {"reason", reasons.name(r.id)}},
            d(r.flows));
    }
    add(verdicts, {{"action", ""}, {"reason", "other"}}, d(other));
    append(out, verdicts, true);
    // Monitor mode (README "Monitor mode"): which policies enforce, and what was forwarded
    // although its verdict said otherwise.
    MetricFamily enforced = family("l7gate_policy_enforced", MetricType::Gauge,
        "1 if the policy in force enforces its verdicts, 0 in monitor mode (`enforce: false` on its chain, or --mode monitor): its verdicts are counted and logged but not applied.");
    if (current != nullptr) {
        for (const dp::CompiledPolicy& p : current->policies) {
            add(enforced, {{"policy", p.name}}, p.enforce ? 1.0 : 0.0);
        }
    }
    append(out, enforced, false);
    std::array<MetricFamily, 2> monitor = families({
        {"l7gate_monitor_forwarded_packets_total", C,
         "Packets forwarded in monitor mode although their flow's verdict said otherwise, by that verdict: drop, reject, block (a host in the auto-block set): would-drop; shape, police: would-shape."},
        {"l7gate_monitor_forwarded_bytes_total", C,
         "Bytes of l7gate_monitor_forwarded_packets_total, by verdict."},
    });
    for (size_t k = 0; k < static_cast<size_t>(dp::Monitored::Count); ++k) {
        add(monitor[0], {{"verdict", dp::kMonitoredNames[k]}}, d(s.monitor_forwarded_packets[k]));
        add(monitor[1], {{"verdict", dp::kMonitoredNames[k]}}, d(s.monitor_forwarded_bytes[k]));
    }
    append(out, monitor, false);
}

// The policy in force and its reloads.
void add_policy_metrics(std::vector<MetricFamily>& out, const StatsSnapshot& s, const ReasonRegistry& reasons,
                        const PolicyStatus& policy) {
    const auto C = MetricType::Counter;
    const auto G = MetricType::Gauge;
    single(out, "l7gate_policy_generation", G,
        "Generation of the policy in force: 1 for the policy loaded at start, +1 per successful reload; 0 without a policy.", d(policy.generation));
    MetricFamily reloads = family("l7gate_policy_reloads_total", C,
        "Policy reload attempts by result: success (compiled and published), failure (the previous policy stays in force); unacknowledged counts successes that some worker had not applied 2 s later.");
    add(reloads, {{"result", "success"}}, d(policy.reloads_ok));
    add(reloads, {{"result", "failure"}}, d(policy.reloads_failed));
    add(reloads, {{"result", "unacknowledged"}}, d(policy.reloads_unacknowledged));
    append(out, reloads, false);
    single(out, "l7gate_policy_applied_generation", G,
        "Lowest policy generation every worker acknowledged (loaded at the top of its loop); below l7gate_policy_generation while a reload is not applied everywhere (a stalled worker).",
        d(policy.applied_generation));
    MetricFamily worker_gen = family("l7gate_worker_policy_generation", G,
        "Policy generation each worker acknowledged: the snapshot it loaded last (at the top of its loop).");
    for (const WorkerStats& w : s.workers) {
        add(worker_gen, {{"worker", u(w.queue)}}, d(w.policy_generation));
    }
    append(out, worker_gen, false);
    single(out, "l7gate_policy_retired_pending", G,
        "Replaced policy snapshots not yet freed: some worker has not passed a quiescent state since (a stalled worker keeps every later one).",
        d(policy.retired_pending));
    single(out, "l7gate_reason_names", G,
        "Verdict reason names in use (policy/kind/key), of 4,095: names no policy, flow or record in flight holds any more are released and their ids reused; only when 4,095 are in use at once is a new rule's reason counted and logged as \"other\".",
        d(reasons.size()));
    single(out, "l7gate_reason_names_reclaimed_total", C,
        "Verdict reason names released because no live policy snapshot, flow or flow record in flight used them any more; their ids serve new names, whose counters start at 0.",
        d(reasons.reclaimed()));
    single(out, "l7gate_policy_last_reload_timestamp_seconds", G,
        "Unix time of the last policy load attempt (the load at start included); 0 if none.", policy.last_reload_unix);
    single(out, "l7gate_policy_last_reload_success", G,
        "1 if the last policy load attempt succeeded, 0 if it failed (the previous policy stays in force).", policy.last_reload_success ? 1.0 : 0.0);
}

// Shapers and policers, first-flight reassembly, the shaper backlog.
void add_shaper_metrics(std::vector<MetricFamily>& out, const StatsSnapshot& s, const PolicyStatus& policy) {
    const auto C = MetricType::Counter;
    const auto G = MetricType::Gauge;
    MetricFamily shaper = family("l7gate_shaper_rate_bits", G,
        "Configured rate of each shaper of the policy in force, in bits per second.");
    for (size_t i = 0; i < std::min(policy.shaper_names.size(), policy.shaper_rate_bps.size()); ++i) {
        if (i < policy.shaper_defined.size() && policy.shaper_defined[i] == 0) {
            continue;  // removed by a reload: no configured rate
        }
        add(shaper, {{"shaper", policy.shaper_names[i]}}, d(policy.shaper_rate_bps[i]));
    }
    append(out, shaper, true);
    std::array<MetricFamily, 4> shaper_families = families({
        {"l7gate_shaper_packets_total", C,
         "Packets of shape:/police: flows by shaper and outcome: sent (at once), delayed (sent after "
         "waiting in the queue), dropped (queue full, max_delay exceeded, or out of profile)."},
        {"l7gate_shaper_bytes_total", C,
         "Bytes that left through each shaper (sent at once or after waiting)."},
        {"l7gate_shaper_queue_packets", G,
         "Packets waiting in each shaper's queues right now, all workers."},
        {"l7gate_shaper_drops_total", C,
         "Packets each shaper dropped: queue full, waited beyond max_delay, or out of profile (police:)."},
    });
    auto& [shaped, shaped_bytes, shaper_queue, shaper_drops] = shaper_families;
    for (size_t i = 0; i < dp::kShaperCounters; ++i) {
        const StatsSnapshot::ShaperStats& h = s.shapers[i];
        if (i >= policy.shaper_names.size() && h.sent + h.delayed + h.dropped == 0) {
            continue;
        }
        const std::string name = i < policy.shaper_names.size() ? policy.shaper_names[i] : std::to_string(i);
        add(shaped, {{"shaper", name}, {"outcome", "sent"}}, d(h.sent));
        add(shaped, {{"shaper", name}, {"outcome", "delayed"}}, d(h.delayed));
        add(shaped, {{"shaper", name}, {"outcome", "dropped"}}, d(h.dropped));
        add(shaped_bytes, {{"shaper", name}}, d(h.bytes));
        add(shaper_queue, {{"shaper", name}}, d(h.queued));
        add(shaper_drops, {{"shaper", name}}, d(h.dropped));
    }
    append(out, shaper_families, true);
    MetricFamily ff = family("l7gate_first_flight_total", C,
        "TCP first flights reassembled before nDPI saw them, by how they ended (README: Evasion); unnamed_pass/unnamed_drop count, among those that ended on a bound, the ones without a hostname and what --on-unnamed-first-flight did.");
    for (unsigned k = 0; k < dp::kFirstFlightOutcomes; ++k) {
        add(ff, {{"outcome", sv(dp::kFirstFlightOutcomeNames[k])}}, d(s.first_flight[k]));
    }
    append(out, ff, true);
    single(out, "l7gate_first_flight_held_packets", G,
        "Client segments held right now until their flow's first flight is decided.", d(s.first_flight_held));
    single(out, "l7gate_shaper_backlog_packets", G,
        "Packets waiting in shaper queues right now (received, not yet sent or dropped).", d(s.shaper_backlog));
    single(out, "l7gate_shaper_backlog_cap_packets", G,
        "Packets the shaper queues may hold at most, all workers (from the mbuf pool; beyond it: "
        "drop reason shaper_backlog).", d(s.shaper_backlog_cap));
    single(out, "l7gate_shaper_host_buckets_full_total", C,
        "Refills of a per-host shaper queue that found no shared bucket free for its host (the "
        "packets wait; kHostBuckets = 16,384 buckets, 8 probed per host).", d(s.shaper_host_buckets_full));
}

// The watchdog and fail-open path; host scores and blocks.
void add_host_metrics(std::vector<MetricFamily>& out, const StatsSnapshot& s) {
    const auto C = MetricType::Counter;
    const auto G = MetricType::Gauge;
    // -- watchdog -------------------------------------------------------------------------------
    single(out, "l7gate_worker_stalls_total", C,
        "Times the watchdog found a worker whose loop had not moved for --watchdog-ms.", d(s.stalls));
    single(out, "l7gate_failopen_takeovers_total", C,
        "Times the fail-open path took a stalled worker's queues over (--fail-open).", d(s.takeovers));
    single(out, "l7gate_failopen_packets_total", C,
        "Packets the fail-open path forwarded uninspected while a worker was stalled.", d(s.standby_tx_packets));

    single(out, "l7gate_blocked_hosts", G,
        "Hosts blocked right now by hosts.auto_block (their windowed risk score reached the threshold).",
        d(s.blocked_hosts));
    single(out, "l7gate_host_blocks_total", C, "Times a host was blocked by hosts.auto_block.",
        d(s.host_blocks_total));
    single(out, "l7gate_host_score_events_total", C,
        "Host risk-score events the workers queued for the control thread (hosts.auto_block).", d(s.host_score_events));
    single(out, "l7gate_host_score_events_lost_total", C,
        "Host risk-score events a worker could not queue because its ring was full (the control thread fell behind).",
        d(s.host_score_events_lost));
    single(out, "l7gate_host_score_backlog", G,
        "Host risk-score events waiting in the workers' rings for the control thread.", d(s.host_score_backlog));
    single(out, "l7gate_blocked_sets_retired_pending", G,
        "Replaced blocked-host sets not yet freed: some worker has not passed a quiescent state since.",
        d(s.blocked_sets_retired_pending));
    MetricFamily hscore = family("l7gate_host_score", G,
        "Risk score of the top hosts over the auto_block window: the nDPI risk score of their classified flows, their client or server part.");
    for (const auto& h : s.top_hosts) {
        add(hscore, {{"host", h.host}}, d(h.score));
    }
    append(out, hscore, true);
}

// The flow-record stream.
void add_flow_log_metrics(std::vector<MetricFamily>& out, const StatsSnapshot& s) {
    const auto C = MetricType::Counter;
    const auto G = MetricType::Gauge;
    single(out, "l7gate_flow_log_records_total", C,
        "Flow records the workers handed to the flow log (--flow-log).", d(s.flow_log_records));
    single(out, "l7gate_flow_log_lost_total", C,
        "Flow records lost because a worker's flow-log ring was full.", d(s.flow_log_lost));
    // The record stream's sinks (record_stream.hpp): per sink, written + lost by every cause +
    // queued + the rings' backlog = flow records the workers produced.
    if (!s.record_sinks.empty()) {
        std::array<MetricFamily, 5> rec = families({
            {"l7gate_flow_records_written_total", C,
             "Flow records a sink wrote out in full (sink kafka: acked by the broker)."},
            {"l7gate_flow_records_lost_total", C,
             "Flow records a sink never wrote, by cause: ring_full (the worker's ring was full: the "
             "same for every sink), sink_full (the sink's buffer was full: a slow reader), write_error "
             "(a line cut by a failed write), shutdown (still buffered when the exit bound passed). "
             "Sink kafka: sink_full is librdkafka's queue full, write_error a failed delivery."},
            {"l7gate_flow_records_queued", G,
             "Flow records a sink holds, formatted, not yet written (sink kafka: produced, not yet acked)."},
            {"l7gate_flow_records_reopens_total", C,
             "Times a log was reopened (SIGUSR1 or the prompt's reopen logs: log rotation)."},
            {"l7gate_flow_records_open_failures_total", C,
             "Failed attempts to open a log (a FIFO without a reader is opened again every 100 ms)."},
        });
        auto& [written, lost, queued, reopens, open_failures] = rec;
        for (const StatsSnapshot::RecordSinkStats& k : s.record_sinks) {
            const Labels l{{"sink", k.name}};
            if (k.records) {
                add(written, l, d(k.written));
                add(lost, {{"sink", k.name}, {"cause", "ring_full"}}, d(s.flow_log_lost));
                add(lost, {{"sink", k.name}, {"cause", "sink_full"}}, d(k.sink_full));
                add(lost, {{"sink", k.name}, {"cause", "write_error"}}, d(k.write_error));
                add(lost, {{"sink", k.name}, {"cause", "shutdown"}}, d(k.shutdown));
                add(queued, l, d(k.queued));
            }
            add(reopens, l, d(k.reopens));
            add(open_failures, l, d(k.open_failures));
        }
        append(out, rec, false);
        single(out, "l7gate_flow_records_backlog", G,
            "Flow records waiting in the workers' rings for the control thread.", d(s.record_backlog));
        MetricFamily skipped = family("l7gate_flow_records_skipped_total", C,
            "Interim records of long flows (--ipfix-active-timeout) a sink does not take (the flow "
            "log writes one record per flow): neither written nor lost.");
        for (const StatsSnapshot::RecordSinkStats& k : s.record_sinks) {
            if (k.records) {
                add(skipped, {{"sink", k.name}}, d(k.skipped));
            }
        }
        append(out, skipped, false);
        MetricFamily ev = family("l7gate_host_events_lost_total", C,
            "Host block/release event lines a log could not take or write (buffer full, cut, exit bound).");
        for (const StatsSnapshot::RecordSinkStats& k : s.record_sinks) {
            add(ev, {{"sink", k.name}}, d(k.events_lost));
        }
        append(out, ev, false);
    }
}

// The control services: time, backlog, overruns.
void add_service_metrics(std::vector<MetricFamily>& out, const StatsSnapshot& s) {
    const auto C = MetricType::Counter;
    const auto G = MetricType::Gauge;
    std::array<MetricFamily, 4> service_families = families({
        {"l7gate_control_service_seconds_total", C,
         "Time the control thread spent in each service (README: Control services)."},
        {"l7gate_control_service_backlog", G,
         "Work a control service left queued after its last run (records, score events; 0 for services without a queue)."},
        {"l7gate_control_tick_overruns_total", C,
         "Runs of a control service that took longer than its time budget."},
        {"l7gate_control_service_max_seconds", G,
         "Longest single run of each control service since start."},
    });
    auto& [svc_s, svc_backlog, svc_over, svc_max] = service_families;
    for (const ServiceStats& st : s.services) {
        const Labels l{{"service", st.name}};
        add(svc_s, l, st.seconds_total);
        add(svc_backlog, l, d(st.backlog));
        add(svc_over, l, d(st.overruns));
        add(svc_max, l, st.max_s);
    }
    append(out, service_families, true);
}

} // namespace

void MetricsExporter::add_worker_metrics(std::vector<MetricFamily>& out, const StatsSnapshot& s, double now,
                                         double tsc_hz) {
    const auto G = MetricType::Gauge;
    std::array<MetricFamily, 2> worker_families = families({
        {"l7gate_worker_cycles_per_packet", G,
         "TSC cycles a worker spent per packet received since start (end of RX burst to end of TX burst), as cycles_per_packet in --stats-json."},
        {"l7gate_worker_busy_ratio", G,
         "Share of wall time a worker spent on non-empty bursts over the last update interval (1 s): 0 idle, 1 saturated."},
    });
    auto& [cpp, busy] = worker_families;
    const bool have_interval = have_prev_ && prev_busy_.size() == s.workers.size() && now > prev_t_ && tsc_hz > 0;
    for (size_t i = 0; i < s.workers.size(); ++i) {
        const WorkerStats& w = s.workers[i];
        const Labels l{{"worker", u(w.queue)}};
        add(cpp, l, w.rx_packets == 0 ? 0.0 : d(w.busy_cycles) / d(w.rx_packets));
        if (have_interval) {
            const uint64_t delta = w.busy_cycles >= prev_busy_[i] ? w.busy_cycles - prev_busy_[i] : 0;
            add(busy, l, d(delta) / ((now - prev_t_) * tsc_hz));
        }
    }
    append(out, worker_families, false);
    prev_busy_.resize(s.workers.size());
    for (size_t i = 0; i < s.workers.size(); ++i) {
        prev_busy_[i] = s.workers[i].busy_cycles;
    }
    prev_t_ = now;
    have_prev_ = true;
}

void MetricsExporter::update_at(double now, const StatsSnapshot& s, const NdpiNames& names,
                                const ReasonRegistry& reasons, const PolicyStatus& policy, double tsc_hz,
                                const dp::PolicySnapshot* current) {
    std::vector<MetricFamily> out;
    out.reserve(80);
    add_port_metrics(out, s);
    add_drop_metrics(out, s);
    add_flow_metrics(out, s);
    add_l7_metrics(out, s, names);
    add_verdict_metrics(out, s, reasons, current);
    add_policy_metrics(out, s, reasons, policy);
    add_shaper_metrics(out, s, policy);
    add_host_metrics(out, s);
    add_worker_metrics(out, s, now, tsc_hz);
    add_flow_log_metrics(out, s);
    add_service_metrics(out, s);
    store_->set(out);
}

} // namespace l7gate::ctl
