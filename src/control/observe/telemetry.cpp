#include "control/observe/telemetry.hpp"

#include <arpa/inet.h>

#include <cstdlib>
#include <mutex>
#include <type_traits>

#include <rte_telemetry.h>

#include "control/base/ndpi_names.hpp"
#include "control/observe/stats_report.hpp"
#include "control/observe/worker_queries.hpp"
#include "dataplane/worker.hpp"

namespace l7gate::ctl {

namespace {

// Held by every callback for its whole run, by telemetry_detach() and by the status setter.
// A std::mutex has no destructor to run at exit: a callback arriving during static
// destruction still finds it usable, and g_ctx null.
std::mutex g_mutex;
static_assert(std::is_trivially_destructible_v<std::mutex>);
const TelemetryContext* g_ctx = nullptr;  // null: not registered yet, or detached
ReloadStatus g_status;                    // read only while g_ctx is set

// A callback's answer when g_ctx is null (DPDK sends the client null): it touches nothing else.
constexpr int kDetached = -1;

int cmd_stats(const char*, const char*, rte_tel_data* d) {
    std::lock_guard<std::mutex> g(g_mutex);
    if (g_ctx == nullptr) {
        return kDetached;
    }
    const StatsSnapshot s = collect_stats(g_ctx->ports, g_ctx->workers, false);
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_u64(d, "rx_packets", s.rx_packets);
    rte_tel_data_add_dict_u64(d, "tx_packets", s.tx_packets);
    rte_tel_data_add_dict_u64(d, "dropped", s.dropped);
    rte_tel_data_add_dict_u64(d, "rx_bytes", s.rx_bytes);
    rte_tel_data_add_dict_u64(d, "tx_bytes", s.tx_bytes);
    rte_tel_data_add_dict_u64(d, "flows_active", s.flows_active);
    rte_tel_data_add_dict_u64(d, "flows_created", s.flows_created);
    rte_tel_data_add_dict_u64(d, "classified", s.classified);
    for (size_t r = 0; r < dp::kDropReasonCount; ++r) {
        if (s.drops[r] != 0) {
            const std::string k = "drop_" + std::string(dp::kDropReasons[r].name);
            rte_tel_data_add_dict_u64(d, k.c_str(), s.drops[r]);
        }
    }
    for (const PortStats& p : s.ports) {
        const std::string k = "port" + std::to_string(p.port);
        rte_tel_data_add_dict_u64(d, (k + "_rx_packets").c_str(), p.total.rx_packets);
        rte_tel_data_add_dict_u64(d, (k + "_tx_packets").c_str(), p.total.tx_packets);
    }
    return 0;
}

int cmd_flows(const char*, const char*, rte_tel_data* d) {
    std::lock_guard<std::mutex> g(g_mutex);
    if (g_ctx == nullptr) {
        return kDetached;
    }
    const StatsSnapshot s = collect_stats(g_ctx->ports, g_ctx->workers, false);
    rte_tel_data_start_dict(d);
    for (const WorkerStats& w : s.workers) {
        const std::string k = "worker" + std::to_string(w.queue) + "_active";
        rte_tel_data_add_dict_u64(d, k.c_str(), w.flows_active);
    }
    rte_tel_data_add_dict_u64(d, "created", s.flows_created);
    rte_tel_data_add_dict_u64(d, "expired", s.flows_expired);
    rte_tel_data_add_dict_u64(d, "table_full", s.table_full);
    rte_tel_data_add_dict_u64(d, "bucket_full", s.bucket_full);
    rte_tel_data_add_dict_u64(d, "asymmetric", s.flows_asymmetric);
    size_t shown = 0;
    for (const ProtoStats& p : s.protocols) {
        if (++shown > 10) {
            break;
        }
        const std::string k = "proto_" + g_ctx->names->protocol(p.id) + "_flows";
        rte_tel_data_add_dict_u64(d, k.c_str(), p.flows);
    }
    return 0;
}

int cmd_policy(const char*, const char*, rte_tel_data* d) {
    std::lock_guard<std::mutex> g(g_mutex);
    if (g_ctx == nullptr) {
        return kDetached;
    }
    rte_tel_data_start_dict(d);
    const std::string& source = g_ctx->policy_file;
    rte_tel_data_add_dict_string(d, "source", !source.empty() ? source.c_str() : "(none: pass all)");
    rte_tel_data_add_dict_u64(d, "generation", g_status.generation);
    rte_tel_data_add_dict_u64(d, "applied_generation", g_status.applied_generation);
    rte_tel_data_add_dict_u64(d, "reloads_unacknowledged", g_status.reloads_unacknowledged);
    rte_tel_data_add_dict_u64(d, "reloads_ok", g_status.reloads_ok);
    rte_tel_data_add_dict_u64(d, "reloads_failed", g_status.reloads_failed);
    rte_tel_data_add_dict_int(d, "last_reload_success", g_status.last_reload_success ? 1 : 0);
    rte_tel_data_add_dict_string(d, "last_error", g_status.last_error.substr(0, 120).c_str());
    return 0;
}

std::string endpoint(const uint8_t* a, uint8_t v, uint16_t port) {
    char b[INET6_ADDRSTRLEN];
    inet_ntop(v == 4 ? AF_INET : AF_INET6, a, b, sizeof(b));
    return (v == 6 ? "[" + std::string(b) + "]" : std::string(b)) + ":" + std::to_string(port);
}

std::string worker_list(const std::vector<unsigned>& ws) {
    std::string l;
    for (unsigned w : ws) {
        l += (l.empty() ? "" : ",") + std::to_string(w);
    }
    return l;
}

int cmd_top_flows(const char*, const char* params, rte_tel_data* d) {
    unsigned n = 10;
    if (params != nullptr && *params != '\0') {
        char* end = nullptr;
        const unsigned long v = std::strtoul(params, &end, 10);
        if (*end != '\0' || v == 0 || v > dp::kTopFlowsMax) {
            return -1;
        }
        n = static_cast<unsigned>(v);
    }
    std::shared_ptr<QueryInbox> inbox;
    std::chrono::milliseconds wait{};
    {
        std::lock_guard<std::mutex> g(g_mutex);
        if (g_ctx == nullptr || g_ctx->queries == nullptr) {
            return kDetached;
        }
        inbox = g_ctx->queries;
        wait = g_ctx->query_wait;
    }
    // Blocks this telemetry thread only; the mutex is free meanwhile (detaching never waits
    // for a worker's answer).
    const TopFlowsAnswer a = inbox->ask(n, wait);
    std::lock_guard<std::mutex> g(g_mutex);
    if (g_ctx == nullptr) {
        return kDetached;
    }
    rte_tel_data_start_dict(d);
    if (a.stopping || a.no_control) {
        rte_tel_data_add_dict_string(d, "error", a.stopping ? "l7gate is stopping" : "no answer from the control thread");
        return 0;
    }
    rte_tel_data_add_dict_string(d, "timed_out", worker_list(a.timed_out).c_str());
    rte_tel_data_add_dict_string(d, "busy", worker_list(a.busy).c_str());
    rte_tel_data_add_dict_int(d, "partial", a.timed_out.empty() && a.busy.empty() ? 0 : 1);
    rte_tel_data* flows = rte_tel_data_alloc();
    if (flows == nullptr) {
        return -1;
    }
    rte_tel_data_start_array(flows, RTE_TEL_STRING_VAL);
    for (const dp::FlowSummary& f : a.flows) {
        const unsigned c = f.client_slot & 1u;
        const unsigned id = f.app_proto != 0 ? f.app_proto : f.master_proto;
        // "<proto> <client> > <server> <l7 protocol> <bytes>" (at most RTE_TEL_MAX_STRING_LEN).
        const std::string line = std::string(f.key.proto == 6 ? "TCP " : f.key.proto == 17 ? "UDP " : "IP ") +
                                 endpoint(f.key.addr[c], f.key.ip_version, f.key.port[c]) + " > " +
                                 endpoint(f.key.addr[c ^ 1], f.key.ip_version, f.key.port[c ^ 1]) + " " +
                                 g_ctx->names->protocol(id) + " " + std::to_string(f.bytes);
        rte_tel_data_add_array_string(flows, line.substr(0, RTE_TEL_MAX_STRING_LEN - 1).c_str());
    }
    rte_tel_data_add_dict_container(d, "flows", flows, 0);
    return 0;
}

} // namespace

std::string telemetry_register(const TelemetryContext& ctx) {
    {
        std::lock_guard<std::mutex> g(g_mutex);
        g_ctx = &ctx;
    }
    if (rte_telemetry_register_cmd("/l7gate/stats", cmd_stats, "l7gate packet, drop and flow counters") != 0 ||
        rte_telemetry_register_cmd("/l7gate/flows", cmd_flows, "l7gate flow tables and top protocols") != 0 ||
        rte_telemetry_register_cmd("/l7gate/policy", cmd_policy, "l7gate policy source, generation, reloads") != 0 ||
        rte_telemetry_register_cmd("/l7gate/top_flows", cmd_top_flows,
                                   "l7gate largest active flows. Parameters: int N (1-100, default 10)") != 0) {
        return "cannot register the telemetry commands";
    }
    return {};
}

void telemetry_detach() {
    std::lock_guard<std::mutex> g(g_mutex);
    g_ctx = nullptr;
}

void telemetry_set_policy_status(const ReloadStatus& s) {
    std::lock_guard<std::mutex> g(g_mutex);
    if (g_ctx != nullptr) {
        g_status = s;
    }
}

} // namespace l7gate::ctl
