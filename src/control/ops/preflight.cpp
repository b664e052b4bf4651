#include "control/ops/preflight.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "dataplane/port.hpp"
#include "dataplane/worker.hpp"

namespace l7gate::ctl {

namespace {

constexpr uint64_t kMiB = 1024 * 1024;
// EAL's memory with --no-huge and no -m (MEMSIZE_IF_NO_HUGE_PAGE in DPDK 22.11).
constexpr uint64_t kNoHugeDefaultMb = 64;

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.pop_back();
    }
    size_t b = 0;
    while (b < s.size() && (s[b] == ' ' || s[b] == '\t')) {
        ++b;
    }
    return s.substr(b);
}

std::string mib(uint64_t bytes) { return std::to_string((bytes + kMiB - 1) / kMiB) + " MiB"; }

std::string join_cpus(const std::vector<unsigned>& v) {
    std::string s;
    for (unsigned c : v) {
        s += (s.empty() ? "" : ",") + std::to_string(c);
    }
    return s;
}

// "0000:3b:00.0" from "3b:00.0" or "0000:3b:00.0,devarg=1".
std::string normalise_pci(const std::string& spec) {
    std::string a = spec.substr(0, spec.find(','));
    if (std::count(a.begin(), a.end(), ':') == 1) {
        a = "0000:" + a;
    }
    std::transform(a.begin(), a.end(), a.begin(), [](unsigned char c) { return std::tolower(c); });
    return a;
}

bool parse_uint(const std::string& s, unsigned long& out, int base = 10) {
    if (s.empty()) {
        return false;
    }
    char* end = nullptr;
    errno = 0;
    out = std::strtoul(s.c_str(), &end, base);
    return errno == 0 && end != s.c_str() && *end == '\0';
}

// CPU set of one --lcores group: "3", "(3-5)", "(3,7)".
bool parse_group(std::string s, std::vector<unsigned>& out) {
    if (s.size() >= 2 && s.front() == '(' && s.back() == ')') {
        s = s.substr(1, s.size() - 2);
    }
    return parse_cpu_list(s, out);
}

// --lcores: "0-3", "0@0,1@2", "(0-1)@(2-3)". Returns lcore id -> CPU (the first of its set).
bool parse_lcores(const std::string& s, std::map<unsigned, unsigned>& out) {
    std::vector<std::string> items;
    int depth = 0;
    std::string cur;
    for (char c : s) {
        depth += c == '(' ? 1 : c == ')' ? -1 : 0;
        if (c == ',' && depth == 0) {
            items.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    items.push_back(cur);
    for (const std::string& item : items) {
        const size_t at = item.find('@');
        std::vector<unsigned> lcores;
        std::vector<unsigned> cpus;
        if (!parse_group(item.substr(0, at), lcores)) {
            return false;
        }
        if (at != std::string::npos) {
            if (!parse_group(item.substr(at + 1), cpus) || cpus.empty()) {
                return false;
            }
        }
        for (unsigned l : lcores) {
            out[l] = cpus.empty() ? l : cpus.front();
        }
    }
    return true;
}

Finding make(Severity sev, const char* check, std::string msg, std::string fix = {}) {
    return Finding{sev, check, std::move(msg), std::move(fix)};
}

// Page size in bytes from a sysfs directory name "hugepages-2048kB".
uint64_t page_bytes(const std::string& dir) {
    unsigned long kb = 0;
    const size_t dash = dir.find('-');
    const size_t k = dir.find("kB");
    if (dash == std::string::npos || k == std::string::npos || !parse_uint(dir.substr(dash + 1, k - dash - 1), kb)) {
        return 0;
    }
    return uint64_t{kb} * 1024;
}

uint64_t read_u64(const SystemView& sys, const std::string& p) {
    unsigned long v = 0;
    return parse_uint(trim(sys.read(p)), v) ? v : 0;
}

// Free hugepage bytes under a ".../hugepages" directory (every page size).
uint64_t free_huge_bytes(const SystemView& sys, const std::string& dir) {
    uint64_t total = 0;
    for (const std::string& d : sys.list(dir)) {
        total += read_u64(sys, dir + "/" + d + "/free_hugepages") * page_bytes(d);
    }
    return total;
}

// The page size hugepage fixes are given in: 2 MiB when the machine offers it.
std::string default_page_dir(const SystemView& sys) {
    const auto dirs = sys.list("/sys/kernel/mm/hugepages");
    for (const std::string& d : dirs) {
        if (d == "hugepages-2048kB") {
            return d;
        }
    }
    return dirs.empty() ? std::string("hugepages-2048kB") : dirs.front();
}

int pci_node(const SystemView& sys, const std::string& addr) {
    const std::string s = trim(sys.read("/sys/bus/pci/devices/" + addr + "/numa_node"));
    if (s.empty()) {
        return -1;
    }
    return std::atoi(s.c_str());
}

unsigned worker_count(const EalPlan& eal, unsigned rxq) {
    if (!eal.cores_given) {
        return rxq;
    }
    const unsigned avail = eal.cpus.empty() ? 0 : static_cast<unsigned>(eal.cpus.size() - 1);
    return std::min(rxq, avail);
}

} // namespace

std::string Finding::line() const {
    static const char* names[] = {"OK", "info", "WARNING", "FATAL"};
    std::string s = std::string("preflight: ") + names[static_cast<int>(severity)] + " " + check + ": " + message;
    if (!fix.empty()) {
        s += " -- fix: " + fix;
    }
    return s;
}

bool has_fatal(const std::vector<Finding>& findings) {
    return std::any_of(findings.begin(), findings.end(), [](const Finding& f) { return f.severity == Severity::Fatal; });
}

bool parse_cpu_list(const std::string& s, std::vector<unsigned>& out) {
    const std::string t = trim(s);
    if (t.empty()) {
        return true;  // an empty sysfs list (a node without CPUs)
    }
    std::stringstream ss(t);
    std::string item;
    while (std::getline(ss, item, ',')) {
        const size_t dash = item.find('-');
        unsigned long a = 0;
        unsigned long b = 0;
        if (dash == std::string::npos) {
            if (!parse_uint(item, a)) {
                return false;
            }
            b = a;
        } else if (!parse_uint(item.substr(0, dash), a) || !parse_uint(item.substr(dash + 1), b) || b < a ||
                   b - a > 4096) {
            return false;
        }
        for (unsigned long c = a; c <= b; ++c) {
            out.push_back(static_cast<unsigned>(c));
        }
    }
    return true;
}

EalPlan parse_eal_args(int eal_argc, char** argv) {
    std::vector<std::string> args;
    for (int i = 1; i < eal_argc; ++i) {
        args.emplace_back(argv[i]);
    }
    return parse_eal_args(args);
}

EalPlan parse_eal_args(const std::vector<std::string>& args) {
    EalPlan plan;
    std::map<unsigned, unsigned> lcores;  // lcore -> cpu
    long main_lcore = -1;
    // EAL options that take a value (so the value is never read as an option).
    static const std::set<std::string> valued = {
        "-a", "--allow", "-w", "--pci-whitelist", "-b", "--block", "--pci-blacklist", "--vdev", "-l", "--lcores",
        "-c", "-n", "-r", "-m", "--socket-mem", "--socket-limit", "--huge-dir", "--file-prefix", "--proc-type",
        "--log-level", "--base-virtaddr", "--iova-mode", "--main-lcore", "--master-lcore", "-d", "--vfio-intr",
        "--vfio-vf-token", "--mbuf-pool-ops-name", "--service-corelist", "-s", "--service-coremask",
        "--trace", "--trace-dir", "--trace-bufsz", "--trace-mode", "--huge-worker-stack"};
    for (size_t i = 0; i < args.size(); ++i) {
        std::string name = args[i];
        std::string value;
        bool has_value = false;
        if (name.rfind("--", 0) == 0) {
            const size_t eq = name.find('=');
            if (eq != std::string::npos) {
                value = name.substr(eq + 1);
                name = name.substr(0, eq);
                has_value = true;
            }
        } else if (name.size() > 2 && name[0] == '-' && valued.count(name.substr(0, 2)) != 0) {
            value = name.substr(2);  // -l0-3, -a0000:3b:00.0
            name = name.substr(0, 2);
            has_value = true;
        }
        if (!has_value && valued.count(name) != 0 && i + 1 < args.size()) {
            value = args[++i];
            has_value = true;
        }
        if (name == "-a" || name == "--allow" || name == "-w" || name == "--pci-whitelist") {
            plan.pci.push_back(normalise_pci(value));
        } else if (name == "--vdev") {
            plan.vdevs.push_back(value);
        } else if (name == "-l") {
            std::vector<unsigned> cpus;
            if (parse_cpu_list(value, cpus)) {
                for (unsigned c : cpus) {
                    lcores[c] = c;
                }
                plan.cores_given = true;
            }
        } else if (name == "--lcores") {
            plan.cores_given = parse_lcores(value, lcores);
        } else if (name == "-c") {
            unsigned long long mask = std::strtoull(value.c_str(), nullptr, 16);
            for (unsigned c = 0; c < 64; ++c) {
                if ((mask >> c) & 1) {
                    lcores[c] = c;
                }
            }
            plan.cores_given = mask != 0;
        } else if (name == "--main-lcore" || name == "--master-lcore") {
            main_lcore = std::atol(value.c_str());
        } else if (name == "--no-huge") {
            plan.no_huge = true;
        } else if (name == "--in-memory") {
            plan.in_memory = true;
        } else if (name == "--no-pci") {
            plan.no_pci = true;
        } else if (name == "-m") {
            unsigned long v = 0;
            plan.mem_mb = parse_uint(value, v) ? v : 0;
        } else if (name == "--socket-mem") {
            std::stringstream ss(value);
            std::string item;
            while (std::getline(ss, item, ',')) {
                unsigned long v = 0;
                plan.socket_mem_mb.push_back(parse_uint(item, v) ? v : 0);
            }
        } else if (name == "--huge-dir") {
            plan.huge_dir = value;
        }
    }
    // CPUs in lcore order, the main lcore (the lowest id unless --main-lcore) first.
    if (main_lcore >= 0 && lcores.count(static_cast<unsigned>(main_lcore)) != 0) {
        plan.cpus.push_back(lcores[static_cast<unsigned>(main_lcore)]);
        lcores.erase(static_cast<unsigned>(main_lcore));
    }
    for (auto [l, c] : lcores) {
        plan.cpus.push_back(c);
    }
    return plan;
}

MemoryNeed estimate_memory(const Options& opt, size_t nb_ports) {
    MemoryNeed m;
    // main.cpp's sizing (dp::PoolSizing): every RX and TX ring, the worker caches and bursts
    // and each worker's shaper backlog, at least 8191.
    dp::PoolSizing sizing;
    sizing.workers = opt.rxq;
    sizing.ports = static_cast<unsigned>(nb_ports);
    sizing.rx_desc = opt.rx_desc;
    sizing.tx_desc = opt.tx_desc;
    sizing.first_flight_segments = opt.ff_bytes != 0 ? uint64_t{4} * opt.ff_flows : 0;
    m.mbufs = opt.mbufs != 0 ? opt.mbufs : static_cast<uint32_t>(std::max<uint64_t>(sizing.default_mbufs(), 8191));
    m.shaper_backlog = sizing.shaper_backlog_cap(m.mbufs);
    // An mbuf element: rte_mbuf (128) + headroom and data room + the mempool's header. Before
    // EAL the ports are unknown: a --mtu whose frames do not fit 2 KiB is sized for mbufs that
    // hold a whole frame (at most: ports that scatter keep 2 KiB mbufs).
    const uint64_t elem = dp::mbuf_element_bytes(dp::mbuf_data_room(opt.mtu != 0 ? opt.mtu : dp::kMtuDefault, false));
    m.pool_bytes = uint64_t{m.mbufs} * elem;
    // Per worker: flow entries (128) + index (16) + free stack (4); side records (120);
    // nDPI flow states (704 + counters); the nDPI arena (from --dpi-flows); fragment entries.
    const uint32_t dpi = opt.dpi_flows != 0 ? opt.dpi_flows : std::max<uint32_t>(opt.flows / 4, 1024);
    m.worker_bytes = uint64_t{opt.flows} * (128 + 16 + 4 + 120) + uint64_t{dpi} * (704 + 6) +
                     dp::NdpiArena::bytes_for(dpi) + uint64_t{opt.frags} * 64;
    if (!opt.ipfix.empty() && opt.ipfix_active_s != 0) {
        m.worker_bytes += uint64_t{opt.flows} * 40;  // --ipfix-active-timeout: last report per entry
    }
    return m;
}

// ---------------------------------------------------------------------------------------------
// SystemView

std::string SystemView::path(const std::string& p) const {
    if (root_.empty() || root_ == "/") {
        return p;
    }
    return root_ + p;
}

std::string SystemView::read(const std::string& p) const {
    std::ifstream f(path(p));
    if (!f) {
        return {};
    }
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

bool SystemView::exists(const std::string& p) const {
    struct stat st{};
    return ::lstat(path(p).c_str(), &st) == 0;  // sysfs links count even when dangling
}

std::string SystemView::link_name(const std::string& p) const {
    char buf[4096];
    const ssize_t n = ::readlink(path(p).c_str(), buf, sizeof(buf) - 1);
    if (n <= 0) {
        return {};
    }
    std::string target(buf, static_cast<size_t>(n));
    const size_t slash = target.rfind('/');
    return slash == std::string::npos ? target : target.substr(slash + 1);
}

std::vector<std::string> SystemView::list(const std::string& dir) const {
    std::vector<std::string> out;
    DIR* d = ::opendir(path(dir).c_str());
    if (d == nullptr) {
        return out;
    }
    while (dirent* e = ::readdir(d)) {
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
            out.emplace_back(e->d_name);
        }
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<NumaNode> read_numa_nodes(const SystemView& sys) {
    std::vector<NumaNode> nodes;
    for (const std::string& d : sys.list("/sys/devices/system/node")) {
        unsigned long id = 0;
        if (d.rfind("node", 0) != 0 || !parse_uint(d.substr(4), id)) {
            continue;
        }
        NumaNode n;
        n.id = static_cast<int>(id);
        const std::string base = "/sys/devices/system/node/" + d;
        parse_cpu_list(sys.read(base + "/cpulist"), n.cpus);
        n.hugepage_free_bytes = free_huge_bytes(sys, base + "/hugepages");
        nodes.push_back(std::move(n));
    }
    std::sort(nodes.begin(), nodes.end(), [](const NumaNode& a, const NumaNode& b) { return a.id < b.id; });
    return nodes;
}

int cpu_node(const std::vector<NumaNode>& nodes, unsigned cpu) {
    for (const NumaNode& n : nodes) {
        if (std::find(n.cpus.begin(), n.cpus.end(), cpu) != n.cpus.end()) {
            return n.id;
        }
    }
    return -1;
}

// ---------------------------------------------------------------------------------------------
// System checks

std::vector<Finding> check_hugepages(const SystemView& sys, const EalPlan& eal, const MemoryNeed& need,
                                     unsigned workers) {
    std::vector<Finding> out;
    // One mbuf pool per NUMA node that has ports (vdevs and unknown nodes count as node 0).
    std::set<int> pool_nodes;
    if (!eal.no_pci) {
        for (const std::string& a : eal.pci) {
            pool_nodes.insert(std::max(pci_node(sys, a), 0));
        }
    }
    if (pool_nodes.empty() || !eal.vdevs.empty()) {
        pool_nodes.insert(0);
    }
    const uint64_t pools = need.pool_bytes * pool_nodes.size();
    const uint64_t total = pools + need.worker_bytes * workers;
    const std::string sizing = std::to_string(pool_nodes.size()) + " mbuf pool(s) of " + std::to_string(need.mbufs) +
                               " mbufs (" + mib(need.pool_bytes) + " each) and about " + mib(need.worker_bytes) +
                               " of tables per worker (" + std::to_string(workers) + ")";

    if (eal.no_huge) {
        const uint64_t mem = (eal.mem_mb != 0 ? eal.mem_mb : kNoHugeDefaultMb) * kMiB;
        const std::string have = "--no-huge with " + mib(mem) + (eal.mem_mb != 0 ? " (-m)" : " (EAL's default without -m)");
        if (mem < pools) {
            out.push_back(make(Severity::Fatal, "memory", have + " cannot hold " + sizing,
                               "-m " + std::to_string(total / kMiB + 64) + ", or lower --mbufs"));
        } else if (mem < total) {
            out.push_back(make(Severity::Warning, "memory", have + " is short of " + sizing,
                               "-m " + std::to_string(total / kMiB + 64) + ", or lower --flows/--dpi-flows"));
        } else {
            out.push_back(make(Severity::Ok, "memory", have + " holds " + sizing +
                                                           " (no hugepages: for virtual devices and tests, not line rate)"));
        }
        return out;
    }

    // Mounted hugetlbfs (not needed with --in-memory, which maps hugepages without files).
    std::vector<std::string> mounts;
    {
        std::stringstream ss(sys.read("/proc/mounts"));
        std::string line;
        while (std::getline(ss, line)) {
            std::stringstream ls(line);
            std::string dev;
            std::string dir;
            std::string type;
            ls >> dev >> dir >> type;
            if (type == "hugetlbfs") {
                mounts.push_back(dir);
            }
        }
    }
    if (!eal.huge_dir.empty() && std::find(mounts.begin(), mounts.end(), eal.huge_dir) == mounts.end()) {
        out.push_back(make(Severity::Fatal, "hugepages", "--huge-dir " + eal.huge_dir + " is not a hugetlbfs mount",
                           "mkdir -p " + eal.huge_dir + " && mount -t hugetlbfs nodev " + eal.huge_dir));
    } else if (mounts.empty() && !eal.in_memory) {
        out.push_back(make(Severity::Fatal, "hugepages", "no hugetlbfs file system is mounted",
                           "mount -t hugetlbfs nodev /dev/hugepages (systemd's dev-hugepages.mount does it at "
                           "boot), or run EAL with --in-memory"));
    } else {
        out.push_back(make(Severity::Ok, "hugepages",
                           eal.in_memory ? std::string("--in-memory: no hugetlbfs mount needed")
                                         : "hugetlbfs mounted at " + (eal.huge_dir.empty() ? mounts.front() : eal.huge_dir)));
    }

    const std::string pdir = default_page_dir(sys);
    const uint64_t psize = std::max<uint64_t>(page_bytes(pdir), 2 * kMiB);
    auto pages_for = [&](uint64_t bytes) { return std::to_string((bytes + psize - 1) / psize); };
    // nr_hugepages is the total reserved: the pages others use now plus what l7gate needs.
    auto target = [&](const std::string& dir, uint64_t bytes) {
        const uint64_t nr = read_u64(sys, dir + "/" + pdir + "/nr_hugepages");
        const uint64_t fr = read_u64(sys, dir + "/" + pdir + "/free_hugepages");
        return std::to_string((nr > fr ? nr - fr : 0) + (bytes + psize - 1) / psize);
    };
    const std::string global = "/sys/kernel/mm/hugepages";
    const uint64_t free_total = free_huge_bytes(sys, "/sys/kernel/mm/hugepages");
    if (free_total == 0) {
        out.push_back(make(Severity::Fatal, "hugepages", "no free hugepages; l7gate needs " + mib(total) + " for " + sizing,
                           "echo " + target(global, total + 256 * kMiB) + " > /sys/kernel/mm/hugepages/" + pdir +
                               "/nr_hugepages (at boot: hugepages=" + pages_for(total + 256 * kMiB) +
                               " on the kernel command line)"));
        return out;
    }
    if (free_total < pools) {
        out.push_back(make(Severity::Fatal, "hugepages", mib(free_total) + " of free hugepages cannot hold " + sizing,
                           "echo " + target(global, total + 256 * kMiB) + " > /sys/kernel/mm/hugepages/" + pdir +
                               "/nr_hugepages, or lower --mbufs"));
    } else if (free_total < total) {
        out.push_back(make(Severity::Warning, "hugepages", mib(free_total) + " of free hugepages is short of " + sizing,
                           "echo " + target(global, total + 256 * kMiB) + " > /sys/kernel/mm/hugepages/" + pdir +
                               "/nr_hugepages, or lower --flows/--dpi-flows"));
    } else {
        out.push_back(make(Severity::Ok, "hugepages", mib(free_total) + " of free hugepages hold " + sizing));
    }
    if (eal.mem_mb != 0 && eal.mem_mb * kMiB < pools) {
        out.push_back(make(Severity::Fatal, "memory", "-m " + std::to_string(eal.mem_mb) + " cannot hold " + sizing,
                           "-m " + std::to_string(total / kMiB + 64)));
    }

    // Each pool lives on its port's node: that node needs the free pages (and the socket
    // memory, with --socket-mem).
    const std::vector<NumaNode> nodes = read_numa_nodes(sys);
    if (nodes.size() > 1) {
        for (int n : pool_nodes) {
            auto it = std::find_if(nodes.begin(), nodes.end(), [&](const NumaNode& x) { return x.id == n; });
            const uint64_t have = it == nodes.end() ? 0 : it->hugepage_free_bytes;
            if (have < need.pool_bytes) {
                out.push_back(make(Severity::Fatal, "hugepages",
                                   "NUMA node " + std::to_string(n) + " has " + mib(have) +
                                       " of free hugepages; the mbuf pool of its ports (" + mib(need.pool_bytes) +
                                       ") is allocated there",
                                   "echo " +
                                       target("/sys/devices/system/node/node" + std::to_string(n) + "/hugepages",
                                              need.pool_bytes * 2 + need.worker_bytes * workers) +
                                       " > /sys/devices/system/node/node" + std::to_string(n) + "/hugepages/" + pdir +
                                       "/nr_hugepages"));
            }
        }
    }
    if (!eal.socket_mem_mb.empty()) {
        for (int n : pool_nodes) {
            const uint64_t mb = static_cast<size_t>(n) < eal.socket_mem_mb.size() ? eal.socket_mem_mb[n] : 0;
            if (mb * kMiB < need.pool_bytes) {
                out.push_back(make(Severity::Fatal, "memory",
                                   "--socket-mem gives node " + std::to_string(n) + " " + std::to_string(mb) +
                                       " MiB; its mbuf pool needs " + mib(need.pool_bytes),
                                   "--socket-mem with at least " + std::to_string(need.pool_bytes / kMiB + 1) +
                                       " for node " + std::to_string(n)));
            }
        }
    }
    return out;
}

std::vector<Finding> check_pci(const SystemView& sys, const EalPlan& eal) {
    std::vector<Finding> out;
    if (eal.no_pci) {
        return out;
    }
    if (eal.pci.empty()) {
        if (eal.vdevs.empty()) {
            out.push_back(make(Severity::Warning, "pci",
                               "no -a given: EAL takes every device bound to a DPDK driver, in bus order",
                               "name each port with -a DOMAIN:BUS:DEV.FN in /etc/l7gate/l7gate.conf"));
        }
        return out;
    }
    const bool noiommu = trim(sys.read("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode")) == "Y";
    for (const std::string& a : eal.pci) {
        const std::string base = "/sys/bus/pci/devices/" + a;
        if (!sys.exists(base)) {
            out.push_back(make(Severity::Fatal, "pci", "no PCI device " + a,
                               "dpdk-devbind.py --status-dev net lists the network devices and their addresses"));
            continue;
        }
        const std::string driver = sys.link_name(base + "/driver");
        const std::string vendor = trim(sys.read(base + "/vendor"));
        const bool mellanox = vendor == "0x15b3";
        std::string iface;
        for (const std::string& n : sys.list(base + "/net")) {
            iface = n;
        }
        const std::string who = a + (iface.empty() ? "" : " (" + iface + ")");
        if (mellanox) {
            // mlx4/mlx5 PMDs drive the NIC through the kernel driver (bifurcated), never vfio.
            if (driver == "mlx5_core" || driver == "mlx4_core") {
                out.push_back(make(Severity::Ok, "pci", who + ": " + driver +
                                                             " (Mellanox bifurcated driver: the DPDK PMD works "
                                                             "beside it through rdma-core)"));
            } else {
                out.push_back(make(Severity::Fatal, "pci",
                                   who + " is a Mellanox NIC bound to " + (driver.empty() ? "no driver" : driver) +
                                       "; DPDK's mlx5 PMD needs the kernel's mlx5_core",
                                   "dpdk-devbind.py --bind=mlx5_core " + a));
            }
            continue;
        }
        if (driver == "vfio-pci") {
            if (sys.exists(base + "/iommu_group")) {
                out.push_back(make(Severity::Ok, "pci", who + ": vfio-pci with an IOMMU group"));
            } else if (noiommu) {
                out.push_back(make(Severity::Warning, "iommu",
                                   who + ": vfio-pci in unsafe no-IOMMU mode (the NIC's DMA is not confined)",
                                   "enable VT-d / AMD-Vi in the BIOS and boot with intel_iommu=on iommu=pt"));
            } else {
                out.push_back(make(Severity::Fatal, "iommu", who + ": vfio-pci, but the device has no IOMMU group",
                                   "enable VT-d / AMD-Vi in the BIOS and boot with intel_iommu=on iommu=pt (or, "
                                   "without an IOMMU: echo 1 > "
                                   "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode)"));
            }
        } else if (driver == "uio_pci_generic" || driver == "igb_uio") {
            out.push_back(make(Severity::Info, "pci",
                               who + ": " + driver + " works, without DMA protection and with legacy interrupts only",
                               "dpdk-devbind.py --bind=vfio-pci " + a + " (needs an IOMMU)"));
        } else if (driver.empty()) {
            out.push_back(make(Severity::Fatal, "pci", who + " is bound to no driver",
                               "modprobe vfio-pci && dpdk-devbind.py --bind=vfio-pci " + a));
        } else {
            out.push_back(make(Severity::Fatal, "pci",
                               who + " is bound to the kernel driver " + driver + "; DPDK cannot use it",
                               (iface.empty() ? std::string() : "ip link set dev " + iface + " down && ") +
                                   "modprobe vfio-pci && dpdk-devbind.py --bind=vfio-pci " + a));
        }
    }
    return out;
}

std::vector<Finding> check_numa(const SystemView& sys, const EalPlan& eal, unsigned workers) {
    std::vector<Finding> out;
    const std::vector<NumaNode> nodes = read_numa_nodes(sys);
    std::vector<unsigned> online;
    parse_cpu_list(sys.read("/sys/devices/system/cpu/online"), online);
    // Cores: every lcore on an online CPU; workers on CPUs of their own.
    if (eal.cores_given) {
        for (unsigned c : eal.cpus) {
            if (!online.empty() && std::find(online.begin(), online.end(), c) == online.end()) {
                out.push_back(make(Severity::Fatal, "cores", "CPU " + std::to_string(c) + " of the core list is not online",
                                   "pick cores from " + trim(sys.read("/sys/devices/system/cpu/online")) + " (-l)"));
            }
        }
        std::vector<unsigned> wcpus(eal.cpus.begin() + (eal.cpus.empty() ? 0 : 1),
                                    eal.cpus.begin() + std::min<size_t>(eal.cpus.size(), 1 + workers));
        std::vector<unsigned> isolated;
        parse_cpu_list(sys.read("/sys/devices/system/cpu/isolated"), isolated);
        std::vector<unsigned> shared;
        for (unsigned c : wcpus) {
            if (std::find(isolated.begin(), isolated.end(), c) == isolated.end()) {
                shared.push_back(c);
            }
        }
        if (!shared.empty()) {
            out.push_back(make(Severity::Info, "cores",
                               "worker CPU(s) " + join_cpus(shared) + " are not isolated: the kernel may schedule "
                                                                     "other work there",
                               "isolcpus=" + join_cpus(wcpus) + " nohz_full=" + join_cpus(wcpus) + " rcu_nocbs=" +
                                   join_cpus(wcpus) + " on the kernel command line"));
        }
    }
    if (nodes.size() <= 1) {
        out.push_back(make(Severity::Ok, "numa", "one NUMA node: every port, core and pool is local"));
        return out;
    }
    // Ports' nodes.
    std::map<int, std::vector<std::string>> port_nodes;
    if (!eal.no_pci) {
        for (const std::string& a : eal.pci) {
            if (!sys.exists("/sys/bus/pci/devices/" + a)) {
                continue;  // reported by check_pci
            }
            const int n = pci_node(sys, a);
            if (n < 0) {
                out.push_back(make(Severity::Warning, "numa",
                                   a + ": the firmware reports no NUMA node (numa_node -1); DPDK puts its pool on node 0",
                                   "check the BIOS for NUMA / SRAT settings"));
            } else {
                port_nodes[n].push_back(a);
            }
        }
    }
    if (port_nodes.size() > 1) {
        std::string where;
        for (auto& [n, as] : port_nodes) {
            for (const std::string& a : as) {
                where += (where.empty() ? "" : ", ") + a + " on node " + std::to_string(n);
            }
        }
        out.push_back(make(Severity::Warning, "numa",
                           "ports on different NUMA nodes (" + where +
                               "): each worker serves every port, so some traffic crosses the interconnect",
                           "put the NICs in slots of one socket, or run one l7gate per socket"));
    }
    if (!eal.cores_given || port_nodes.empty()) {
        return out;
    }
    const int pnode = port_nodes.rbegin()->first == port_nodes.begin()->first ? port_nodes.begin()->first : -1;
    const size_t before = out.size();
    for (size_t i = 1; i < eal.cpus.size() && i <= workers; ++i) {
        const unsigned c = eal.cpus[i];
        const int n = cpu_node(nodes, c);
        if (pnode >= 0 && n != pnode) {
            auto it = std::find_if(nodes.begin(), nodes.end(), [&](const NumaNode& x) { return x.id == pnode; });
            std::string local;
            if (it != nodes.end()) {
                std::vector<unsigned> cpus = it->cpus;
                cpus.resize(std::min<size_t>(cpus.size(), workers + 1));
                local = join_cpus(cpus);
            }
            out.push_back(make(Severity::Warning, "numa",
                               "worker CPU " + std::to_string(c) + " is on node " + std::to_string(n) +
                                   ", its ports on node " + std::to_string(pnode) +
                                   ": every packet crosses the socket interconnect",
                               "take cores of node " + std::to_string(pnode) + " (-l " + local + ")"));
        }
    }
    if (pnode >= 0 && out.size() == before) {
        out.push_back(make(Severity::Ok, "numa", "ports, their mbuf pool and the workers on node " + std::to_string(pnode)));
    }
    return out;
}

std::vector<Finding> check_vdevs(const SystemView& sys, const EalPlan& eal) {
    std::vector<Finding> out;
    for (const std::string& spec : eal.vdevs) {
        std::stringstream ss(spec);
        std::string name;
        std::getline(ss, name, ',');
        std::string kv;
        bool bad = false;
        while (std::getline(ss, kv, ',')) {
            const size_t eq = kv.find('=');
            if (eq == std::string::npos) {
                continue;
            }
            const std::string k = kv.substr(0, eq);
            const std::string v = kv.substr(eq + 1);
            if (k == "rx_pcap") {
                if (::access(v.c_str(), R_OK) != 0) {
                    out.push_back(make(Severity::Fatal, "vdev",
                                       name + ": rx_pcap " + v + " cannot be read: " + std::strerror(errno),
                                       "give an existing pcap file"));
                    bad = true;
                }
            } else if (k == "tx_pcap") {
                const size_t slash = v.rfind('/');
                const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : v.substr(0, slash);
                if (::access(dir.c_str(), W_OK) != 0) {
                    out.push_back(make(Severity::Fatal, "vdev",
                                       name + ": tx_pcap " + v + " cannot be written (" + dir + ": " +
                                           std::strerror(errno) + ")",
                                       "create " + dir + " or point tx_pcap elsewhere"));
                    bad = true;
                }
            } else if (k == "iface" || k == "rx_iface" || k == "tx_iface" || k == "rx_iface_in") {
                if (!sys.exists("/sys/class/net/" + v)) {
                    out.push_back(make(Severity::Fatal, "vdev", name + ": no network interface " + v,
                                       "ip link shows the interfaces"));
                    bad = true;
                }
            }
        }
        if (!bad) {
            out.push_back(make(Severity::Ok, "vdev", name + ": its files and interfaces are there"));
        }
    }
    return out;
}

std::vector<Finding> preflight_system(const SystemView& sys, const EalPlan& eal, const Options& opt) {
    const unsigned workers = worker_count(eal, opt.rxq);
    const size_t nb_ports = opt.pairs.size() * 2;
    std::vector<Finding> out = check_hugepages(sys, eal, estimate_memory(opt, nb_ports), std::max(workers, 1u));
    auto add = [&](std::vector<Finding> v) { out.insert(out.end(), v.begin(), v.end()); };
    add(check_numa(sys, eal, workers));
    add(check_pci(sys, eal));
    add(check_vdevs(sys, eal));
    return out;
}

// ---------------------------------------------------------------------------------------------
// Port checks

std::vector<Finding> evaluate_ports(const std::vector<PortState>& ports, double link_timeout_s) {
    std::vector<Finding> out;
    char secs[32];
    std::snprintf(secs, sizeof(secs), "%g", link_timeout_s);
    for (const PortState& p : ports) {
        const std::string who = "port " + std::to_string(p.port) + " (" + p.name + ", " + p.driver + ")";
        if (p.link_up) {
            out.push_back(make(Severity::Ok, "link", who + ": up" +
                                                         (p.speed_mbps != 0 ? ", " + std::to_string(p.speed_mbps) + " Mbit/s"
                                                                            : std::string())));
        } else {
            out.push_back(make(Severity::Warning, "link",
                               who + ": link down after " + secs + " s; l7gate forwards once it comes up",
                               "check the cable, the transceiver and the neighbour's port (a DPDK-bound port "
                               "is invisible to ethtool: look at the switch side)"));
        }
        // The largest frame (MTU + Ethernet header, two VLAN tags, CRC) must fit one mbuf's
        // data room, or the port must scatter it over several (--mtu).
        const uint32_t frame = uint32_t{p.mtu} + 14 + 8 + 4;
        if (p.mbuf_data_room != 0 && frame > p.mbuf_data_room && p.scatter) {
            out.push_back(make(Severity::Ok, "mtu",
                               who + ": MTU " + std::to_string(p.mtu) + ", scattered RX: a frame spans up to " +
                                   std::to_string((frame + p.mbuf_data_room - 1) / p.mbuf_data_room) +
                                   " mbufs of " + std::to_string(p.mbuf_data_room) + " bytes"));
        } else if (p.mbuf_data_room != 0 && frame > p.mbuf_data_room) {
            out.push_back(make(Severity::Fatal, "mtu",
                               who + ": MTU " + std::to_string(p.mtu) + " makes frames of up to " +
                                   std::to_string(frame) + " bytes, one mbuf holds " +
                                   std::to_string(p.mbuf_data_room),
                               "start l7gate with --mtu " + std::to_string(p.mtu) +
                                   " (mbufs that hold a whole frame, or scattered RX), or lower the neighbours' MTU"));
        } else if (p.max_rx_pktlen != 0 && p.max_rx_pktlen < frame) {
            out.push_back(make(Severity::Warning, "mtu",
                               who + ": receives frames of at most " + std::to_string(p.max_rx_pktlen) +
                                   " bytes, below MTU " + std::to_string(p.mtu) + " with two VLAN tags",
                               "lower the neighbours' MTU to " + std::to_string(p.max_rx_pktlen - 26)));
        } else {
            out.push_back(make(Severity::Ok, "mtu",
                               who + ": MTU " + std::to_string(p.mtu) + " fits one mbuf" +
                                   (p.mbuf_data_room > dp::kDefaultDataRoom
                                        ? " (" + std::to_string(p.mbuf_data_room) + " bytes: the port cannot scatter)"
                                        : std::string())));
        }
        // A bridge sees frames for any MAC only in promiscuous mode (virtual devices have none).
        if (p.is_pci && p.promiscuous == 0) {
            out.push_back(make(Severity::Fatal, "promiscuous",
                               who + ": promiscuous mode refused; the bridge would only see frames for its own MAC",
                               "for an SR-IOV VF: ip link set PF vf N trust on spoofchk off; better, give l7gate "
                               "the physical function"));
        }
    }
    return out;
}

std::vector<PortState> collect_ports(const std::vector<uint16_t>& ports, double timeout_s, uint32_t data_room) {
    std::vector<PortState> out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    for (;;) {
        bool all_up = true;
        for (uint16_t p : ports) {
            rte_eth_link link{};
            if (rte_eth_link_get_nowait(p, &link) != 0 || link.link_status != RTE_ETH_LINK_UP) {
                all_up = false;
            }
        }
        if (all_up || std::chrono::steady_clock::now() >= deadline) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    for (uint16_t p : ports) {
        PortState s;
        s.port = p;
        rte_eth_dev_info info{};
        if (rte_eth_dev_info_get(p, &info) == 0) {
            s.driver = info.driver_name != nullptr ? info.driver_name : "unknown";
            if (info.device != nullptr) {
                s.name = rte_dev_name(info.device);
                const rte_bus* bus = rte_dev_bus(info.device);
                s.is_pci = bus != nullptr && std::strcmp(rte_bus_name(bus), "pci") == 0;
            }
            s.max_rx_pktlen = info.max_rx_pktlen;
        }
        s.socket = rte_eth_dev_socket_id(p);
        rte_eth_link link{};
        if (rte_eth_link_get_nowait(p, &link) == 0) {
            s.link_up = link.link_status == RTE_ETH_LINK_UP;
            s.speed_mbps = link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : link.link_speed;
        }
        uint16_t mtu = 0;
        if (rte_eth_dev_get_mtu(p, &mtu) == 0) {
            s.mtu = mtu;
        }
        s.mbuf_data_room = data_room;  // the Gateway's pools (dp::mbuf_data_room)
        s.scatter = dp::port_scatters(p);
        const int promisc = rte_eth_promiscuous_get(p);
        s.promiscuous = promisc < 0 ? -1 : promisc;
        out.push_back(std::move(s));
    }
    return out;
}

unsigned print_findings(std::FILE* out, const std::vector<Finding>& findings, bool verbose) {
    unsigned fatal = 0;
    for (const Finding& f : findings) {
        fatal += f.severity == Severity::Fatal ? 1 : 0;
        if (verbose || f.severity == Severity::Warning || f.severity == Severity::Fatal) {
            std::fprintf(out, "%s%s\n", verbose ? "" : "l7gate: ", f.line().c_str());
        }
    }
    std::fflush(out);
    return fatal;
}

namespace {
unsigned g_warnings = 0;  // warnings of the first stage, for --preflight's closing line

void summary(const std::vector<Finding>& f, unsigned fatal, bool final_line) {
    for (const Finding& x : f) {
        g_warnings += x.severity == Severity::Warning ? 1 : 0;
    }
    if (final_line) {
        std::printf("preflight: %u fatal, %u warning(s)\n", fatal, g_warnings);
        std::fflush(stdout);
    }
}
} // namespace

int preflight_before_eal(int eal_argc, char** argv, bool has_separator, const Options& opt) {
    const EalPlan eal = has_separator ? parse_eal_args(eal_argc, argv) : EalPlan{};
    const std::vector<Finding> f = preflight_system(SystemView(opt.preflight_root), eal, opt);
    const unsigned fatal = print_findings(opt.preflight ? stdout : stderr, f, opt.preflight);
    summary(f, fatal, opt.preflight && (fatal != 0 || !has_separator));
    if (fatal != 0) {
        return 2;
    }
    return opt.preflight && !has_separator ? 0 : -1;
}

int preflight_after_start(const std::vector<uint16_t>& ports, const Options& opt, uint32_t data_room) {
    const std::vector<Finding> f =
        evaluate_ports(collect_ports(ports, opt.link_timeout_s, data_room), opt.link_timeout_s);
    const unsigned fatal = print_findings(opt.preflight ? stdout : stderr, f, opt.preflight);
    summary(f, fatal, opt.preflight);
    if (fatal != 0) {
        return 2;
    }
    return opt.preflight ? 0 : -1;
}

} // namespace l7gate::ctl
