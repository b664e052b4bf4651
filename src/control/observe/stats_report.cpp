#include "control/observe/stats_report.hpp"

#include <algorithm>
#include <cinttypes>
#include <sstream>

#include <rte_ethdev.h>
#include <rte_mempool.h>

#include "control/base/json.hpp"
#include "control/hosts/host_scores.hpp"
#include "control/base/ndpi_names.hpp"
#include "control/policy/compiler.hpp"
#include "control/ops/watchdog.hpp"
#include "dataplane/port.hpp"
#include "dataplane/worker.hpp"

namespace l7gate::ctl {

namespace {

// The mbuf pools' fill (every pool of the process, not only l7gate's).
void fold_mempools(StatsSnapshot& s) {
    rte_mempool_walk(
        [](rte_mempool* mp, void* arg) {
            StatsSnapshot::MempoolStats m;
            m.name = mp->name;
            m.size = mp->size;
            m.available = rte_mempool_avail_count(mp);
            m.in_use = rte_mempool_in_use_count(mp);
            static_cast<StatsSnapshot*>(arg)->mempools.push_back(m);
        },
        &s);
}

// Per port and queue: the workers' and the standby path's packets; the PMD's own counters.
void fold_ports(StatsSnapshot& s, const std::vector<uint16_t>& ports, const std::vector<const dp::Worker*>& workers,
                bool with_pmd, const Watchdog* watchdog) {
    for (uint16_t p : ports) {
        PortStats ps;
        ps.port = p;
        ps.driver = with_pmd ? dp::port_driver(p) : "";
        ps.queues.resize(workers.size());
        for (size_t w = 0; w < workers.size(); ++w) {
            const dp::QueueCounters& qc = workers[w]->counters().port[p];
            QueueStats& q = ps.queues[w];
            q.rx_packets = qc.rx_packets.get();
            q.rx_bytes = qc.rx_bytes.get();
            q.tx_packets = qc.tx_packets.get();
            q.tx_bytes = qc.tx_bytes.get();
            ps.total.rx_packets += q.rx_packets;
            ps.total.rx_bytes += q.rx_bytes;
            ps.total.tx_packets += q.tx_packets;
            ps.total.tx_bytes += q.tx_bytes;
        }
        if (watchdog != nullptr) {
            const dp::QueueCounters& sc = watchdog->standby().port[p];
            ps.total.rx_packets += sc.rx_packets.get();
            ps.total.rx_bytes += sc.rx_bytes.get();
            ps.total.tx_packets += sc.tx_packets.get();
            ps.total.tx_bytes += sc.tx_bytes.get();
            s.standby_rx_packets += sc.rx_packets.get();
            s.standby_tx_packets += sc.tx_packets.get();
        }
        if (with_pmd) {
            rte_eth_stats es{};
            if (rte_eth_stats_get(p, &es) == 0) {
                ps.imissed = es.imissed;
                ps.ierrors = es.ierrors;
                ps.rx_nombuf = es.rx_nombuf;
                ps.oerrors = es.oerrors;
                ps.pmd_rx_packets = es.ipackets;
                ps.pmd_tx_packets = es.opackets;
            }
        }
        s.rx_packets += ps.total.rx_packets;
        s.tx_packets += ps.total.tx_packets;
        s.rx_bytes += ps.total.rx_bytes;
        s.tx_bytes += ps.total.tx_bytes;
        s.ports.push_back(std::move(ps));
    }
}

// Per worker: packets, drops by reason, flow table and fragment counters.
void fold_workers(StatsSnapshot& s, const std::vector<uint16_t>& ports, const std::vector<const dp::Worker*>& workers) {
    for (const dp::Worker* w : workers) {
        const dp::WorkerCounters& c = w->counters();
        WorkerStats ws;
        ws.lcore = w->config().lcore;
        ws.queue = w->config().queue;
        ws.rx_packets = c.rx_packets.get();
        for (uint16_t p : ports) {
            ws.tx_packets += c.port[p].tx_packets.get();
        }
        for (size_t r = 0; r < dp::kDropReasonCount; ++r) {
            const uint64_t d = c.drops[r].get();
            s.drops[r] += d;
            ws.dropped += d;
            s.malformed[r] += c.malformed[r].get();
        }
        ws.bursts = c.bursts.get();
        ws.idle_polls = c.idle_polls.get();
        ws.busy_cycles = c.busy_cycles.get();
        ws.flows_active = c.flows_active.get();
        ws.policy_generation = c.policy_generation.get();
        s.non_ip += c.non_ip.get();
        for (size_t k = 0; k < dp::kUninspectedCauses; ++k) {
            s.uninspected_packets[k] += c.uninspected_packets[k].get();
            s.uninspected_bytes[k] += c.uninspected_bytes[k].get();
        }
        for (size_t k = 0; k < dp::kEncapKinds; ++k) {
            s.encap_packets[k] += c.encap_packets[k].get();
            for (size_t j = 0; j < dp::kTunSkips; ++j) {
                s.encap_skipped[k][j] += c.encap_skipped[k][j].get();
            }
        }
        s.reject_tunnelled += c.reject_tunnelled.get();
        s.flows_created += c.flows_created.get();
        s.flows_expired += c.flows_expired.get();
        s.flows_active += ws.flows_active;
        s.table_full += c.table_full.get();
        s.bucket_full += c.bucket_full.get();
        for (size_t k = 0; k < static_cast<size_t>(dp::Flowless::Count); ++k) {
            s.flowless[k] += c.flowless[k].get();
        }
        s.frag_tracked += c.frag_tracked.get();
        s.frag_matched += c.frag_matched.get();
        s.frag_table_full += c.frag_table_full.get();
        s.dropped += ws.dropped;
        s.flows_flushed += c.flows_flushed.get();
        s.flows_reused += c.flows_reused.get();
        s.flows_asymmetric += c.flows_asymmetric.get();
        s.flow_log_records += c.flow_log_records.get();
        s.flow_log_lost += c.flow_log_lost.get();
        s.host_score_events += c.score_events.get();
        s.host_score_events_lost += c.score_events_lost.get();
        for (size_t k = 0; k < static_cast<size_t>(dp::Stage::Count); ++k) {
            s.stage_cycles[k] += c.stage_cycles[k].get();
        }
        s.workers.push_back(ws);
    }
}

// The fail-open standby path's drops and the watchdog's events.
void fold_standby(StatsSnapshot& s, const Watchdog& wd) {
    for (size_t r = 0; r < dp::kDropReasonCount; ++r) {
        const uint64_t d = wd.standby().drops[r].get();
        s.drops[r] += d;
        s.dropped += d;
        s.standby_dropped += d;
    }
    for (size_t k = 0; k < dp::kUninspectedCauses; ++k) {
        s.uninspected_packets[k] += wd.standby().uninspected_packets[k].get();
        s.uninspected_bytes[k] += wd.standby().uninspected_bytes[k].get();
    }
    s.stalls = wd.stalls();
    s.takeovers = wd.takeovers();
    s.recoveries = wd.recoveries();
}

// Policy outcomes: verdict reasons, injected packets, shaper and first-flight counters.
void fold_policy(StatsSnapshot& s, const std::vector<const dp::Worker*>& workers) {
    std::vector<StatsSnapshot::ReasonStats> reasons(dp::kMaxReasons);
    for (const dp::Worker* w : workers) {
        const dp::WorkerCounters& c = w->counters();
        s.policy_evaluations += c.policy_evaluations.get();
        s.injected += c.injected.get();
        s.inject_limited += c.inject_limited.get();
        s.reject_suppressed += c.reject_suppressed.get();
        s.inject_failed += c.inject_failed.get();
        for (size_t k = 0; k < static_cast<size_t>(dp::Monitored::Count); ++k) {
            s.monitor_forwarded_packets[k] += c.monitor_forwarded_packets[k].get();
            s.monitor_forwarded_bytes[k] += c.monitor_forwarded_bytes[k].get();
        }
        s.shaper_backlog += c.shaper_backlog.get();
        s.shaper_backlog_cap += c.shaper_backlog_cap.get();
        s.shaper_host_buckets_full += c.shaper_host_buckets_full.get();
        for (unsigned k = 0; k < dp::kFirstFlightOutcomes; ++k) {
            s.first_flight[k] += c.first_flight[k].get();
        }
        s.first_flight_held += c.first_flight_held.get();
        for (unsigned i = 0; i < dp::kShaperCounters; ++i) {
            s.shapers[i].sent += c.shaper[i].sent.get();
            s.shapers[i].delayed += c.shaper[i].delayed.get();
            s.shapers[i].dropped += c.shaper[i].dropped.get();
            s.shapers[i].bytes += c.shaper[i].bytes.get();
            s.shapers[i].queued += c.shaper[i].queued.get();
        }
        for (unsigned r = 0; r < dp::kMaxReasons; ++r) {
            reasons[r].id = static_cast<uint16_t>(r);
            reasons[r].flows += c.reason_flows[r].get();
            reasons[r].packets += c.reason_packets[r].get();
        }
    }
    for (const auto& r : reasons) {
        if (r.flows != 0 || r.packets != 0) {
            s.reasons.push_back(r);
        }
    }
    std::sort(s.reasons.begin(), s.reasons.end(), [](const auto& a, const auto& b) {
        return a.packets != b.packets ? a.packets > b.packets : a.id < b.id;
    });
}

// nDPI: protocols, risks, categories, pools and the arena.
void fold_classifiers(StatsSnapshot& s, const std::vector<const dp::Worker*>& workers) {
    std::vector<ProtoStats> protos(dp::kMaxNdpiProtocols);
    for (const dp::Worker* w : workers) {
        const dp::ClassifierCounters& cc = w->classifier().counters();
        for (unsigned p = 0; p < dp::kMaxNdpiProtocols; ++p) {
            protos[p].id = p;
            protos[p].packets += cc.proto_packets[p].get();
            protos[p].bytes += cc.proto_bytes[p].get();
            protos[p].flows += cc.proto_flows[p].get();
        }
        for (unsigned r = 0; r < dp::kMaxRisks; ++r) {
            s.risk_flows[r] += cc.risk_flows[r].get();
        }
        for (unsigned c = 0; c < dp::kMaxCategories; ++c) {
            s.category_bytes[c] += cc.category_bytes[c].get();
        }
        s.classified += cc.classified.get();
        s.dpi_pool_full += cc.dpi_pool_full.get();
        s.dpi_reclaimed += cc.dpi_reclaimed.get();
        s.meta_pool_full += cc.meta_pool_full.get();
        s.meta_in_use += cc.meta_in_use.get();
        s.giveups += cc.giveups.get();
        s.dpi_deferred += cc.deferred.get();
        s.dpi_deferred_no_payload += cc.deferred_no_payload.get();
        s.ndpi_packets += cc.ndpi_packets.get();
        s.ndpi_cycles += cc.ndpi_cycles.get();
        s.ndpi_arena_full += cc.arena_full.get();
        s.ndpi_arena_refused += cc.arena_refused.get();
    }
    for (const ProtoStats& p : protos) {
        if (p.packets != 0 || p.flows != 0) {
            s.protocols.push_back(p);
        }
    }
    std::sort(s.protocols.begin(), s.protocols.end(),
              [](const ProtoStats& a, const ProtoStats& b) { return a.bytes != b.bytes ? a.bytes > b.bytes : a.id < b.id; });
}

} // namespace

StatsSnapshot collect_stats(const std::vector<uint16_t>& ports,
                            const std::vector<const dp::Worker*>& workers, bool with_pmd,
                            const Watchdog* watchdog) {
    StatsSnapshot s;
    if (with_pmd) {
        fold_mempools(s);
    }
    fold_ports(s, ports, workers, with_pmd, watchdog);
    fold_workers(s, ports, workers);
    if (watchdog != nullptr) {
        fold_standby(s, *watchdog);
    }
    fold_policy(s, workers);
    fold_classifiers(s, workers);
    return s;
}

void fill_host_stats(StatsSnapshot& s, const HostScores* hosts, size_t top) {
    if (hosts == nullptr) {
        return;
    }
    for (const HostInfo& h : hosts->top(top)) {
        s.top_hosts.push_back({h.host, h.score, h.blocked});
    }
    s.blocked_hosts = hosts->blocked_count();
    s.host_blocks_total = hosts->blocks_total();
    s.host_score_backlog = hosts->backlog();
    s.blocked_sets_retired_pending = hosts->retired_pending();
}

namespace {
double per(uint64_t a, uint64_t b) { return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b); }
} // namespace

std::vector<StatsSnapshot::ReasonStats> reason_totals(const StatsSnapshot& s, const ReasonRegistry& reasons) {
    std::vector<StatsSnapshot::ReasonStats> out;
    for (StatsSnapshot::ReasonStats r : s.reasons) {
        uint64_t flows = 0;
        uint64_t packets = 0;
        reasons.baseline(r.id, flows, packets);
        // Saturating: the counters may have been read before the baseline was captured.
        r.flows = r.flows > flows ? r.flows - flows : 0;
        r.packets = r.packets > packets ? r.packets - packets : 0;
        if (r.flows != 0 || r.packets != 0) {
            out.push_back(r);
        }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
        return a.packets != b.packets ? a.packets > b.packets : a.id < b.id;
    });
    return out;
}

std::string stats_json(const StatsSnapshot& s, double elapsed_s, uint64_t tsc_hz, const NdpiNames& names,
                       const ReasonRegistry& reasons) {
    std::ostringstream o;
    o.setf(std::ios::fixed);
    o.precision(3);
    auto q = [&](const QueueStats& x) {
        o << "\"rx_packets\":" << x.rx_packets << ",\"rx_bytes\":" << x.rx_bytes
          << ",\"tx_packets\":" << x.tx_packets << ",\"tx_bytes\":" << x.tx_bytes;
    };
    o << "{\"elapsed_seconds\":" << elapsed_s << ",\"tsc_hz\":" << tsc_hz << ",\"ports\":[";
    for (size_t i = 0; i < s.ports.size(); ++i) {
        const PortStats& p = s.ports[i];
        o << (i ? "," : "") << "{\"port\":" << p.port << ",\"driver\":\"" << p.driver << "\",";
        q(p.total);
        o << ",\"imissed\":" << p.imissed << ",\"ierrors\":" << p.ierrors
          << ",\"rx_nombuf\":" << p.rx_nombuf << ",\"oerrors\":" << p.oerrors
          << ",\"pmd_rx_packets\":" << p.pmd_rx_packets << ",\"pmd_tx_packets\":" << p.pmd_tx_packets << ",\"queues\":[";
        for (size_t k = 0; k < p.queues.size(); ++k) {
            o << (k ? "," : "") << "{\"queue\":" << k << ",";
            q(p.queues[k]);
            o << "}";
        }
        o << "]}";
    }
    o << "],\"drops\":{";
    for (size_t r = 0; r < dp::kDropReasonCount; ++r) {
        o << (r ? "," : "") << "\"" << dp::kDropReasons[r].name << "\":" << s.drops[r];
    }
    o << "},\"malformed\":{";
    bool first = true;
    for (size_t r = 0; r < dp::kDropReasonCount; ++r) {
        if (dp::kDropReasons[r].malformed) {
            o << (first ? "" : ",") << "\"" << dp::kDropReasons[r].name << "\":" << s.malformed[r];
            first = false;
        }
    }
    o << "},\"non_ip_packets\":" << s.non_ip << ",\"uninspected\":{";
    for (size_t k = 0; k < dp::kUninspectedCauses; ++k) {
        o << (k == 0 ? "" : ",") << '"' << dp::kUninspectedNames[k] << "\":{\"packets\":" << s.uninspected_packets[k]
          << ",\"bytes\":" << s.uninspected_bytes[k] << '}';
    }
    o << "},\"tunnels\":{\"reject_dropped\":" << s.reject_tunnelled;
    for (size_t k = 1; k < dp::kEncapKinds; ++k) {
        o << ",\"" << dp::kEncapNames[k] << "\":{\"packets\":" << s.encap_packets[k];
        for (size_t j = 1; j < dp::kTunSkips; ++j) {
            o << ",\"" << dp::kTunSkipNames[j] << "\":" << s.encap_skipped[k][j];
        }
        o << '}';
    }
    o << "},\"flows\":{\"created\":" << s.flows_created
      << ",\"expired\":" << s.flows_expired << ",\"active\":" << s.flows_active
      << ",\"table_full\":" << s.table_full << ",\"bucket_full\":" << s.bucket_full << ",\"flushed\":" << s.flows_flushed << ",\"reused\":" << s.flows_reused << ",\"asymmetric\":" << s.flows_asymmetric << ",\"flowless\":{";
    for (size_t k = 0; k < static_cast<size_t>(dp::Flowless::Count); ++k) {
        o << (k == 0 ? "" : ",") << '"' << dp::kFlowlessNames[k] << "\":" << s.flowless[k];
    }
    o << "}},\"fragments\":{\"tracked\":" << s.frag_tracked
      << ",\"matched\":" << s.frag_matched << ",\"table_full\":" << s.frag_table_full
      << "},\"first_flight\":{\"held\":" << s.first_flight_held;
    for (unsigned k = 0; k < dp::kFirstFlightOutcomes; ++k) {
        o << ",\"" << dp::kFirstFlightOutcomeNames[k] << "\":" << s.first_flight[k];
    }
    o << "},\"workers\":[";
    for (size_t i = 0; i < s.workers.size(); ++i) {
        const WorkerStats& w = s.workers[i];
        o << (i ? "," : "") << "{\"lcore\":" << w.lcore << ",\"queue\":" << w.queue
          << ",\"rx_packets\":" << w.rx_packets << ",\"tx_packets\":" << w.tx_packets
          << ",\"dropped\":" << w.dropped << ",\"bursts\":" << w.bursts
          << ",\"idle_polls\":" << w.idle_polls << ",\"busy_cycles\":" << w.busy_cycles
          << ",\"cycles_per_packet\":" << per(w.busy_cycles, w.rx_packets)
          << ",\"flows_active\":" << w.flows_active << "}";
    }
    o << "],\"protocols\":{";
    for (size_t i = 0; i < s.protocols.size(); ++i) {
        const ProtoStats& p = s.protocols[i];
        o << (i ? "," : "") << json_string(names.protocol(p.id)) << ":{\"id\":" << p.id
          << ",\"packets\":" << p.packets << ",\"bytes\":" << p.bytes << ",\"flows\":" << p.flows << "}";
    }
    o << "},\"risks\":{";
    bool firstr = true;
    for (unsigned r = 0; r < 64; ++r) {
        if (s.risk_flows[r] != 0) {
            o << (firstr ? "" : ",") << json_string(NdpiNames::risk(r)) << ":" << s.risk_flows[r];
            firstr = false;
        }
    }
    o << "},\"classification\":{\"classified\":" << s.classified << ",\"giveups\":" << s.giveups
      << ",\"dpi_pool_full\":" << s.dpi_pool_full << ",\"dpi_reclaimed\":" << s.dpi_reclaimed
      << ",\"deferred\":" << s.dpi_deferred << ",\"deferred_no_payload\":" << s.dpi_deferred_no_payload << ",\"meta_pool_full\":" << s.meta_pool_full
      << ",\"meta_records\":" << s.meta_in_use
      << ",\"ndpi_packets\":" << s.ndpi_packets
      << ",\"ndpi_cycles_per_packet\":" << per(s.ndpi_cycles, s.ndpi_packets)
      << ",\"ndpi_arena_full\":" << s.ndpi_arena_full << ",\"ndpi_arena_refused\":" << s.ndpi_arena_refused << "},\"flow_log\":{\"records\":"
      << s.flow_log_records << ",\"lost\":" << s.flow_log_lost << ",\"backlog\":" << s.record_backlog
      << ",\"sinks\":{";
    for (size_t i = 0; i < s.record_sinks.size(); ++i) {
        const StatsSnapshot::RecordSinkStats& k = s.record_sinks[i];
        o << (i ? "," : "") << json_string(k.name) << ":{\"records\":" << (k.records ? "true" : "false")
          << ",\"written\":" << k.written << ",\"lost\":{\"ring_full\":" << (k.records ? s.flow_log_lost : 0)
          << ",\"sink_full\":" << k.sink_full << ",\"write_error\":" << k.write_error
          << ",\"shutdown\":" << k.shutdown << "},\"queued\":" << k.queued << ",\"reopens\":" << k.reopens
          << ",\"open_failures\":" << k.open_failures << ",\"events_written\":" << k.events_written
          << ",\"events_lost\":" << k.events_lost << ",\"skipped\":" << k.skipped << "}";
    }
    o << "}}";
    o << ",\"verdicts\":{\"evaluations\":" << s.policy_evaluations << ",\"reasons\":{";
    const std::vector<StatsSnapshot::ReasonStats> totals = reason_totals(s, reasons);
    for (size_t i = 0; i < totals.size(); ++i) {
        o << (i ? "," : "") << json_string(reasons.name(totals[i].id)) << ":{\"flows\":" << totals[i].flows
          << ",\"packets\":" << totals[i].packets << "}";
    }
    o << "}}";
    o << ",\"hosts\":{\"blocked\":" << s.blocked_hosts << ",\"blocks_total\":" << s.host_blocks_total
      << ",\"top\":[";
    for (size_t i = 0; i < s.top_hosts.size(); ++i) {
        o << (i ? "," : "") << "{\"host\":" << json_string(s.top_hosts[i].host) << ",\"score\":"
          << s.top_hosts[i].score << ",\"blocked\":" << (s.top_hosts[i].blocked ? "true" : "false") << "}";
    }
    o << "]}";
#if L7G_PROFILING
    o << ",\"stage_cycles_per_packet\":{";
    for (size_t k = 0; k < static_cast<size_t>(dp::Stage::Count); ++k) {
        o << (k ? "," : "") << "\"" << dp::kStageNames[k] << "\":" << per(s.stage_cycles[k], s.rx_packets);
    }
    o << "}";
#endif
    o << ",\"shapers\":{\"backlog\":" << s.shaper_backlog << ",\"backlog_cap\":" << s.shaper_backlog_cap
      << ",\"host_buckets_full\":" << s.shaper_host_buckets_full << ",\"by_shaper\":{";
    for (size_t i = 0, n = 0; i < dp::kShaperCounters; ++i) {
        const StatsSnapshot::ShaperStats& h = s.shapers[i];
        if (h.sent + h.delayed + h.dropped == 0 && i >= s.shaper_names.size()) {
            continue;
        }
        o << (n++ ? "," : "") << json_string(i < s.shaper_names.size() ? s.shaper_names[i] : std::to_string(i))
          << ":{\"sent\":" << h.sent << ",\"delayed\":" << h.delayed << ",\"dropped\":" << h.dropped
          << ",\"bytes\":" << h.bytes << ",\"queued\":" << h.queued << "}";
    }
    o << "}}";
    o << ",\"mempools\":[";
    for (size_t i = 0; i < s.mempools.size(); ++i) {
        const StatsSnapshot::MempoolStats& m = s.mempools[i];
        o << (i ? "," : "") << "{\"name\":" << json_string(m.name) << ",\"size\":" << m.size
          << ",\"available\":" << m.available << ",\"in_use\":" << m.in_use << "}";
    }
    o << "]";
    o << ",\"injected\":{\"sent\":" << s.injected << ",\"limited\":" << s.inject_limited
      << ",\"failed\":" << s.inject_failed << ",\"suppressed\":" << s.reject_suppressed << "}";
    o << ",\"monitor_forwarded\":{";
    for (size_t k = 0; k < static_cast<size_t>(dp::Monitored::Count); ++k) {
        o << (k == 0 ? "" : ",") << '"' << dp::kMonitoredNames[k] << "\":{\"packets\":" << s.monitor_forwarded_packets[k]
          << ",\"bytes\":" << s.monitor_forwarded_bytes[k] << "}";
    }
    o << "}";
    if (s.has_policy) {
        o << ",\"policy\":{\"generation\":" << s.policy_generation << ",\"reloads_ok\":" << s.reloads_ok
          << ",\"reloads_failed\":" << s.reloads_failed
          << ",\"last_reload_success\":" << (s.last_reload_success ? "true" : "false") << "}";
    }
    o << ",\"watchdog\":{\"stalls\":" << s.stalls << ",\"takeovers\":" << s.takeovers
      << ",\"recoveries\":" << s.recoveries << ",\"standby_rx_packets\":" << s.standby_rx_packets
      << ",\"standby_tx_packets\":" << s.standby_tx_packets << ",\"standby_dropped\":" << s.standby_dropped << "}";
    o << ",\"totals\":{\"rx_packets\":" << s.rx_packets << ",\"tx_packets\":" << s.tx_packets
      << ",\"dropped\":" << s.dropped << ",\"rx_bytes\":" << s.rx_bytes
      << ",\"tx_bytes\":" << s.tx_bytes << "}}\n";
    return o.str();
}

void print_summary(FILE* out, const StatsSnapshot& s, double elapsed_s, uint64_t tsc_hz, const NdpiNames& names,
                   const ReasonRegistry& reasons) {
    std::fprintf(out, "\n==== l7gate summary (%.2f s) ====\n", elapsed_s);
    std::fprintf(out, "%-6s %-12s %12s %14s %12s %14s\n", "port", "driver", "rx_packets",
                 "rx_bytes", "tx_packets", "tx_bytes");
    for (const PortStats& p : s.ports) {
        std::fprintf(out, "%-6u %-12s %12" PRIu64 " %14" PRIu64 " %12" PRIu64 " %14" PRIu64 "\n",
                     p.port, p.driver.c_str(), p.total.rx_packets, p.total.rx_bytes,
                     p.total.tx_packets, p.total.tx_bytes);
    }
    std::fprintf(out, "\n%-6s %-6s %12s %12s %10s %12s %10s\n", "lcore", "queue", "rx_packets",
                 "tx_packets", "dropped", "flows", "cyc/pkt");
    for (const WorkerStats& w : s.workers) {
        std::fprintf(out, "%-6u %-6u %12" PRIu64 " %12" PRIu64 " %10" PRIu64 " %12" PRIu64 " %10.1f\n",
                     w.lcore, w.queue, w.rx_packets, w.tx_packets, w.dropped, w.flows_active,
                     per(w.busy_cycles, w.rx_packets));
    }
    std::fprintf(out, "\nflows: created %" PRIu64 ", expired %" PRIu64 ", flushed at exit %" PRIu64
                      ", table full %" PRIu64 ", bucket full %" PRIu64 "; non-IP frames %" PRIu64 "\n",
                 s.flows_created, s.flows_expired, s.flows_flushed, s.table_full, s.bucket_full, s.non_ip);
    if (s.table_full + s.bucket_full != 0) {
        std::fprintf(out, "packets without a flow entry:");
        for (size_t k = 0; k < static_cast<size_t>(dp::Flowless::Count); ++k) {
            std::fprintf(out, "%s %s %" PRIu64, k == 0 ? "" : ",", dp::kFlowlessNames[k], s.flowless[k]);
        }
        std::fprintf(out, "\n");
    }
    std::fprintf(out, "classification: %" PRIu64 " flows classified (%" PRIu64 " by give-up), "
                      "%" PRIu64 " without nDPI state; nDPI saw %" PRIu64 " packets at %.0f cycles each\n",
                 s.classified, s.giveups, s.dpi_pool_full, s.ndpi_packets, per(s.ndpi_cycles, s.ndpi_packets));
    for (const StatsSnapshot::RecordSinkStats& k : s.record_sinks) {
        if (k.records) {
            std::fprintf(out, "flow records (%s): produced %" PRIu64 ", written %" PRIu64 ", lost ring_full %" PRIu64
                              ", sink_full %" PRIu64 ", write_error %" PRIu64 ", shutdown %" PRIu64 "; reopened %" PRIu64
                              " times, %" PRIu64 " failed opens; %" PRIu64 " interim records not for it\n",
                         k.name.c_str(), s.flow_log_records + s.flow_log_lost, k.written, s.flow_log_lost, k.sink_full,
                         k.write_error, k.shutdown, k.reopens, k.open_failures, k.skipped);
        }
        if (k.events_written + k.events_lost != 0) {
            std::fprintf(out, "host events (%s): written %" PRIu64 ", lost %" PRIu64 "\n", k.name.c_str(),
                         k.events_written, k.events_lost);
        }
    }
    if (!s.protocols.empty()) {
        std::fprintf(out, "\n%-28s %8s %12s %14s\n", "protocol", "flows", "packets", "bytes");
        size_t shown = 0;
        for (const ProtoStats& p : s.protocols) {
            if (++shown > 25) {
                std::fprintf(out, "... %zu more in --stats-json\n", s.protocols.size() - 25);
                break;
            }
            std::fprintf(out, "%-28s %8" PRIu64 " %12" PRIu64 " %14" PRIu64 "\n", names.protocol(p.id).c_str(),
                         p.flows, p.packets, p.bytes);
        }
    }
    bool anyr = false;
    for (unsigned r = 0; r < 64; ++r) {
        if (s.risk_flows[r] != 0) {
            if (!anyr) {
                std::fprintf(out, "\n%-48s %8s\n", "risk", "flows");
                anyr = true;
            }
            std::fprintf(out, "%-48s %8" PRIu64 "\n", NdpiNames::risk(r), s.risk_flows[r]);
        }
    }
    if (s.frag_tracked + s.frag_matched + s.frag_table_full != 0) {
        std::fprintf(out, "fragments: datagrams tracked %" PRIu64 ", later fragments matched %" PRIu64
                          ", table full %" PRIu64 "\n",
                     s.frag_tracked, s.frag_matched, s.frag_table_full);
    }
    if (const auto totals = reason_totals(s, reasons); !totals.empty()) {
        std::fprintf(out, "\n%-44s %8s %12s\n", "verdict reason", "flows", "packets");
        for (const auto& r : totals) {
            std::fprintf(out, "%-44s %8" PRIu64 " %12" PRIu64 "\n", reasons.name(r.id).c_str(), r.flows, r.packets);
        }
    }
    bool any = false;
    for (size_t r = 0; r < dp::kDropReasonCount; ++r) {
        if (s.drops[r] != 0 || s.malformed[r] != 0) {
            if (!any) {
                std::fprintf(out, "\n%-22s %12s %12s\n", "reason", "dropped", "seen");
                any = true;
            }
            std::fprintf(out, "%-22.*s %12" PRIu64 " %12" PRIu64 "\n",
                         static_cast<int>(dp::kDropReasons[r].name.size()),
                         dp::kDropReasons[r].name.data(), s.drops[r],
                         dp::kDropReasons[r].malformed ? s.malformed[r] : s.drops[r]);
        }
    }
    std::fprintf(out, "\ntotal: rx %" PRIu64 " = tx %" PRIu64 " + dropped %" PRIu64 "%s\n",
                 s.rx_packets, s.tx_packets, s.dropped,
                 s.rx_packets == s.tx_packets + s.dropped ? "" : "  (MISMATCH)");
    (void)tsc_hz;
}

std::string stats_line(const StatsSnapshot& now, const StatsSnapshot& prev, double dt_s) {
    const double d = dt_s > 0 ? dt_s : 1;
    char buf[256];
    std::snprintf(buf, sizeof(buf),
                  "rx %.0f pps %.1f Mbit/s | tx %.0f pps %.1f Mbit/s | drop %.0f pps | flows %" PRIu64
                  " active, %.0f new/s",
                  static_cast<double>(now.rx_packets - prev.rx_packets) / d,
                  static_cast<double>(now.rx_bytes - prev.rx_bytes) * 8 / d / 1e6,
                  static_cast<double>(now.tx_packets - prev.tx_packets) / d,
                  static_cast<double>(now.tx_bytes - prev.tx_bytes) * 8 / d / 1e6,
                  static_cast<double>(now.dropped - prev.dropped) / d, now.flows_active,
                  static_cast<double>(now.flows_created - prev.flows_created) / d);
    return buf;
}

} // namespace l7gate::ctl
