#pragma once
// Pre-flight checks: is this machine ready to run l7gate as configured?
//
// `l7gate [EAL options] -- [options] --preflight` runs every check and exits 0 (nothing fatal)
// or 2; every start runs the same checks and stops with exit 2 on a fatal finding. Each
// finding is one line naming the problem and the command that fixes it.
//
// Two stages:
//  - system checks, before EAL touches anything: hugepages (mounted, enough free pages on
//    the NUMA node of each port for its mbuf pool), NUMA placement of worker cores against
//    the ports they serve, the kernel driver of every PCI port (vfio-pci/uio, or a
//    bifurcated driver such as mlx5_core), IOMMU for vfio-pci, and the files of pcap vdevs.
//    They read the machine through a SystemView whose root directory tests replace with a
//    faked tree (sys/devices/system/node, sys/bus/pci/devices, proc/meminfo, proc/mounts).
//  - port checks, after the ports have started: link up within --link-timeout, MTU against
//    the mbuf data room, promiscuous mode. evaluate_ports() is pure; collect_ports() reads
//    the state from DPDK.

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "control/ops/options.hpp"

namespace l7gate::ctl {

enum class Severity { Ok, Info, Warning, Fatal };

struct Finding {
    Severity severity = Severity::Ok;
    std::string check;    // hugepages, numa, pci, iommu, vdev, cores, link, mtu, promiscuous
    std::string message;  // what was found
    std::string fix;      // the command or setting that fixes it ("" when nothing to do)

    // "preflight: FATAL pci: ... -- fix: ..."
    std::string line() const;
};

bool has_fatal(const std::vector<Finding>& findings);

// What the EAL arguments ask for, as far as pre-flight needs to know (DPDK parses them for
// real afterwards; what is not understood here is left to it).
struct EalPlan {
    std::vector<std::string> pci;     // -a / --allow / -w, without device arguments
    std::vector<std::string> vdevs;   // --vdev specs as given
    std::vector<unsigned> cpus;       // CPUs of the lcores (-l, --lcores, -c); main first
    bool cores_given = false;
    bool no_huge = false;
    bool in_memory = false;
    bool no_pci = false;
    uint64_t mem_mb = 0;                 // -m
    std::vector<uint64_t> socket_mem_mb; // --socket-mem
    std::string huge_dir;                // --huge-dir
};

// argv[1, eal_argc) (everything before "--").
EalPlan parse_eal_args(int eal_argc, char** argv);
EalPlan parse_eal_args(const std::vector<std::string>& args);

// Parses a CPU list "0-3,8,10-11" (also used by sysfs cpulist files). false when malformed.
bool parse_cpu_list(const std::string& s, std::vector<unsigned>& out);

// Memory l7gate will ask DPDK for, derived from the options the way main.cpp sizes things.
struct MemoryNeed {
    uint32_t mbufs = 0;             // per pool
    uint32_t shaper_backlog = 0;    // per worker (dp::PoolSizing::shaper_backlog_cap)
    uint64_t pool_bytes = 0;        // one mbuf pool (one per NUMA node that has ports)
    uint64_t worker_bytes = 0;      // flow table, fragments, nDPI states and arena, per worker
};
MemoryNeed estimate_memory(const Options& opt, size_t nb_ports);

// The machine as pre-flight sees it: files read under `root` ("/" for the real system).
class SystemView {
public:
    explicit SystemView(std::string root = "/") : root_(std::move(root)) {}
    // Contents of root/path ("" when unreadable); path is absolute ("/proc/meminfo").
    std::string read(const std::string& path) const;
    bool exists(const std::string& path) const;
    // Target name of a symbolic link's last component ("vfio-pci" for .../driver), "" if none.
    std::string link_name(const std::string& path) const;
    std::vector<std::string> list(const std::string& dir) const;  // sorted entry names
    std::string path(const std::string& p) const;                 // root + p

private:
    std::string root_;
};

struct NumaNode {
    int id = 0;
    std::vector<unsigned> cpus;
    uint64_t hugepage_free_bytes = 0;  // every page size
};
std::vector<NumaNode> read_numa_nodes(const SystemView& sys);
int cpu_node(const std::vector<NumaNode>& nodes, unsigned cpu);   // -1 when unknown

// The checks. workers: the number of worker lcores l7gate will use (--rxq).
std::vector<Finding> check_hugepages(const SystemView& sys, const EalPlan& eal, const MemoryNeed& need,
                                     unsigned workers);
std::vector<Finding> check_pci(const SystemView& sys, const EalPlan& eal);
std::vector<Finding> check_numa(const SystemView& sys, const EalPlan& eal, unsigned workers);
std::vector<Finding> check_vdevs(const SystemView& sys, const EalPlan& eal);

// Every system check, in order.
std::vector<Finding> preflight_system(const SystemView& sys, const EalPlan& eal, const Options& opt);

// Port state after start (from DPDK, or made up by tests).
struct PortState {
    uint16_t port = 0;
    std::string name;        // PCI address or vdev name
    std::string driver;
    bool is_pci = false;
    int socket = -1;
    bool link_up = false;
    uint32_t speed_mbps = 0;
    uint16_t mtu = 1500;
    uint32_t max_rx_pktlen = 0;   // 0 = unknown
    uint32_t mbuf_data_room = 0;  // bytes of packet data one mbuf holds
    bool scatter = false;         // receives a longer frame into a chain of mbufs (dp::port_scatters)
    int promiscuous = -1;         // 1 on, 0 off, -1 unknown
};
std::vector<Finding> evaluate_ports(const std::vector<PortState>& ports, double link_timeout_s);

// Reads the ports' state from DPDK (EAL up, ports started), polling the links until all are
// up or timeout_s has passed.
// data_room: the pools' mbuf data room.
std::vector<PortState> collect_ports(const std::vector<uint16_t>& ports, double timeout_s, uint32_t data_room);

// Prints findings: to `out` with OK and info lines when verbose (--preflight), else only
// warnings and fatal ones (to stderr at start). Returns the number of fatal findings.
unsigned print_findings(std::FILE* out, const std::vector<Finding>& findings, bool verbose);

// The two hooks main.cpp calls. Each returns -1 to go on, else the exit status.
// Before EAL: the system checks (has_separator: "--" was given, so argv[1, eal_argc) are EAL's
// options; without it, --preflight checks the machine alone and exits).
int preflight_before_eal(int eal_argc, char** argv, bool has_separator, const Options& opt);
// After the ports started: the port checks; with --preflight, always an exit status.
int preflight_after_start(const std::vector<uint16_t>& ports, const Options& opt, uint32_t data_room);

} // namespace l7gate::ctl
