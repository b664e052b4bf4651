// l7gate launcher: l7gate [EAL options] -- [l7gate options]
//
// Start-up order: parse l7gate's options (bad ones exit 2 before EAL touches anything),
// initialise EAL, check every port against what is asked (exit 2 before any traffic moves),
// create mempools, start ports, build one Worker per queue on the worker lcores, then run the
// control loop on the main lcore until a stop condition. Shutdown drains the workers, prints
// the summary, writes --stats-json and closes the ports (which flushes pcap outputs).

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_pdump.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "control/control_loop.hpp"
#include "control/flow_log.hpp"
#include "control/log.hpp"
#include "control/geoip.hpp"
#include "control/metrics.hpp"
#include "control/ndpi_names.hpp"
#include "control/policy_compiler.hpp"
#include "control/policy_loader.hpp"
#include "control/policy_manager.hpp"
#include "control/host_scores.hpp"
#include "control/prompt.hpp"
#include "control/telemetry.hpp"
#include "control/watchdog.hpp"
#include "control/options.hpp"
#include "control/preflight.hpp"
#include "control/stats_report.hpp"
#include "dataplane/fresh_flows.hpp"
#include "dataplane/memory.hpp"
#include "dataplane/ndpi_arena.hpp"
#include "dataplane/port.hpp"
#include "dataplane/worker.hpp"

namespace {

using namespace l7gate;

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};

void on_signal(int) { g_stop.store(true, std::memory_order_relaxed); }
void on_sighup(int) { g_reload.store(true, std::memory_order_relaxed); }

bool g_eal_up = false;

// Start-up failure: one line on stderr, exit 2. After EAL is up, the ports are closed first
// so vdevs release their files (and no output pcap gets frames that never moved). The
// telemetry commands are detached before: they read the ports and the workers, which
// rte_eal_cleanup() unmaps, while DPDK's telemetry threads keep answering until the end.
[[noreturn]] void fail(const std::string& msg, int code = 2) {
    std::fprintf(stderr, "l7gate: %s\n", msg.c_str());
    std::fflush(stderr);
    ctl::telemetry_detach();
    if (g_eal_up) {
        uint16_t p;
        RTE_ETH_FOREACH_DEV(p) {
            (void)rte_eth_dev_stop(p);
            (void)rte_eth_dev_close(p);
        }
        rte_eal_cleanup();
    }
    std::exit(code);
}

int worker_main(void* arg) { return static_cast<dp::Worker*>(arg)->run(); }

bool has_arg(int argc, char** argv, std::initializer_list<const char*> names) {
    for (int i = 1; i < argc; ++i) {
        for (const char* n : names) {
            if (std::strcmp(argv[i], n) == 0) {
                return true;
            }
        }
    }
    return false;
}

void print_policy_errors(const std::vector<ctl::PolicyError>& errors) {
    for (const ctl::PolicyError& e : errors) {
        std::fprintf(stderr, "%s\n", e.str().c_str());
    }
}

// --check and --convert-policy: no EAL, no ports.
int offline_policy_tool(const ctl::Options& opt) {
    ctl::NdpiNames names;
    if (std::string err = names.init(opt.ndpi_protos, opt.ndpi_categories); !err.empty()) {
        std::fprintf(stderr, "l7gate: %s\n", err.c_str());
        return 2;
    }
    std::vector<ctl::PolicyError> errors;
    if (!opt.convert_policy.empty()) {
        ctl::PolicyConfig cfg;
        if (!ctl::load_policy_file(opt.convert_policy, ctl::PolicyFormat::Nprobe, cfg, errors)) {
            print_policy_errors(errors);
            return 1;
        }
        std::fputs(ctl::policy_to_yaml(cfg).c_str(), stdout);
        return 0;
    }
    if (opt.policy.empty()) {
        std::fprintf(stderr, "l7gate: --check needs --policy FILE\n");
        return 2;
    }
    ctl::GeoIpDb geo;
    if (!opt.geoip.empty()) {
        if (std::string err = geo.open(opt.geoip); !err.empty()) {
            std::fprintf(stderr, "l7gate: --geoip %s\n", err.c_str());
            return 2;
        }
    }
    ctl::ReasonRegistry reasons;
    ctl::CompileContext ctx;
    ctx.names = &names;
    ctx.geoip = geo.is_open() ? &geo : nullptr;
    ctx.reasons = &reasons;
    auto snap = ctl::compile_policy_file(opt.policy, opt.policy_format, ctx, errors);
    if (snap == nullptr) {
        print_policy_errors(errors);
        return 1;
    }
    size_t hostnames = 0;
    for (const auto& p : snap->policies) {
        hostnames += p.hosts.size();
    }
    std::printf("%s: OK: %zu policies, %zu pools, %zu markers, %zu shapers, %zu regexes, %zu countries\n",
                opt.policy.c_str(), snap->policies.size(), snap->pool_names.size(), snap->markers.size(),
                snap->shapers.size(), snap->regex_count, snap->countries.size());
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    const int sep = ctl::find_separator(argc, argv);
    ctl::Options opt;
    if (sep >= 0) {
        if (std::string err = ctl::parse_options(argc, argv, sep + 1, opt); !err.empty()) {
            fail(err);
        }
    } else if (has_arg(argc, argv, {"--check", "--convert-policy", "--preflight", "--version"})) {
        // Offline tools take l7gate's options alone: l7gate --check --policy FILE
        if (std::string err = ctl::parse_options(argc, argv, 1, opt); !err.empty()) {
            fail(err);
        }
    } else if (has_arg(argc, argv, {"-h", "--help"})) {
        opt.help = true;
    }
    if (opt.help) {
        std::fputs(ctl::usage("l7gate").c_str(), stdout);
        return 0;
    }
    if (opt.version) {
        std::printf("l7gate %s\n", ctl::version());
        return 0;
    }
    ctl::LogLevel level = ctl::LogLevel::Info;
    ctl::log_parse_level(opt.log_level, level);
    ctl::log_set_level(level);
    if (opt.check || !opt.convert_policy.empty()) {
        dp::NdpiArena::install_hooks();
        return offline_policy_tool(opt);
    }

    // nDPI's allocations go through l7gate's hooks from the very first one.
    dp::NdpiArena::install_hooks();

    const int eal_argc = sep >= 0 ? sep : argc;
    // Pre-flight, system part (control/preflight.hpp): a fatal finding exits 2 before EAL.
    if (int rc = ctl::preflight_before_eal(eal_argc, argv, sep >= 0, opt); rc >= 0) {
        return rc;
    }
    if (rte_eal_init(eal_argc, argv) < 0) {
        fail(std::string("EAL initialisation failed: ") + rte_strerror(rte_errno) +
             " (check the EAL options, e.g. --vdev files and --no-huge/-m)");
    }
    g_eal_up = true;
    // DPDK's log lines go where l7gate's go (stderr), whatever EAL picked.
    rte_openlog_stream(stderr);
    dp::memory_use_eal(true);

    // Ports, in pair order.
    std::vector<uint16_t> ports;
    std::map<uint16_t, uint16_t> peer;
    for (auto [a, b] : opt.pairs) {
        ports.push_back(a);
        ports.push_back(b);
        peer[a] = b;
        peer[b] = a;
    }
    dp::PortSetup setup;
    setup.queues = static_cast<uint16_t>(opt.rxq);
    setup.require_rss = opt.rss_symmetric;
    setup.rx_desc = opt.rx_desc;
    setup.tx_desc = opt.tx_desc;
    setup.rx_timestamp = opt.capture_clock;
    setup.extra_tx = opt.fail_open ? 1 : 0;  // TX queue --rxq: the fail-open standby path
    for (uint16_t p : ports) {
        if (std::string err = dp::port_check(p, setup); !err.empty()) {
            fail(err);
        }
    }

    // --bench-stop-at-end stops a worker whenever its ports have nothing: only for replays.
    if (opt.bench_stop_at_end) {
        for (uint16_t p : ports) {
            const std::string drv = dp::port_driver(p);
            if (drv != "net_pcap" && drv != "net_null") {
                fail("--bench-stop-at-end is for replayed captures only: port " + std::to_string(p) +
                     " is " + drv + ", not a net_pcap or net_null vdev");
            }
        }
    }

    // Workers: the first rxq worker lcores, in order.
    std::vector<unsigned> lcores;
    unsigned lc;
    RTE_LCORE_FOREACH_WORKER(lc) {
        lcores.push_back(lc);
    }
    if (lcores.size() < opt.rxq) {
        fail("--rxq " + std::to_string(opt.rxq) + " needs " + std::to_string(opt.rxq) +
             " worker lcore(s), the EAL core list gives " + std::to_string(lcores.size()) +
             " (the main lcore runs the control thread; e.g. -l 0-" + std::to_string(opt.rxq) + ")");
    }
    lcores.resize(opt.rxq);

    // One mbuf pool per socket that has ports.
    std::map<int, rte_mempool*> pools;
    for (uint16_t p : ports) {
        int s = rte_eth_dev_socket_id(p);
        pools[s < 0 ? 0 : s] = nullptr;
    }
    const uint32_t cache = dp::PoolSizing::kCache;
    dp::PoolSizing sizing;
    sizing.workers = opt.rxq;
    sizing.ports = static_cast<unsigned>(ports.size());
    sizing.rx_desc = opt.rx_desc;
    sizing.tx_desc = opt.tx_desc;
    sizing.first_flight_segments = opt.ff_bytes != 0 ? uint64_t{4} * opt.ff_flows : 0;
    uint32_t nb_mbufs = opt.mbufs != 0 ? opt.mbufs
                                       : static_cast<uint32_t>(std::max<uint64_t>(sizing.default_mbufs(), 8191));
    for (auto& [sock, pool] : pools) {
        const std::string name = "l7g_pkt_s" + std::to_string(sock);
        pool = rte_pktmbuf_pool_create(name.c_str(), nb_mbufs, cache, 0, RTE_MBUF_DEFAULT_BUF_SIZE, sock);
        if (pool == nullptr) {
            fail("cannot allocate " + std::to_string(nb_mbufs) + " mbufs on socket " +
                 std::to_string(sock) + ": " + rte_strerror(rte_errno) +
                 " (give EAL more memory with -m or hugepages, or lower --mbufs)");
        }
    }
    for (uint16_t p : ports) {
        int s = rte_eth_dev_socket_id(p);
        setup.pool = pools[s < 0 ? 0 : s];
        if (std::string err = dp::port_start(p, setup); !err.empty()) {
            fail(err);
        }
        if (opt.bench_fresh_flows != 0) {
            if (std::string err = dp::fresh_flows_install(p, setup.queues, opt.bench_fresh_flows,
                                                                  opt.bench_fresh_syns); !err.empty()) {
                fail(err);
            }
        }
    }
    // The shaper backlog cap: what the pool leaves once every worker's rings, cache and
    // bursts are served (see dp::PoolSizing), lowered if the started ports hold more.
    uint32_t shaper_backlog = sizing.shaper_backlog_cap(nb_mbufs);
    for (auto& [sock, pool] : pools) {
        shaper_backlog = std::min(shaper_backlog, sizing.shaper_backlog_cap_after_start(rte_mempool_avail_count(pool)));
    }
    // Pre-flight, port part: links, MTU, promiscuous mode. --preflight stops here.
    if (int rc = ctl::preflight_after_start(ports, opt); rc >= 0) {
        fail(rc == 0 ? "preflight: done, ports closed" : "preflight: fatal finding(s), not starting", rc);
    }

    int ts_offset = -1;
    uint64_t ts_flag = 0;
    if (opt.capture_clock && rte_mbuf_dyn_rx_timestamp_register(&ts_offset, &ts_flag) != 0) {
        fail("cannot register the mbuf RX timestamp field");
    }

    for (const std::string* f : {&opt.ndpi_protos, &opt.ndpi_categories}) {
        if (!f->empty()) {
            if (FILE* fp = std::fopen(f->c_str(), "r"); fp != nullptr) {
                std::fclose(fp);
            } else {
                fail("cannot read " + *f + ": " + std::strerror(errno));
            }
        }
    }
    ctl::NdpiNames names;
    if (std::string err = names.init(opt.ndpi_protos, opt.ndpi_categories); !err.empty()) {
        fail(err);
    }
    ctl::GeoIpDb geo;
    if (!opt.geoip.empty()) {
        if (std::string err = geo.open(opt.geoip); !err.empty()) {
            fail("--geoip " + err);
        }
    }
    ctl::ReasonRegistry reasons;
    ctl::ShaperSlots shaper_slots;  // shaper name -> slot, stable across reloads
    // Quiescent-state tracking for policy snapshots: one thread id per worker (= queue).
    const size_t qsbr_size = rte_rcu_qsbr_get_memsize(opt.rxq);
    auto* qsbr = static_cast<rte_rcu_qsbr*>(rte_zmalloc("l7gate_qsbr", qsbr_size, RTE_CACHE_LINE_SIZE));
    if (qsbr == nullptr || rte_rcu_qsbr_init(qsbr, opt.rxq) != 0) {
        fail("cannot set up the RCU quiescent-state variable");
    }
    std::unique_ptr<ctl::PolicyManager> policy;
    static const std::atomic<const dp::PolicySnapshot*> no_policy{nullptr};
    if (!opt.policy.empty()) {
        ctl::CompileContext ctx;
        ctx.names = &names;
        ctx.geoip = geo.is_open() ? &geo : nullptr;
        ctx.reasons = &reasons;
        ctx.workers = opt.rxq;
        ctx.shaper_slots = &shaper_slots;
        policy = std::make_unique<ctl::PolicyManager>(opt.policy, opt.policy_format, ctx, qsbr);
        std::vector<ctl::PolicyError> errors;
        if (!policy->load_initial(errors)) {
            print_policy_errors(errors);
            fail("invalid policy " + opt.policy + " (" + std::to_string(errors.size()) + " error(s))");
        }
    }
    const std::atomic<const dp::PolicySnapshot*>& policy_slot = policy != nullptr ? policy->slot() : no_policy;
    ctl::FlowLog flow_log;
    flow_log.set_names(&reasons, &policy_slot);
    if (!opt.flow_log.empty()) {
        if (std::string err = flow_log.open(opt.flow_log, names.module()); !err.empty()) {
            fail(err);
        }
    }
    ctl::FlowLog event_log;  // --event-log: host events apart from the flow records
    if (!opt.event_log.empty()) {
        if (std::string err = event_log.open(opt.event_log, names.module()); !err.empty()) {
            fail(err);
        }
    }

    std::vector<rte_ring*> flow_rings;
    ctl::HostScores hosts(qsbr, reasons, opt.capture_clock);
    // Shaper buckets: one set for every worker, so a shaper's rate holds for the aggregate.
    void* bucket_mem = rte_zmalloc("l7gate_shaper_buckets", sizeof(dp::ShaperBuckets), 64);
    if (bucket_mem == nullptr) {
        fail("cannot allocate the shaper buckets");
    }
    auto* shaper_buckets = new (bucket_mem) dp::ShaperBuckets();
    if (!shaper_buckets->seeded()) {
        fail("cannot draw the shaper's per-host key secret (getrandom)");
    }
    std::vector<dp::Worker*> workers;
    for (unsigned q = 0; q < opt.rxq; ++q) {
        const int sock = static_cast<int>(rte_lcore_to_socket_id(lcores[q]));
        void* mem = rte_zmalloc_socket("l7gate_worker", sizeof(dp::Worker), 64, sock);
        if (mem == nullptr) {
            fail("cannot allocate worker " + std::to_string(q) + " on socket " + std::to_string(sock));
        }
        auto* w = new (mem) dp::Worker();
        dp::WorkerConfig wc;
        wc.queue = static_cast<uint16_t>(q);
        wc.lcore = lcores[q];
        wc.socket = sock;
        wc.nb_ports = static_cast<uint16_t>(ports.size());
        for (size_t i = 0; i < ports.size(); ++i) {
            wc.port[i] = ports[i];
            wc.peer[i] = peer[ports[i]];
        }
        wc.flows = opt.flows;
        wc.frags = opt.frags;
        wc.timeouts = opt.timeouts;
        wc.frag_timeout_s = opt.frag_timeout_s;
        wc.malformed_drop = opt.malformed_drop;
        wc.table_full_drop = opt.table_full_drop;
        wc.policy = &policy_slot;
        wc.reject_rate = opt.reject_rate;
        wc.blocked = &hosts.slot();
        wc.shaper_buckets = shaper_buckets;
        wc.shaper_backlog = shaper_backlog;
        wc.fail_open = opt.fail_open;
        if (opt.test_stall_queue == static_cast<int>(q)) {
            wc.test_stall_after = opt.test_stall_packets;
            wc.test_stall_ms = opt.test_stall_ms;
        }
        wc.stop_at_end = opt.bench_stop_at_end;
        {
            const std::string sname = "l7g_scores_" + std::to_string(q);
            wc.scores = rte_ring_create_elem(sname.c_str(), sizeof(dp::ScoreEvent), 16384, sock,
                                             RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (wc.scores == nullptr) {
                fail("cannot create the host-score ring of worker " + std::to_string(q));
            }
            hosts.add_ring(wc.scores);
            flow_rings.push_back(wc.scores);
        }
        wc.qsbr = qsbr;
        wc.capture_clock = opt.capture_clock;
        wc.timestamp_offset = ts_offset;
        wc.timestamp_flag = ts_flag;
        // net_pcap (DPDK 22.11) stamps packets in microseconds; NIC timestamps are in ns.
        wc.timestamp_scale_ns = dp::port_driver(ports[0]) == "net_pcap" ? 1000 : 1;
        wc.first_flight.bytes = opt.ff_bytes;
        wc.first_flight.slots = opt.ff_flows;
        wc.first_flight.mbufs = 4 * opt.ff_flows;
        wc.first_flight.unnamed_drop = opt.ff_unnamed_drop;
        dp::ClassifierConfig& cc = wc.classifier;
        cc.dpi_flows = opt.dpi_flows != 0 ? opt.dpi_flows : std::max<uint32_t>(opt.flows / 4, 1024);
        cc.meta_records = opt.meta_records != 0 ? opt.meta_records
                                                : std::min(opt.flows, std::max<uint32_t>(opt.flows / 4, 1024));
        cc.max_packets_tcp = opt.dpi_max_tcp;
        cc.max_packets_udp = opt.dpi_max_udp;
        cc.max_packets_other = opt.dpi_max_other;
        cc.extra_dissection = !opt.dpi_no_extra;
        cc.protos_file = opt.ndpi_protos.empty() ? nullptr : opt.ndpi_protos.c_str();
        cc.categories_file = opt.ndpi_categories.empty() ? nullptr : opt.ndpi_categories.c_str();
        if (!opt.flow_log.empty()) {
            const std::string rname = "l7g_flowlog_" + std::to_string(q);
            wc.flow_log = rte_ring_create_elem(rname.c_str(), sizeof(dp::FlowRecord), opt.flow_log_ring,
                                               sock, RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (wc.flow_log == nullptr) {
                fail("cannot create the flow-log ring of worker " + std::to_string(q) + ": " +
                     rte_strerror(rte_errno));
            }
            flow_log.add_ring(wc.flow_log);
            flow_rings.push_back(wc.flow_log);
        }
        if (const char* err = w->init(wc); err != nullptr) {
            fail("worker " + std::to_string(q) + ": " + err);
        }
        workers.push_back(w);
    }

    std::vector<const dp::Worker*> cworkers(workers.begin(), workers.end());
    ctl::TelemetryContext tctx;
    tctx.ports = ports;
    tctx.workers = cworkers;
    tctx.names = &names;
    tctx.reasons = &reasons;
    tctx.policy_file = opt.policy;
    if (std::string err = ctl::telemetry_register(tctx); !err.empty()) {
        ctl::log_warning("ctl", err);
    }
    if (policy != nullptr) {
        ctl::telemetry_set_policy_status(policy->status());
    }
    // dpdk-dumpcap / dpdk-pdump attach as secondary processes (not with --in-memory).
    const bool pdump = rte_pdump_init() == 0;
    if (!pdump) {
        ctl::log_info("ctl", "packet capture (dpdk-dumpcap) unavailable: EAL runs without shared config");
    }

    // Prometheus endpoint: bound before any traffic moves (a bad address or a busy port exits
    // 2); its HTTP threads inherit the main lcore's CPU affinity. Serves zeros until the
    // control loop's first update.
    std::unique_ptr<ctl::MetricsExporter> metrics;
    if (!opt.metrics.empty()) {
        metrics = std::make_unique<ctl::MetricsExporter>();
        if (std::string err = metrics->start(opt.metrics); !err.empty()) {
            fail(err);
        }
        metrics->update(ctl::collect_stats(ports, cworkers, true), names, reasons, ctl::policy_status(policy.get()),
                        static_cast<double>(rte_get_tsc_hz()), policy != nullptr ? policy->current() : nullptr);
    }

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGHUP, on_sighup);

    std::printf("l7gate %s: %zu port(s) in %zu pair(s), %u worker(s), %u flows/worker (hash %s), %u mbufs "
                "(shaper backlog %u/worker)\n",
                ctl::version(), ports.size(), opt.pairs.size(), opt.rxq, opt.flows,
                dp::FlowHasher::name(workers[0]->flow_table().hash_kind()), nb_mbufs, shaper_backlog);
    std::fflush(stdout);
    const auto t0 = std::chrono::steady_clock::now();
    for (unsigned q = 0; q < opt.rxq; ++q) {
        rte_eal_remote_launch(worker_main, workers[q], lcores[q]);
    }

    ctl::FlowLog* fl = opt.flow_log.empty() ? nullptr : &flow_log;
    ctl::FlowLog* events = opt.event_log.empty() ? fl : &event_log;
    ctl::ControlHooks hooks;
    hooks.flow_log = fl;
    hooks.events = events;
    hooks.policy = policy.get();
    hooks.reload_requested = &g_reload;
    hooks.hosts = &hosts;
    hooks.metrics = metrics.get();
    hooks.names = &names;
    hooks.reasons = &reasons;
    hooks.tsc_hz = static_cast<double>(rte_get_tsc_hz());
    std::vector<uint16_t> peer_of(RTE_MAX_ETHPORTS, 0);
    for (const auto& [a, b] : peer) {
        peer_of[a] = b;
    }
    ctl::Watchdog watchdog(workers, ports, peer_of,
                           {opt.watchdog_ms, opt.fail_open, static_cast<uint16_t>(opt.rxq)});
    hooks.watchdog = &watchdog;
    watchdog.start();  // its own thread (logs why when it cannot start)
    std::unique_ptr<ctl::Prompt> prompt;
    if (opt.interactive) {
        ctl::PromptContext pc;
        pc.ports = ports;
        pc.workers = workers;
        pc.policy = policy.get();
        pc.names = &names;
        pc.reasons = &reasons;
        pc.options = &opt;
        pc.hosts = &hosts;
        prompt = std::make_unique<ctl::Prompt>(pc);
        prompt->start();
        hooks.prompt = prompt.get();
    }
    const std::string why = ctl::run_control_loop(opt, ports, cworkers, g_stop, hooks);
    watchdog.release_all();  // a stalled worker gets its queues back to stop cleanly

    for (dp::Worker* w : workers) {
        w->request_stop();
    }
    // Workers flush their flows into the flow-log rings on the way out: keep draining.
    for (bool running = true; running;) {
        running = false;
        for (unsigned lc : lcores) {
            running = running || rte_eal_get_lcore_state(lc) == RUNNING;
        }
        if (fl != nullptr) {
            fl->drain();
        }
        if (running) {
            rte_delay_us_sleep(1000);
        }
    }
    rte_eal_mp_wait_lcore();
    if (fl != nullptr) {
        fl->drain();
    }
    // The last score events (flows flushed at stop), before the logs close.
    hosts.poll(policy != nullptr ? policy->current() : nullptr, events);
    if (fl != nullptr) {
        fl->close();
    }
    event_log.close();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("l7gate: stopping (%s)\n", why.c_str());

    ctl::StatsSnapshot snap = ctl::collect_stats(ports, cworkers, true, &watchdog);
    ctl::fill_host_stats(snap, &hosts, opt.top_hosts);
    if (policy != nullptr) {
        const ctl::ReloadStatus& rs = policy->status();
        snap.has_policy = true;
        snap.policy_generation = rs.generation;
        snap.reloads_ok = rs.reloads_ok;
        snap.reloads_failed = rs.reloads_failed;
        snap.last_reload_success = rs.last_reload_success;
        if (const dp::PolicySnapshot* cur = policy->current(); cur != nullptr) {
            for (const dp::ShaperProfile& sh : cur->shapers) {
                snap.shaper_names.push_back(sh.name);
            }
        }
    }
    if (metrics != nullptr) {
        // The final counters (flows flushed at exit included), served until l7gate exits.
        metrics->update(snap, names, reasons, ctl::policy_status(policy.get()), static_cast<double>(rte_get_tsc_hz()),
                        policy != nullptr ? policy->current() : nullptr);
    }
    ctl::print_summary(stdout, snap, elapsed, rte_get_tsc_hz(), names, reasons);
    std::fflush(stdout);
    int rc = 0;
    if (!opt.stats_json.empty()) {
        std::ofstream f(opt.stats_json, std::ios::trunc);
        f << ctl::stats_json(snap, elapsed, rte_get_tsc_hz(), names, reasons);
        if (!f) {
            std::fprintf(stderr, "l7gate: cannot write %s\n", opt.stats_json.c_str());
            rc = 1;
        }
    }

    // From here on the ports, workers and names go away (and tctx with main's frame), while
    // DPDK's telemetry threads may still be running a command: wait for it, then fail the
    // later ones. Nothing else outside the main lcore reads them: the metrics exporter's HTTP
    // threads serve the copy made by the last update(), the prompt's reader thread only
    // reads lines.
    ctl::telemetry_detach();
    if (pdump) {
        rte_pdump_uninit();
    }
    for (uint16_t p : ports) {
        dp::port_stop(p);
    }
    for (dp::Worker* w : workers) {
        w->~Worker();
        rte_free(w);
    }
    shaper_buckets->~ShaperBuckets();
    rte_free(shaper_buckets);
    for (rte_ring* r : flow_rings) {
        rte_ring_free(r);
    }
    metrics.reset();  // stops the HTTP threads
    policy.reset();  // workers are gone: every snapshot can go
    rte_free(qsbr);
    for (auto& [sock, pool] : pools) {
        rte_mempool_free(pool);
    }
    rte_eal_cleanup();
    return rc;
}
