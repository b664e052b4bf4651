#include "control/runtime/gateway.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <new>

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

#include "control/base/log.hpp"
#include "control/observe/metrics.hpp"
#include "control/observe/prompt.hpp"
#include "control/observe/stats_report.hpp"
#include "control/observe/worker_queries.hpp"
#include "control/ops/preflight.hpp"
#include "control/ops/watchdog.hpp"
#include "control/policy/loader.hpp"
#include "control/policy/manager.hpp"
#ifdef L7GATE_HAVE_KAFKA
#include "control/records/kafka_sink.hpp"
#endif
#include "control/runtime/control_loop.hpp"
#include "dataplane/fresh_flows.hpp"
#include "dataplane/memory.hpp"
#include "dataplane/ndpi_arena.hpp"
#include "dataplane/port.hpp"
#include "dataplane/shaper.hpp"
#include "dataplane/worker.hpp"

namespace l7gate::ctl {

namespace {

bool g_eal_up = false;

// Start-up failure: one line on stderr, exit `code`. After EAL is up, the ports are closed
// first so vdevs release their files (and no output pcap gets frames that never moved). The
// telemetry commands are detached before: they read the ports and the workers, which
// rte_eal_cleanup() unmaps, while DPDK's telemetry threads keep answering until the end.
[[noreturn]] void fail(const std::string& msg, int code = 2) {
    std::fprintf(stderr, "l7gate: %s\n", msg.c_str());
    std::fflush(stderr);
    telemetry_detach();
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

void print_policy_errors(const std::vector<PolicyError>& errors) {
    for (const PolicyError& e : errors) {
        std::fprintf(stderr, "%s\n", e.str().c_str());
    }
}

// --check and --convert-policy: no EAL, no ports.
int offline_policy_tool(const Options& opt) {
    NdpiNames names;
    if (std::string err = names.init(opt.ndpi_protos, opt.ndpi_categories); !err.empty()) {
        std::fprintf(stderr, "l7gate: %s\n", err.c_str());
        return 2;
    }
    std::vector<PolicyError> errors;
    if (!opt.convert_policy.empty()) {
        PolicyConfig cfg;
        if (!load_policy_file(opt.convert_policy, PolicyFormat::Nprobe, cfg, errors)) {
            print_policy_errors(errors);
            return 1;
        }
        std::fputs(policy_to_yaml(cfg).c_str(), stdout);
        return 0;
    }
    if (opt.policy.empty()) {
        std::fprintf(stderr, "l7gate: --check needs --policy FILE\n");
        return 2;
    }
    GeoIpDb geo;
    if (!opt.geoip.empty()) {
        if (std::string err = geo.open(opt.geoip); !err.empty()) {
            std::fprintf(stderr, "l7gate: --geoip %s\n", err.c_str());
            return 2;
        }
    }
    ReasonRegistry reasons;
    CompileContext ctx;
    ctx.names = &names;
    ctx.geoip = geo.is_open() ? &geo : nullptr;
    ctx.reasons = &reasons;
    ctx.monitor = opt.monitor;
    auto snap = compile_policy_file(opt.policy, opt.policy_format, ctx, errors);
    if (snap == nullptr) {
        print_policy_errors(errors);
        return 1;
    }
    size_t monitoring = 0;
    for (const dp::CompiledPolicy& p : snap->policies) {
        monitoring += p.enforce ? 0 : 1;
    }
    std::printf("%s: OK: %zu policies, %zu pools, %zu markers, %zu shapers, %zu regexes, %zu countries, %zu in monitor mode\n",
                opt.policy.c_str(), snap->policies.size(), snap->pool_names.size(), snap->markers.size(),
                snap->shapers.size(), snap->regex_count, snap->countries.size(), monitoring);
    return 0;
}

double steady_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A worker's bounded SP/SC ring of `elem`-sized records, on its socket.
rte_ring* worker_ring(const char* what, const char* prefix, unsigned q, size_t elem, unsigned size, int sock) {
    const std::string name = std::string(prefix) + std::to_string(q);
    rte_ring* r = rte_ring_create_elem(name.c_str(), static_cast<unsigned>(elem), size, sock,
                                       RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (r == nullptr) {
        fail(std::string("cannot create the ") + what + " ring of worker " + std::to_string(q) + ": " +
             rte_strerror(rte_errno));
    }
    return r;
}

} // namespace

std::optional<int> handle_command_line(int argc, char** argv, Options& opt, int& eal_argc) {
    const int sep = find_separator(argc, argv);
    if (sep >= 0) {
        if (std::string err = parse_options(argc, argv, sep + 1, opt); !err.empty()) {
            fail(err);
        }
    } else if (has_arg(argc, argv, {"--check", "--convert-policy", "--preflight", "--version"})) {
        // Offline tools take l7gate's options alone: l7gate --check --policy FILE
        if (std::string err = parse_options(argc, argv, 1, opt); !err.empty()) {
            fail(err);
        }
    } else if (has_arg(argc, argv, {"-h", "--help"})) {
        opt.help = true;
    }
    if (opt.help) {
        std::fputs(usage("l7gate").c_str(), stdout);
        return 0;
    }
    if (opt.version) {
        std::printf("l7gate %s\n", version());
        return 0;
    }
    LogLevel level = LogLevel::Info;
    log_parse_level(opt.log_level, level);
    log_set_level(level);
    // nDPI's allocations go through l7gate's hooks from the very first one.
    dp::NdpiArena::install_hooks();
    if (opt.check || !opt.convert_policy.empty()) {
        return offline_policy_tool(opt);
    }
    eal_argc = sep >= 0 ? sep : argc;
    // Pre-flight, system part (ops/preflight.hpp): a fatal finding exits 2 before EAL.
    if (int rc = preflight_before_eal(eal_argc, argv, sep >= 0, opt); rc >= 0) {
        return rc;
    }
    return std::nullopt;
}

Gateway::Gateway(Options& opt) : opt_(opt) {}

Gateway::~Gateway() = default;

void Gateway::start_eal(int eal_argc, char** argv) {
    if (rte_eal_init(eal_argc, argv) < 0) {
        fail(std::string("EAL initialisation failed: ") + rte_strerror(rte_errno) +
             " (check the EAL options, e.g. --vdev files and --no-huge/-m)");
    }
    g_eal_up = true;
    // DPDK's log lines go where l7gate's go (stderr), whatever EAL picked.
    rte_openlog_stream(stderr);
    dp::memory_use_eal(true);
    // Workers: the first rxq worker lcores, in order.
    unsigned lc;
    RTE_LCORE_FOREACH_WORKER(lc) {
        lcores_.push_back(lc);
    }
    if (lcores_.size() < opt_.rxq) {
        fail("--rxq " + std::to_string(opt_.rxq) + " needs " + std::to_string(opt_.rxq) +
             " worker lcore(s), the EAL core list gives " + std::to_string(lcores_.size()) +
             " (the main lcore runs the control thread; e.g. -l 0-" + std::to_string(opt_.rxq) + ")");
    }
    lcores_.resize(opt_.rxq);
}

void Gateway::open_ports() {
    // Ports, in pair order.
    peer_of_.assign(RTE_MAX_ETHPORTS, 0);
    for (auto [a, b] : opt_.pairs) {
        ports_.push_back(a);
        ports_.push_back(b);
        peer_of_[a] = b;
        peer_of_[b] = a;
    }
    dp::PortSetup setup;
    setup.queues = static_cast<uint16_t>(opt_.rxq);
    setup.require_rss = opt_.rss_symmetric;
    setup.rx_desc = opt_.rx_desc;
    setup.tx_desc = opt_.tx_desc;
    setup.rx_timestamp = opt_.capture_clock;
    setup.extra_tx = opt_.fail_open ? 1 : 0;  // TX queue --rxq: the fail-open standby path
    setup.mtu = static_cast<uint16_t>(opt_.mtu);  // 0: the driver's default
    const uint32_t mtu = opt_.mtu != 0 ? opt_.mtu : dp::kMtuDefault;
    // --mtu: the pools keep 2 KiB mbufs when a frame fits one or every port scatters a longer
    // one over several; else their mbufs hold a whole frame (dp::mbuf_data_room).
    bool all_scatter = true;
    for (uint16_t p : ports_) {
        all_scatter = all_scatter && dp::port_scatters(p);
    }
    data_room_ = dp::mbuf_data_room(mtu, all_scatter);
    setup.scatter = dp::max_frame_len(mtu) + 4 > data_room_;
    for (uint16_t p : ports_) {
        if (std::string err = dp::port_check(p, setup); !err.empty()) {
            fail(err);
        }
        // --bench-stop-at-end stops a worker whenever its ports have nothing: only for replays.
        const std::string drv = dp::port_driver(p);
        if (opt_.bench_stop_at_end && drv != "net_pcap" && drv != "net_null") {
            fail("--bench-stop-at-end is for replayed captures only: port " + std::to_string(p) + " is " + drv +
                 ", not a net_pcap or net_null vdev");
        }
    }

    // One mbuf pool per socket that has ports.
    for (uint16_t p : ports_) {
        const int s = rte_eth_dev_socket_id(p);
        pools_[s < 0 ? 0 : s] = nullptr;
    }
    dp::PoolSizing sizing;
    sizing.workers = opt_.rxq;
    sizing.ports = static_cast<unsigned>(ports_.size());
    sizing.rx_desc = opt_.rx_desc;
    sizing.tx_desc = opt_.tx_desc;
    sizing.first_flight_segments = opt_.ff_bytes != 0 ? uint64_t{4} * opt_.ff_flows : 0;
    mbufs_ = opt_.mbufs != 0 ? opt_.mbufs : static_cast<uint32_t>(std::max<uint64_t>(sizing.default_mbufs(), 8191));
    for (auto& [sock, pool] : pools_) {
        const std::string name = "l7g_pkt_s" + std::to_string(sock);
        pool = rte_pktmbuf_pool_create(name.c_str(), mbufs_, dp::PoolSizing::kCache, 0,
                                       static_cast<uint16_t>(RTE_PKTMBUF_HEADROOM + data_room_), sock);
        if (pool == nullptr) {
            fail("cannot allocate " + std::to_string(mbufs_) + " mbufs on socket " + std::to_string(sock) + ": " +
                 rte_strerror(rte_errno) + " (give EAL more memory with -m or hugepages, or lower --mbufs)");
        }
    }
    for (uint16_t p : ports_) {
        const int s = rte_eth_dev_socket_id(p);
        setup.pool = pools_[s < 0 ? 0 : s];
        if (std::string err = dp::port_start(p, setup); !err.empty()) {
            fail(err);
        }
        if (opt_.mtu != 0) {
            const uint32_t frame = dp::max_frame_len(opt_.mtu);
            std::printf("l7gate: port %u (%s): MTU %u, %s\n", p, dp::port_driver(p).c_str(), opt_.mtu,
                        setup.scatter ? ("scattered RX: a frame of up to " + std::to_string(frame) + " bytes spans up to " +
                                         std::to_string((frame + data_room_ - 1) / data_room_) + " mbufs of " +
                                         std::to_string(data_room_) + " bytes")
                                            .c_str()
                                      : ("one mbuf of " + std::to_string(data_room_) + " bytes holds a whole frame (" +
                                         std::to_string(frame) + " bytes)")
                                            .c_str());
        }
        if (opt_.bench_fresh_flows != 0) {
            if (std::string err = dp::fresh_flows_install(p, setup.queues, opt_.bench_fresh_flows,
                                                          opt_.bench_fresh_syns);
                !err.empty()) {
                fail(err);
            }
        }
    }
    // The shaper backlog cap: what the pool leaves once every worker's rings, cache and
    // bursts are served (see dp::PoolSizing), lowered if the started ports hold more.
    shaper_backlog_ = sizing.shaper_backlog_cap(mbufs_);
    for (auto& [sock, pool] : pools_) {
        shaper_backlog_ =
            std::min(shaper_backlog_, sizing.shaper_backlog_cap_after_start(rte_mempool_avail_count(pool)));
    }
    // Pre-flight, port part: links, MTU, promiscuous mode. --preflight stops here.
    if (int rc = preflight_after_start(ports_, opt_, data_room_); rc >= 0) {
        fail(rc == 0 ? "preflight: done, ports closed" : "preflight: fatal finding(s), not starting", rc);
    }
    if (opt_.capture_clock && rte_mbuf_dyn_rx_timestamp_register(&ts_offset_, &ts_flag_) != 0) {
        fail("cannot register the mbuf RX timestamp field");
    }
}

void Gateway::load_policy() {
    for (const std::string* f : {&opt_.ndpi_protos, &opt_.ndpi_categories}) {
        if (!f->empty()) {
            if (FILE* fp = std::fopen(f->c_str(), "r"); fp != nullptr) {
                std::fclose(fp);
            } else {
                fail("cannot read " + *f + ": " + std::strerror(errno));
            }
        }
    }
    if (std::string err = names_.init(opt_.ndpi_protos, opt_.ndpi_categories); !err.empty()) {
        fail(err);
    }
    if (!opt_.geoip.empty()) {
        if (std::string err = geo_.open(opt_.geoip); !err.empty()) {
            fail("--geoip " + err);
        }
    }
    // Quiescent-state tracking for policy snapshots: one thread id per worker (= queue).
    const size_t qsbr_size = rte_rcu_qsbr_get_memsize(opt_.rxq);
    qsbr_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("l7gate_qsbr", qsbr_size, RTE_CACHE_LINE_SIZE));
    if (qsbr_ == nullptr || rte_rcu_qsbr_init(qsbr_, opt_.rxq) != 0) {
        fail("cannot set up the RCU quiescent-state variable");
    }
    hosts_ = std::make_unique<HostScores>(qsbr_, reasons_, opt_.capture_clock);
    if (opt_.policy.empty()) {
        return;
    }
    CompileContext ctx;
    ctx.names = &names_;
    ctx.geoip = geo_.is_open() ? &geo_ : nullptr;
    ctx.reasons = &reasons_;
    ctx.workers = opt_.rxq;
    ctx.shaper_slots = &shaper_slots_;
    ctx.monitor = opt_.monitor;
    policy_ = std::make_unique<PolicyManager>(opt_.policy, opt_.policy_format, ctx, qsbr_);
    std::vector<PolicyError> errors;
    if (!policy_->load_initial(errors)) {
        print_policy_errors(errors);
        fail("invalid policy " + opt_.policy + " (" + std::to_string(errors.size()) + " error(s))");
    }
}

// Flow records leave through the record stream's sinks (records/record_stream.hpp): an
// exporter is one more add_sink() here.
void Gateway::open_records(std::atomic<bool>& reopen) {
    static const std::atomic<const dp::PolicySnapshot*> no_policy{nullptr};
    records_.set_reopen_flag(&reopen);
    const VerdictNames names{&reasons_, policy_ != nullptr ? &policy_->slot() : &no_policy};
    flow_log_.set_names(names);
    if (!opt_.flow_log.empty()) {
        if (std::string err = flow_log_.open(opt_.flow_log, names_.module()); !err.empty()) {
            fail(err);
        }
        records_.add_sink(flow_log_);
    }
    if (!opt_.ipfix.empty()) {  // --ipfix: the same records as IPFIX biflows over UDP
        ipfix_.set_names(names);
        IpfixConfig ic{opt_.ipfix, opt_.ipfix_domain, opt_.ipfix_mtu, opt_.ipfix_template_s, opt_.ipfix_template_msgs};
        if (std::string err = ipfix_.open(ic, opt_.rxq, names_.module()); !err.empty()) {
            fail(err);
        }
        records_.add_sink(ipfix_);
    }
    if (!opt_.event_log.empty()) {  // --event-log: host events apart from the flow records
        if (std::string err = event_log_.open(opt_.event_log, names_.module()); !err.empty()) {
            fail(err);
        }
        records_.add_output(event_log_);
    }
    if (!opt_.kafka.empty()) {  // --kafka: flow records (and host events) to Kafka
#ifdef L7GATE_HAVE_KAFKA
        kafka_ = std::make_unique<KafkaSink>("kafka");
        kafka_->set_names(names);
        const KafkaConfig kc{opt_.kafka, opt_.kafka_topic, opt_.kafka_events_topic, opt_.kafka_config};
        if (std::string err = kafka_->open(kc, names_.module()); !err.empty()) {
            fail(err);
        }
        records_.add_sink(*kafka_);
#else
        fail("--kafka: this l7gate was built without librdkafka");
#endif
    }
    // Host events: to the event log, else the flow log; and to the Kafka events topic.
    if (!opt_.event_log.empty() || !opt_.flow_log.empty()) {
        events_.add(opt_.event_log.empty() ? flow_log_ : event_log_);
    }
#ifdef L7GATE_HAVE_KAFKA
    if (kafka_ != nullptr && kafka_->has_events()) {
        events_.add(*kafka_);
    }
#endif
}

void Gateway::make_workers() {
    static const std::atomic<const dp::PolicySnapshot*> no_policy{nullptr};
    // Shaper buckets: one set for every worker, so a shaper's rate holds for the aggregate.
    void* bucket_mem = rte_zmalloc("l7gate_shaper_buckets", sizeof(dp::ShaperBuckets), 64);
    if (bucket_mem == nullptr) {
        fail("cannot allocate the shaper buckets");
    }
    shaper_buckets_ = new (bucket_mem) dp::ShaperBuckets();
    if (!shaper_buckets_->seeded()) {
        fail("cannot draw the shaper's per-host key secret (getrandom)");
    }
    for (unsigned q = 0; q < opt_.rxq; ++q) {
        const int sock = static_cast<int>(rte_lcore_to_socket_id(lcores_[q]));
        dp::WorkerConfig wc;
        wc.queue = static_cast<uint16_t>(q);
        wc.lcore = lcores_[q];
        wc.socket = sock;
        wc.nb_ports = static_cast<uint16_t>(ports_.size());
        for (size_t i = 0; i < ports_.size(); ++i) {
            wc.port[i] = ports_[i];
            wc.peer[i] = peer_of_[ports_[i]];
        }
        wc.flows = opt_.flows;
        wc.frags = opt_.frags;
        wc.timeouts = opt_.timeouts;
        wc.frag_timeout_s = opt_.frag_timeout_s;
        wc.malformed_drop = opt_.malformed_drop;
        wc.decap = opt_.decap;
        wc.table_full_drop = opt_.table_full_drop;
        wc.policy = policy_ != nullptr ? &policy_->slot() : &no_policy;
        wc.reject_rate = opt_.reject_rate;
        wc.blocked = &hosts_->slot();
        wc.shaper_buckets = shaper_buckets_;
        wc.shaper_backlog = shaper_backlog_;
        wc.fail_open = opt_.fail_open;
        wc.mtu = opt_.mtu != 0 ? opt_.mtu : dp::kMtuDefault;
        if (opt_.test_stall_queue == static_cast<int>(q)) {
            wc.test_stall_after = opt_.test_stall_packets;
            wc.test_stall_ms = opt_.test_stall_ms;
        }
        wc.stop_at_end = opt_.bench_stop_at_end;
        wc.scores = worker_ring("host-score", "l7g_scores_", q, sizeof(dp::ScoreEvent), 16384, sock);
        hosts_->add_ring(wc.scores);
        rings_.push_back(wc.scores);
        wc.qsbr = qsbr_;
        wc.capture_clock = opt_.capture_clock;
        wc.timestamp_offset = ts_offset_;
        wc.timestamp_flag = ts_flag_;
        // net_pcap (DPDK 22.11) stamps packets in microseconds; NIC timestamps are in ns.
        wc.timestamp_scale_ns = dp::port_driver(ports_[0]) == "net_pcap" ? 1000 : 1;
        wc.first_flight.bytes = opt_.ff_bytes;
        wc.first_flight.slots = opt_.ff_flows;
        wc.first_flight.mbufs = 4 * opt_.ff_flows;
        wc.first_flight.unnamed_drop = opt_.ff_unnamed_drop;
        dp::ClassifierConfig& cc = wc.classifier;
        cc.dpi_flows = opt_.dpi_flows != 0 ? opt_.dpi_flows : std::max<uint32_t>(opt_.flows / 4, 1024);
        cc.meta_records = opt_.meta_records != 0 ? opt_.meta_records
                                                 : std::min(opt_.flows, std::max<uint32_t>(opt_.flows / 4, 1024));
        cc.max_packets_tcp = opt_.dpi_max_tcp;
        cc.max_packets_udp = opt_.dpi_max_udp;
        cc.max_packets_other = opt_.dpi_max_other;
        cc.extra_dissection = !opt_.dpi_no_extra;
        cc.protos_file = opt_.ndpi_protos.empty() ? nullptr : opt_.ndpi_protos.c_str();
        cc.categories_file = opt_.ndpi_categories.empty() ? nullptr : opt_.ndpi_categories.c_str();
        if (has_record_sink()) {  // a record sink: the workers' record rings
            wc.flow_log = worker_ring("flow-log", "l7g_flowlog_", q, sizeof(dp::FlowRecord), opt_.flow_log_ring, sock);
            records_.add_ring(wc.flow_log);
            wc.active_timeout_s = opt_.ipfix.empty() ? 0 : opt_.ipfix_active_s;  // interim records: IPFIX only
            rings_.push_back(wc.flow_log);
        }
        void* mem = rte_zmalloc_socket("l7gate_worker", sizeof(dp::Worker), 64, sock);
        if (mem == nullptr) {
            fail("cannot allocate worker " + std::to_string(q) + " on socket " + std::to_string(sock));
        }
        auto* w = new (mem) dp::Worker();
        if (const char* err = w->init(wc); err != nullptr) {
            fail("worker " + std::to_string(q) + ": " + err);
        }
        workers_.push_back(w);
    }
}

void Gateway::make_services() {
    // Questions to the workers (show flows, /l7gate/top_flows) through their command rings.
    std::vector<dp::CommandChannel*> channels;
    for (dp::Worker* w : workers_) {
        channels.push_back(&w->commands());
    }
    queries_ = std::make_unique<WorkerQueries>(channels);
    telemetry_.queries = queries_->inbox();
    telemetry_.query_wait = queries_->timeout() + std::chrono::seconds(1);
    if (policy_ != nullptr) {
        // A reload is applied once every worker acknowledged its generation.
        policy_->set_acks(workers_.size(),
                          [this](size_t w) { return workers_[w]->counters().policy_generation.get(); });
        // Reason ids no snapshot, flow, record or counter holds any more are reused.
        ReasonHolders h;
        h.workers = workers_.size();
        h.sweep = [this](size_t w) -> dp::ReasonSweep& { return workers_[w]->reason_sweep(); };
        if (has_record_sink()) {  // worker w feeds the w-th ring of the record stream
            h.records_queued = [this](size_t w) { return workers_[w]->counters().flow_log_records.get(); };
            h.records_taken = [this](size_t w) { return records_.taken(w); };
        }
        h.counters = [this](uint16_t id, uint64_t& flows, uint64_t& packets) {
            for (const dp::Worker* w : workers_) {
                flows += w->counters().reason_flows[id & (dp::kMaxReasons - 1)].get();
                packets += w->counters().reason_packets[id & (dp::kMaxReasons - 1)].get();
            }
        };
        policy_->set_reason_holders(std::move(h));
    }
    telemetry_.ports = ports_;
    telemetry_.workers.assign(workers_.begin(), workers_.end());
    telemetry_.names = &names_;
    telemetry_.reasons = &reasons_;
    telemetry_.policy_file = opt_.policy;
    if (std::string err = telemetry_register(telemetry_); !err.empty()) {
        log_warning("ctl", err);
    }
    if (policy_ != nullptr) {
        telemetry_set_policy_status(policy_->status());
    }
    // dpdk-dumpcap / dpdk-pdump attach as secondary processes (not with --in-memory).
    pdump_ = rte_pdump_init() == 0;
    if (!pdump_) {
        log_info("ctl", "packet capture (dpdk-dumpcap) unavailable: EAL runs without shared config");
    }
    // Prometheus endpoint: bound before any traffic moves (a bad address or a busy port exits
    // 2); its HTTP threads inherit the main lcore's CPU affinity. Serves zeros until the
    // control loop's first update.
    if (!opt_.metrics.empty()) {
        metrics_ = std::make_unique<MetricsExporter>();
        if (std::string err = metrics_->start(opt_.metrics); !err.empty()) {
            fail(err);
        }
        metrics_->update(collect_stats(ports_, telemetry_.workers, true), names_, reasons_,
                         policy_status(policy_.get()), static_cast<double>(rte_get_tsc_hz()),
                         policy_ != nullptr ? policy_->current() : nullptr);
    }
    watchdog_ = std::make_unique<Watchdog>(workers_, ports_, peer_of_,
                                           WatchdogConfig{opt_.watchdog_ms, opt_.fail_open,
                                                          static_cast<uint16_t>(opt_.rxq)});
    watchdog_->start();  // its own thread (logs why when it cannot start)
    if (opt_.interactive) {
        PromptContext pc;
        pc.ports = ports_;
        pc.workers = workers_;
        pc.policy = policy_.get();
        pc.names = &names_;
        pc.reasons = &reasons_;
        pc.options = &opt_;
        pc.hosts = hosts_.get();
        pc.queries = queries_.get();
        pc.reopen_logs = [this] { return records_.reopen(); };
        prompt_ = std::make_unique<Prompt>(pc);
        prompt_->start();
    }
}

std::string Gateway::run(const std::atomic<bool>& stop, std::atomic<bool>& reload) {
    std::printf("l7gate %s: %zu port(s) in %zu pair(s), %u worker(s), %u flows/worker (hash %s), %u mbufs "
                "(shaper backlog %u/worker)\n",
                version(), ports_.size(), opt_.pairs.size(), opt_.rxq, opt_.flows,
                dp::FlowHasher::name(workers_[0]->flow_table().hash_kind()), mbufs_, shaper_backlog_);
    std::fflush(stdout);
    started_ = steady_seconds();
    for (unsigned q = 0; q < opt_.rxq; ++q) {
        rte_eal_remote_launch(worker_main, workers_[q], lcores_[q]);
    }
    ControlHooks hooks;
    // Without a record sink or an event log there is no record service: the workers have no
    // record rings.
    hooks.records = !has_record_sink() && opt_.event_log.empty() ? nullptr : &records_;
    hooks.events = events_.empty() ? nullptr : &events_;
    hooks.policy = policy_.get();
    hooks.reload_requested = &reload;
    hooks.hosts = hosts_.get();
    hooks.metrics = metrics_.get();
    hooks.names = &names_;
    hooks.reasons = &reasons_;
    hooks.tsc_hz = static_cast<double>(rte_get_tsc_hz());
    hooks.watchdog = watchdog_.get();
    hooks.prompt = prompt_.get();
    hooks.queries = queries_.get();
    hooks.services_out = &services_;  // for the final metrics
    return run_control_loop(opt_, ports_, telemetry_.workers, stop, hooks);
}

int Gateway::stop(const std::string& why) {
    queries_->close();         // open questions end "stopping"; the command rings go with the workers
    watchdog_->release_all();  // a stalled worker gets its queues back to stop cleanly
    for (dp::Worker* w : workers_) {
        w->request_stop();
    }
    // Workers flush their flows into the flow-log rings on the way out: keep draining (each
    // poll bounded; a sink that cannot keep up refuses, counted).
    for (bool running = true; running;) {
        running = false;
        for (unsigned lc : lcores_) {
            running = running || rte_eal_get_lcore_state(lc) == RUNNING;
        }
        records_.poll();
        if (running && records_.backlog() == 0) {
            rte_delay_us_sleep(1000);
        }
    }
    rte_eal_mp_wait_lcore();
    // The last score events (flows flushed at stop), then every record left in the rings, and
    // at most RecordStream::kShutdownBound for the sinks to write what they hold.
    hosts_->poll(policy_ != nullptr ? policy_->current() : nullptr, events_.empty() ? nullptr : &events_);
    records_.finish();
    const double elapsed = steady_seconds() - started_;
    std::printf("l7gate: stopping (%s)\n", why.c_str());
    int rc = 0;
    report(elapsed, rc);
    release();
    return rc;
}

void Gateway::report(double elapsed, int& rc) {
    StatsSnapshot snap = collect_stats(ports_, telemetry_.workers, true, watchdog_.get());
    fill_host_stats(snap, hosts_.get(), opt_.top_hosts);
    fill_record_stats(snap, &records_);
    snap.services = services_;
    if (policy_ != nullptr) {
        const ReloadStatus& rs = policy_->status();
        snap.has_policy = true;
        snap.policy_generation = rs.generation;
        snap.reloads_ok = rs.reloads_ok;
        snap.reloads_failed = rs.reloads_failed;
        snap.last_reload_success = rs.last_reload_success;
        if (const dp::PolicySnapshot* cur = policy_->current(); cur != nullptr) {
            for (const dp::ShaperProfile& sh : cur->shapers) {
                snap.shaper_names.push_back(sh.name);
            }
        }
    }
    if (metrics_ != nullptr) {
        // The final counters (flows flushed at exit included), served until l7gate exits.
        metrics_->update(snap, names_, reasons_, policy_status(policy_.get()), static_cast<double>(rte_get_tsc_hz()),
                         policy_ != nullptr ? policy_->current() : nullptr);
    }
    print_summary(stdout, snap, elapsed, rte_get_tsc_hz(), names_, reasons_);
    std::fflush(stdout);
    if (!opt_.stats_json.empty()) {
        std::ofstream f(opt_.stats_json, std::ios::trunc);
        f << stats_json(snap, elapsed, rte_get_tsc_hz(), names_, reasons_);
        if (!f) {
            std::fprintf(stderr, "l7gate: cannot write %s\n", opt_.stats_json.c_str());
            rc = 1;
        }
    }
}

// From here on the ports, workers and names go away, while DPDK's telemetry threads may still
// be running a command: wait for it, then fail the later ones. Nothing else outside the main
// lcore reads them: the metrics exporter's HTTP threads serve the copy made by the last
// update(), the prompt's reader thread only reads lines.
void Gateway::release() {
    telemetry_detach();
    if (pdump_) {
        rte_pdump_uninit();
    }
    for (uint16_t p : ports_) {
        dp::port_stop(p);
    }
    if (policy_ != nullptr) {
        policy_->set_acks(0, {});  // its acknowledgement source reads the workers
    }
    prompt_.reset();
    queries_.reset();
    watchdog_.reset();
    for (dp::Worker* w : workers_) {
        w->~Worker();
        rte_free(w);
    }
    workers_.clear();
    telemetry_.workers.clear();
    if (shaper_buckets_ != nullptr) {
        shaper_buckets_->~ShaperBuckets();
        rte_free(shaper_buckets_);
    }
    for (rte_ring* r : rings_) {
        rte_ring_free(r);
    }
    metrics_.reset();  // stops the HTTP threads
    policy_.reset();   // workers are gone: every snapshot can go
    hosts_.reset();
    rte_free(qsbr_);
    for (auto& [sock, pool] : pools_) {
        rte_mempool_free(pool);
    }
    rte_eal_cleanup();
}

} // namespace l7gate::ctl
