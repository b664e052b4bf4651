// Pre-flight checks over a faked machine: a temporary directory standing for /, with the
// sysfs and procfs files the checks read (NUMA nodes, hugepages, PCI devices and drivers).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "control/ops/options.hpp"
#include "control/ops/preflight.hpp"
#include "dataplane/memory.hpp"

namespace l7gate::test {
namespace {

namespace fs = std::filesystem;
using ctl::Finding;
using ctl::Severity;

class FakeMachine {
public:
    FakeMachine() {
        char tmpl[] = "/tmp/l7gate-preflight-XXXXXX";
        root_ = ::mkdtemp(tmpl);
        write("/proc/mounts", "sysfs /sys sysfs rw 0 0\nnodev /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n");
        write("/sys/devices/system/cpu/online", "0-7\n");
        write("/sys/devices/system/cpu/isolated", "\n");
    }
    ~FakeMachine() { fs::remove_all(root_); }

    void write(const std::string& p, const std::string& text) const {
        fs::create_directories(fs::path(root_ + p).parent_path());
        std::ofstream(root_ + p) << text;
    }
    void link(const std::string& p, const std::string& target) const {
        fs::create_directories(fs::path(root_ + p).parent_path());
        fs::create_symlink(target, root_ + p);
    }
    void node(int id, const std::string& cpus, unsigned free_2m) const {
        const std::string base = "/sys/devices/system/node/node" + std::to_string(id);
        write(base + "/cpulist", cpus + "\n");
        write(base + "/hugepages/hugepages-2048kB/free_hugepages", std::to_string(free_2m) + "\n");
    }
    void hugepages(unsigned free_2m) const {
        write("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", std::to_string(free_2m) + "\n");
        write("/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages", "0\n");
    }
    // A PCI NIC: driver "" = unbound; iface "" = no kernel netdev.
    void nic(const std::string& addr, const std::string& driver, int numa, const std::string& iface = {},
             bool iommu = true, const std::string& vendor = "0x8086") const {
        const std::string base = "/sys/bus/pci/devices/" + addr;
        write(base + "/numa_node", std::to_string(numa) + "\n");
        write(base + "/vendor", vendor + "\n");
        if (!driver.empty()) {
            link(base + "/driver", "../../../bus/pci/drivers/" + driver);
        }
        if (!iface.empty()) {
            write(base + "/net/" + iface + "/operstate", "up\n");
        }
        if (iommu) {
            link(base + "/iommu_group", "../../../kernel/iommu_groups/17");
        }
    }
    ctl::SystemView view() const { return ctl::SystemView(root_); }
    const std::string& root() const { return root_; }

private:
    std::string root_;
};

ctl::EalPlan eal(std::vector<std::string> args) { return ctl::parse_eal_args(args); }

std::vector<Finding> of(const std::vector<Finding>& all, Severity s, const std::string& check = {}) {
    std::vector<Finding> out;
    for (const Finding& f : all) {
        if (f.severity == s && (check.empty() || f.check == check)) {
            out.push_back(f);
        }
    }
    return out;
}

std::string dump(const std::vector<Finding>& all) {
    std::string s;
    for (const Finding& f : all) {
        s += f.line() + "\n";
    }
    return s;
}

// -- EAL arguments ------------------------------------------------------------------------------

TEST(PreflightEal, ReadsPortsCoresAndMemory) {
    const ctl::EalPlan p = eal({"-l", "1-3", "-a", "3b:00.0", "--allow=0000:3B:00.1,rxq_cqe_comp_en=0",
                                "--file-prefix", "l7gate", "-n", "4", "--socket-mem", "1024,2048", "--in-memory",
                                "--vdev", "net_pcap0,rx_pcap=a.pcap", "--huge-dir=/mnt/huge"});
    EXPECT_EQ(p.pci, (std::vector<std::string>{"0000:3b:00.0", "0000:3b:00.1"}));
    EXPECT_EQ(p.vdevs, (std::vector<std::string>{"net_pcap0,rx_pcap=a.pcap"}));
    EXPECT_EQ(p.cpus, (std::vector<unsigned>{1, 2, 3}));
    EXPECT_TRUE(p.cores_given);
    EXPECT_TRUE(p.in_memory);
    EXPECT_FALSE(p.no_huge);
    EXPECT_EQ(p.socket_mem_mb, (std::vector<uint64_t>{1024, 2048}));
    EXPECT_EQ(p.huge_dir, "/mnt/huge");
}

TEST(PreflightEal, LcoresMappingsAndMainLcore) {
    ctl::EalPlan p = eal({"--lcores=0@4,1@5,2@6", "--no-huge", "-m", "512", "--no-pci"});
    EXPECT_EQ(p.cpus, (std::vector<unsigned>{4, 5, 6}));
    EXPECT_TRUE(p.no_huge);
    EXPECT_TRUE(p.no_pci);
    EXPECT_EQ(p.mem_mb, 512u);
    p = eal({"--lcores", "(0-1)@(8-9),2@3", "--main-lcore", "2"});
    EXPECT_EQ(p.cpus, (std::vector<unsigned>{3, 8, 8}));  // main first, then lcores 0 and 1
    p = eal({"-c", "0x1c"});
    EXPECT_EQ(p.cpus, (std::vector<unsigned>{2, 3, 4}));
    p = eal({"-l0,2", "-a0000:af:00.0"});
    EXPECT_EQ(p.cpus, (std::vector<unsigned>{0, 2}));
    EXPECT_EQ(p.pci, (std::vector<std::string>{"0000:af:00.0"}));
}

TEST(PreflightEal, CpuLists) {
    std::vector<unsigned> v;
    ASSERT_TRUE(ctl::parse_cpu_list("0-2,8,10-11\n", v));
    EXPECT_EQ(v, (std::vector<unsigned>{0, 1, 2, 8, 10, 11}));
    v.clear();
    EXPECT_FALSE(ctl::parse_cpu_list("3-1", v));
    EXPECT_FALSE(ctl::parse_cpu_list("a", v));
}

TEST(PreflightMemory, EstimateFollowsMainSizing) {
    ctl::Options o;
    o.rxq = 2;
    // 2 workers x (4 ports x (1024 + 1024) descriptors + 1.5 x 256 cache + 8 x 32 burst
    // + 4 x 256 first-flight segments + 4096 shaper backlog) + 1024
    EXPECT_EQ(ctl::estimate_memory(o, 4).mbufs, 2u * (4 * 2048 + 384 + 256 + 1024 + 4096) + 1024);
    EXPECT_EQ(ctl::estimate_memory(o, 2).mbufs, 2u * (2 * 2048 + 384 + 256 + 1024 + 4096) + 1024);
    EXPECT_EQ(ctl::estimate_memory(o, 2).shaper_backlog, 4096u);
    o.ff_bytes = 0;  // no first-flight reassembly: no segments held
    EXPECT_EQ(ctl::estimate_memory(o, 2).mbufs, 2u * (2 * 2048 + 384 + 256 + 4096) + 1024);
    o.rxq = 1;
    o.rx_desc = o.tx_desc = 512;
    EXPECT_EQ(ctl::estimate_memory(o, 2).mbufs, 8191u);  // the floor
    EXPECT_EQ(ctl::estimate_memory(o, 2).shaper_backlog, 8191u - 1024 - (2 * 1024 + 384 + 256));
    o.mbufs = 100000;
    EXPECT_EQ(ctl::estimate_memory(o, 2).mbufs, 100000u);
    EXPECT_GT(ctl::estimate_memory(o, 2).pool_bytes, 100000u * 2048);
    EXPECT_GT(ctl::estimate_memory(o, 2).worker_bytes, uint64_t{262144} * 128);
}

// -- hugepages ------------------------------------------------------------------------------

ctl::MemoryNeed need_mib(uint64_t pool, uint64_t worker) {
    ctl::MemoryNeed n;
    n.mbufs = 8191;
    n.pool_bytes = pool << 20;
    n.worker_bytes = worker << 20;
    return n;
}

TEST(PreflightHugepages, EnoughPagesAndMount) {
    FakeMachine m;
    m.hugepages(1024);  // 2 GiB
    m.node(0, "0-7", 1024);
    auto f = ctl::check_hugepages(m.view(), eal({"-l", "0-2"}), need_mib(20, 150), 2);
    EXPECT_FALSE(ctl::has_fatal(f)) << dump(f);
    EXPECT_TRUE(of(f, Severity::Warning).empty()) << dump(f);
    ASSERT_EQ(of(f, Severity::Ok, "hugepages").size(), 2u) << dump(f);
}

TEST(PreflightHugepages, NotMountedIsFatalUnlessInMemory) {
    FakeMachine m;
    m.write("/proc/mounts", "sysfs /sys sysfs rw 0 0\n");
    m.hugepages(1024);
    auto f = ctl::check_hugepages(m.view(), eal({}), need_mib(20, 150), 1);
    auto fatal = of(f, Severity::Fatal, "hugepages");
    ASSERT_EQ(fatal.size(), 1u) << dump(f);
    EXPECT_NE(fatal[0].fix.find("mount -t hugetlbfs nodev /dev/hugepages"), std::string::npos);
    f = ctl::check_hugepages(m.view(), eal({"--in-memory"}), need_mib(20, 150), 1);
    EXPECT_FALSE(ctl::has_fatal(f)) << dump(f);
    f = ctl::check_hugepages(m.view(), eal({"--huge-dir", "/mnt/huge1G"}), need_mib(20, 150), 1);
    ASSERT_EQ(of(f, Severity::Fatal, "hugepages").size(), 1u) << dump(f);
    EXPECT_NE(of(f, Severity::Fatal)[0].message.find("/mnt/huge1G"), std::string::npos);
}

TEST(PreflightHugepages, NoneFreeIsFatalWithTheCommand) {
    FakeMachine m;
    m.hugepages(0);
    auto f = ctl::check_hugepages(m.view(), eal({}), need_mib(20, 150), 1);
    auto fatal = of(f, Severity::Fatal, "hugepages");
    ASSERT_EQ(fatal.size(), 1u) << dump(f);
    EXPECT_NE(fatal[0].message.find("no free hugepages"), std::string::npos);
    // (20 + 150 + 256 MiB) / 2 MiB = 213 pages
    EXPECT_NE(fatal[0].fix.find("echo 213 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"),
              std::string::npos) << fatal[0].fix;
    // 100 pages reserved and all used by someone else: the target adds to them.
    m.write("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "100\n");
    f = ctl::check_hugepages(m.view(), eal({}), need_mib(20, 150), 1);
    EXPECT_NE(of(f, Severity::Fatal)[0].fix.find("echo 313 > "), std::string::npos) << dump(f);
}

TEST(PreflightHugepages, TooFewForThePoolsIsFatalForTheTablesAWarning) {
    FakeMachine m;
    m.hugepages(5);  // 10 MiB < 20 MiB pool
    auto f = ctl::check_hugepages(m.view(), eal({}), need_mib(20, 150), 1);
    EXPECT_EQ(of(f, Severity::Fatal, "hugepages").size(), 1u) << dump(f);
    m.hugepages(50);  // 100 MiB: the pool fits, the worker tables do not
    f = ctl::check_hugepages(m.view(), eal({}), need_mib(20, 150), 1);
    EXPECT_FALSE(ctl::has_fatal(f)) << dump(f);
    EXPECT_EQ(of(f, Severity::Warning, "hugepages").size(), 1u) << dump(f);
}

TEST(PreflightHugepages, NoHugeChecksTheMemoryOption) {
    FakeMachine m;
    auto f = ctl::check_hugepages(m.view(), eal({"--no-huge", "-m", "16"}), need_mib(20, 150), 1);
    EXPECT_EQ(of(f, Severity::Fatal, "memory").size(), 1u) << dump(f);
    f = ctl::check_hugepages(m.view(), eal({"--no-huge"}), need_mib(20, 150), 1);  // 64 MiB default
    EXPECT_EQ(of(f, Severity::Warning, "memory").size(), 1u) << dump(f);
    f = ctl::check_hugepages(m.view(), eal({"--no-huge", "-m", "512"}), need_mib(20, 150), 2);
    EXPECT_FALSE(ctl::has_fatal(f));
    EXPECT_TRUE(of(f, Severity::Warning).empty()) << dump(f);
}

TEST(PreflightHugepages, PoolNodeNeedsItsOwnPages) {
    FakeMachine m;
    m.hugepages(1024);
    m.node(0, "0-3", 1024);  // every free page on node 0
    m.node(1, "4-7", 0);
    m.nic("0000:af:00.0", "vfio-pci", 1);
    m.nic("0000:af:00.1", "vfio-pci", 1);
    auto f = ctl::check_hugepages(m.view(), eal({"-l", "4-6", "-a", "af:00.0", "-a", "af:00.1"}), need_mib(20, 150), 2);
    auto fatal = of(f, Severity::Fatal, "hugepages");
    ASSERT_EQ(fatal.size(), 1u) << dump(f);
    EXPECT_NE(fatal[0].message.find("node 1"), std::string::npos);
    EXPECT_NE(fatal[0].fix.find("/sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages"),
              std::string::npos);
    // --socket-mem that gives node 1 nothing
    m.node(1, "4-7", 512);
    f = ctl::check_hugepages(m.view(), eal({"-a", "af:00.0", "--socket-mem", "1024,0"}), need_mib(20, 150), 1);
    ASSERT_EQ(of(f, Severity::Fatal, "memory").size(), 1u) << dump(f);
}

// -- PCI binding ---------------------------------------------------------------------------

TEST(PreflightPci, DriversAndTheirFixes) {
    FakeMachine m;
    m.nic("0000:3b:00.0", "vfio-pci", 0);
    m.nic("0000:3b:00.1", "ice", 0, "enp59s0f1");
    m.nic("0000:3b:00.2", "", 0);
    m.nic("0000:3b:00.3", "uio_pci_generic", 0);
    m.nic("0000:5e:00.0", "mlx5_core", 0, "enp94s0f0", true, "0x15b3");
    m.nic("0000:5e:00.1", "vfio-pci", 0, "", true, "0x15b3");
    auto f = ctl::check_pci(m.view(), eal({"-a", "3b:00.0", "-a", "3b:00.1", "-a", "3b:00.2", "-a", "3b:00.3", "-a",
                                           "5e:00.0", "-a", "5e:00.1", "-a", "d8:00.0"}));
    ASSERT_EQ(f.size(), 7u) << dump(f);
    EXPECT_EQ(f[0].severity, Severity::Ok);
    EXPECT_EQ(f[1].severity, Severity::Fatal);
    EXPECT_NE(f[1].message.find("kernel driver ice"), std::string::npos);
    EXPECT_EQ(f[1].fix, "ip link set dev enp59s0f1 down && modprobe vfio-pci && dpdk-devbind.py --bind=vfio-pci 0000:3b:00.1");
    EXPECT_EQ(f[2].severity, Severity::Fatal);
    EXPECT_EQ(f[2].fix, "modprobe vfio-pci && dpdk-devbind.py --bind=vfio-pci 0000:3b:00.2");
    EXPECT_EQ(f[3].severity, Severity::Info);
    EXPECT_EQ(f[4].severity, Severity::Ok) << f[4].line();  // mlx5 stays on its kernel driver
    EXPECT_EQ(f[5].severity, Severity::Fatal);
    EXPECT_EQ(f[5].fix, "dpdk-devbind.py --bind=mlx5_core 0000:5e:00.1");
    EXPECT_EQ(f[6].severity, Severity::Fatal);
    EXPECT_NE(f[6].message.find("no PCI device 0000:d8:00.0"), std::string::npos);
    for (const Finding& x : f) {
        const std::string line = x.line();
        EXPECT_EQ(line.find('\n'), std::string::npos);
        if (x.severity == Severity::Fatal) {
            EXPECT_EQ(line.rfind("preflight: FATAL pci: ", 0), 0u) << line;
            EXPECT_NE(line.find(" -- fix: "), std::string::npos) << line;
        }
    }
}

TEST(PreflightPci, VfioNeedsAnIommu) {
    FakeMachine m;
    m.nic("0000:3b:00.0", "vfio-pci", 0, "", false);
    auto f = ctl::check_pci(m.view(), eal({"-a", "0000:3b:00.0"}));
    ASSERT_EQ(of(f, Severity::Fatal, "iommu").size(), 1u) << dump(f);
    EXPECT_NE(f[0].fix.find("intel_iommu=on iommu=pt"), std::string::npos);
    m.write("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "Y\n");
    f = ctl::check_pci(m.view(), eal({"-a", "0000:3b:00.0"}));
    EXPECT_FALSE(ctl::has_fatal(f)) << dump(f);
    EXPECT_EQ(of(f, Severity::Warning, "iommu").size(), 1u) << dump(f);
}

TEST(PreflightPci, NoPciAndVdevsOnlyAreQuiet) {
    FakeMachine m;
    EXPECT_TRUE(ctl::check_pci(m.view(), eal({"--no-pci", "-a", "3b:00.0"})).empty());
    EXPECT_TRUE(ctl::check_pci(m.view(), eal({"--vdev", "net_null0"})).empty());
    auto f = ctl::check_pci(m.view(), eal({}));
    EXPECT_EQ(of(f, Severity::Warning, "pci").size(), 1u) << dump(f);  // EAL would take every port
}

// -- NUMA --------------------------------------------------------------------------------------

TEST(PreflightNuma, WorkersOnTheOtherSocketAreNamedWithLocalCores) {
    FakeMachine m;
    m.node(0, "0-3", 512);
    m.node(1, "4-7", 512);
    m.nic("0000:af:00.0", "vfio-pci", 1);
    m.nic("0000:af:00.1", "vfio-pci", 1);
    auto f = ctl::check_numa(m.view(), eal({"-l", "0-2", "-a", "af:00.0", "-a", "af:00.1"}), 2);
    auto warn = of(f, Severity::Warning, "numa");
    ASSERT_EQ(warn.size(), 2u) << dump(f);  // workers on CPUs 1 and 2
    EXPECT_NE(warn[0].message.find("worker CPU 1 is on node 0, its ports on node 1"), std::string::npos);
    EXPECT_NE(warn[0].fix.find("-l 4,5,6"), std::string::npos) << warn[0].fix;
    // The main lcore may sit anywhere; workers on node 1: fine.
    f = ctl::check_numa(m.view(), eal({"-l", "0,5,6", "-a", "af:00.0", "-a", "af:00.1"}), 2);
    EXPECT_TRUE(of(f, Severity::Warning).empty()) << dump(f);
    ASSERT_EQ(of(f, Severity::Ok, "numa").size(), 1u) << dump(f);
}

TEST(PreflightNuma, PortsOnTwoSocketsAndUnknownNodes) {
    FakeMachine m;
    m.node(0, "0-3", 512);
    m.node(1, "4-7", 512);
    m.nic("0000:3b:00.0", "vfio-pci", 0);
    m.nic("0000:af:00.0", "vfio-pci", 1);
    m.nic("0000:d8:00.0", "vfio-pci", -1);
    auto f = ctl::check_numa(m.view(), eal({"-l", "0-1", "-a", "3b:00.0", "-a", "af:00.0", "-a", "d8:00.0"}), 1);
    auto warn = of(f, Severity::Warning, "numa");
    ASSERT_EQ(warn.size(), 2u) << dump(f);
    EXPECT_NE(warn[0].message.find("no NUMA node"), std::string::npos);
    EXPECT_NE(warn[1].message.find("different NUMA nodes"), std::string::npos);
}

TEST(PreflightNuma, OneNodeIsAlwaysLocalAndOfflineCpusAreFatal) {
    FakeMachine m;
    m.node(0, "0-7", 512);
    m.nic("0000:3b:00.0", "vfio-pci", 0);
    auto f = ctl::check_numa(m.view(), eal({"-l", "0-2", "-a", "3b:00.0"}), 2);
    EXPECT_TRUE(of(f, Severity::Warning).empty()) << dump(f);
    EXPECT_EQ(of(f, Severity::Ok, "numa").size(), 1u);
    EXPECT_EQ(of(f, Severity::Info, "cores").size(), 1u);  // not isolated
    m.write("/sys/devices/system/cpu/isolated", "1-2\n");
    f = ctl::check_numa(m.view(), eal({"-l", "0-2", "-a", "3b:00.0"}), 2);
    EXPECT_TRUE(of(f, Severity::Info, "cores").empty()) << dump(f);
    f = ctl::check_numa(m.view(), eal({"-l", "0,9", "-a", "3b:00.0"}), 1);
    ASSERT_EQ(of(f, Severity::Fatal, "cores").size(), 1u) << dump(f);
    EXPECT_NE(of(f, Severity::Fatal)[0].message.find("CPU 9"), std::string::npos);
}

// -- virtual devices --------------------------------------------------------------------------

TEST(PreflightVdev, FilesAndInterfaces) {
    FakeMachine m;
    const std::string in = m.root() + "/in.pcap";
    m.write("/in.pcap", "");
    m.write("/sys/class/net/veth0/operstate", "up\n");
    auto f = ctl::check_vdevs(m.view(), eal({"--vdev", "net_pcap0,rx_pcap=" + in + ",tx_pcap=" + m.root() + "/out.pcap",
                                             "--vdev", "net_af_packet0,iface=veth0", "--vdev", "net_null0"}));
    EXPECT_FALSE(ctl::has_fatal(f)) << dump(f);
    EXPECT_EQ(of(f, Severity::Ok, "vdev").size(), 3u) << dump(f);
    f = ctl::check_vdevs(m.view(), eal({"--vdev", "net_pcap0,rx_pcap=" + m.root() + "/missing.pcap",
                                        "--vdev", "net_pcap1,tx_pcap=" + m.root() + "/no/such/dir/out.pcap",
                                        "--vdev", "net_af_packet0,iface=eth42"}));
    auto fatal = of(f, Severity::Fatal, "vdev");
    ASSERT_EQ(fatal.size(), 3u) << dump(f);
    EXPECT_NE(fatal[0].message.find("missing.pcap cannot be read"), std::string::npos);
    EXPECT_NE(fatal[1].message.find("cannot be written"), std::string::npos);
    EXPECT_NE(fatal[2].message.find("no network interface eth42"), std::string::npos);
}

TEST(PreflightSystem, VdevMachineAsTheTestsRunIt) {
    FakeMachine m;
    m.node(0, "0-7", 0);
    const std::string in = m.root() + "/in.pcap";
    m.write("/in.pcap", "");
    ctl::Options o;
    const std::vector<std::string> args = {"--no-huge", "--no-pci", "-m", "512", "--lcores=0@0,1@1",
                                           "--vdev", "net_pcap0,rx_pcap=" + in, "--vdev", "net_pcap1,rx_pcap=" + in};
    auto f = ctl::preflight_system(m.view(), eal(args), o);
    EXPECT_FALSE(ctl::has_fatal(f)) << dump(f);
    EXPECT_TRUE(of(f, Severity::Warning).empty()) << dump(f);
}

// -- ports after start ------------------------------------------------------------------------

TEST(PreflightPorts, LinkMtuPromiscuous) {
    ctl::PortState up;
    up.port = 0;
    up.name = "0000:3b:00.0";
    up.driver = "net_ice";
    up.is_pci = true;
    up.link_up = true;
    up.speed_mbps = 100000;
    up.mtu = 1500;
    up.mbuf_data_room = 2048;
    up.max_rx_pktlen = 9728;
    up.promiscuous = 1;
    auto f = ctl::evaluate_ports({up}, 5);
    EXPECT_FALSE(ctl::has_fatal(f)) << dump(f);
    EXPECT_TRUE(of(f, Severity::Warning).empty()) << dump(f);

    ctl::PortState down = up;
    down.port = 1;
    down.link_up = false;
    f = ctl::evaluate_ports({down}, 2.5);
    ASSERT_EQ(of(f, Severity::Warning, "link").size(), 1u) << dump(f);
    EXPECT_NE(of(f, Severity::Warning)[0].message.find("link down after 2.5 s"), std::string::npos);

    ctl::PortState jumbo = up;
    jumbo.mtu = 9000;
    f = ctl::evaluate_ports({jumbo}, 5);
    ASSERT_EQ(of(f, Severity::Fatal, "mtu").size(), 1u) << dump(f);

    ctl::PortState vf = up;
    vf.promiscuous = 0;
    f = ctl::evaluate_ports({vf}, 5);
    ASSERT_EQ(of(f, Severity::Fatal, "promiscuous").size(), 1u) << dump(f);
    EXPECT_NE(of(f, Severity::Fatal)[0].fix.find("trust on"), std::string::npos);

    ctl::PortState pcap = vf;  // a vdev without promiscuous mode is fine
    pcap.is_pci = false;
    pcap.driver = "net_pcap";
    EXPECT_FALSE(ctl::has_fatal(ctl::evaluate_ports({pcap}, 5)));
}

// --mtu beyond one mbuf: scattered RX when the port scatters (said, not fatal), else mbufs
// that hold a whole frame; the old fatal finding only when neither holds.
TEST(PreflightPorts, JumboMtuSaysHowFramesAreReceived) {
    ctl::PortState p;
    p.port = 0;
    p.driver = "net_pcap";
    p.link_up = true;
    p.promiscuous = -1;
    p.mtu = 9000;
    p.mbuf_data_room = 2048;
    p.scatter = true;
    auto f = ctl::evaluate_ports({p}, 5);
    EXPECT_FALSE(ctl::has_fatal(f)) << dump(f);
    ASSERT_EQ(of(f, Severity::Ok, "mtu").size(), 1u) << dump(f);
    EXPECT_NE(of(f, Severity::Ok, "mtu")[0].message.find("MTU 9000, scattered RX: a frame spans up to 5 mbufs of 2048"),
              std::string::npos)
        << dump(f);

    p.scatter = false;
    p.mbuf_data_room = dp::mbuf_data_room(9000, false);
    EXPECT_EQ(p.mbuf_data_room, 9216u);
    f = ctl::evaluate_ports({p}, 5);
    EXPECT_FALSE(ctl::has_fatal(f)) << dump(f);
    EXPECT_NE(of(f, Severity::Ok, "mtu")[0].message.find("fits one mbuf (9216 bytes"), std::string::npos) << dump(f);

    p.mbuf_data_room = 2048;
    f = ctl::evaluate_ports({p}, 5);
    ASSERT_EQ(of(f, Severity::Fatal, "mtu").size(), 1u) << dump(f);
    EXPECT_NE(of(f, Severity::Fatal, "mtu")[0].fix.find("--mtu 9000"), std::string::npos) << dump(f);
}

// Whole-frame mbufs cost their size in the memory estimate; 2 KiB mbufs up to MTU 2022.
TEST(PreflightMemory, JumboMtuSizesWholeFrameMbufs) {
    EXPECT_EQ(dp::mbuf_data_room(1500, false), 2048u);
    EXPECT_EQ(dp::mbuf_data_room(2022, false), 2048u);
    EXPECT_EQ(dp::mbuf_data_room(2023, false), 3072u);
    EXPECT_EQ(dp::mbuf_data_room(9000, true), 2048u);
    ctl::Options o;
    const uint64_t def = ctl::estimate_memory(o, 2).pool_bytes;
    o.mtu = 9000;
    const auto m = ctl::estimate_memory(o, 2);
    EXPECT_EQ(m.pool_bytes, uint64_t{m.mbufs} * (128 + 128 + 9216 + 64));
    EXPECT_EQ(def, uint64_t{m.mbufs} * (128 + 128 + 2048 + 64));
}

// The options behind pre-flight.
TEST(PreflightOptions, Parse) {
    ctl::Options o;
    std::vector<std::string> s = {"l7gate", "--preflight", "--link-timeout", "0.5", "--preflight-root", "/tmp/x"};
    std::vector<char*> argv;
    for (auto& x : s) {
        argv.push_back(x.data());
    }
    ASSERT_EQ(ctl::parse_options(static_cast<int>(argv.size()), argv.data(), 1, o), "");
    EXPECT_TRUE(o.preflight);
    EXPECT_DOUBLE_EQ(o.link_timeout_s, 0.5);
    EXPECT_EQ(o.preflight_root, "/tmp/x");
    s = {"l7gate", "--preflight-root", "relative"};
    argv.clear();
    for (auto& x : s) {
        argv.push_back(x.data());
    }
    ctl::Options o2;
    EXPECT_NE(ctl::parse_options(static_cast<int>(argv.size()), argv.data(), 1, o2), "");
}

} // namespace
} // namespace l7gate::test
