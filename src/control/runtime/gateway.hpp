#pragma once
// The running gateway, as main() composes it: options in, then EAL, ports and mbuf pools,
// names and policy, the workers on their lcores, the control services, the run, the stop.
// Each phase is one member function; a start-up failure prints one line and exits 2
// (after closing the ports when EAL is up). docs/architecture.md draws what each phase
// creates and who owns it.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/base/ndpi_names.hpp"
#include "control/hosts/host_scores.hpp"
#include "control/observe/telemetry.hpp"
#include "control/ops/options.hpp"
#include "control/policy/compiler.hpp"
#include "control/policy/geoip.hpp"
#include "control/records/flow_log.hpp"
#include "control/records/ipfix_export.hpp"
#include "control/records/record_stream.hpp"
#include "control/runtime/service.hpp"

struct rte_mempool;
struct rte_rcu_qsbr;
struct rte_ring;

namespace l7gate::dp {
class Worker;
struct ShaperBuckets;
}

namespace l7gate::ctl {

class KafkaSink;
class MetricsExporter;
class PolicyManager;
class Prompt;
class Watchdog;
class WorkerQueries;

// What the command line asks for before any DPDK call: nothing (run the gateway), or an
// exit code (help, version, an offline policy tool, a bad option, a pre-flight stop).
std::optional<int> handle_command_line(int argc, char** argv, Options& opt, int& eal_argc);

class Gateway {
public:
    explicit Gateway(Options& opt);
    ~Gateway();
    Gateway(const Gateway&) = delete;
    Gateway& operator=(const Gateway&) = delete;

    void start_eal(int eal_argc, char** argv);
    void open_ports();     // checks, mbuf pools, start, pre-flight of the ports
    void load_policy();    // nDPI names, GeoIP, the first policy snapshot
    // The record stream and its sinks (flow log, event log); `reopen` is set by SIGUSR1.
    void open_records(std::atomic<bool>& reopen);
    void make_workers();   // one per queue, with its rings
    void make_services();  // telemetry, metrics, watchdog, prompt
    // Launches the workers and runs the control loop until a stop condition; returns why.
    std::string run(const std::atomic<bool>& stop, std::atomic<bool>& reload);
    // Stops the workers, drains what they flushed, reports, frees everything. Exit code.
    int stop(const std::string& why);

private:
    // A flow-record sink is configured (flow log, IPFIX, Kafka): workers get record rings.
    bool has_record_sink() const { return !opt_.flow_log.empty() || !opt_.ipfix.empty() || !opt_.kafka.empty(); }
    void report(double elapsed, int& rc);  // summary, --stats-json, final metrics
    void release();

    Options& opt_;
    std::vector<uint16_t> ports_;
    std::vector<uint16_t> peer_of_;
    std::vector<unsigned> lcores_;
    std::map<int, rte_mempool*> pools_;
    uint32_t mbufs_ = 0;
    uint32_t shaper_backlog_ = 0;
    uint32_t data_room_ = 0;  // the pools' mbuf data room (--mtu, dp::mbuf_data_room)
    int ts_offset_ = -1;
    uint64_t ts_flag_ = 0;
    bool pdump_ = false;

    NdpiNames names_;
    GeoIpDb geo_;
    ReasonRegistry reasons_;
    ShaperSlots shaper_slots_;
    rte_rcu_qsbr* qsbr_ = nullptr;
    std::unique_ptr<PolicyManager> policy_;
    RecordStream records_;
    FlowLog flow_log_{"flow_log"};
    FlowLog event_log_{"event_log"};
    IpfixExporter ipfix_;
    std::unique_ptr<KafkaSink> kafka_;  // --kafka
    EventTee events_;                   // host events: the event or flow log, the Kafka events topic
    std::unique_ptr<HostScores> hosts_;
    dp::ShaperBuckets* shaper_buckets_ = nullptr;
    std::vector<dp::Worker*> workers_;
    std::vector<rte_ring*> rings_;
    TelemetryContext telemetry_;
    std::unique_ptr<MetricsExporter> metrics_;
    std::unique_ptr<Watchdog> watchdog_;
    std::unique_ptr<WorkerQueries> queries_;
    std::unique_ptr<Prompt> prompt_;
    std::vector<ServiceStats> services_;  // the services' figures when the loop returned
    double started_ = 0;  // steady-clock seconds at launch
};

} // namespace l7gate::ctl
