// The control/worker handoffs under ThreadSanitizer (build-tsan, see tools/test.sh):
//   - policy publication: the control thread reloads (PolicyManager) while "worker" threads
//     load the snapshot (acquire), evaluate flows with it and report quiescent states as
//     Worker::run() does; old snapshots are freed only after the RCU grace period;
//   - single-writer counters read by another thread (dp::Counter);
//   - the flow-log ring: a worker thread enqueues FlowRecords, the control thread drains
//     them with FlowLog::drain() while they arrive.
// TSan fails the test on any data race or use after free; the tests also check the counts.

#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "control/flow_log.hpp"
#include "control/ndpi_names.hpp"
#include "control/policy_compiler.hpp"
#include "control/policy_manager.hpp"
#include "dataplane/counters.hpp"
#include "dataplane/flow_record.hpp"
#include "dataplane/policy_snapshot.hpp"

namespace l7gate::test {
namespace {

ctl::NdpiNames& names() {
    static ctl::NdpiNames* n = [] {
        auto* p = new ctl::NdpiNames();
        EXPECT_EQ(p->init("", ""), "");
        return p;
    }();
    return *n;
}

std::string temp_dir() {
    char tmpl[] = "/tmp/l7gate-tsan-XXXXXX";
    const char* d = mkdtemp(tmpl);
    return d != nullptr ? d : "/tmp";
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::trunc);
    f << text;
}

TEST(Handoffs, PolicyReloadsWhileWorkersEvaluate) {
    constexpr unsigned kWorkers = 2;
    constexpr int kReloads = 60;
    const std::string dir = temp_dir();
    const std::string path = dir + "/policy.yaml";
    const std::string a =
        "version: 1\ndefault_policy: p\npolicies:\n  p: {default: pass, ips: {198.19.0.0/16: drop}, "
        "hostnames: {\"~^cdn[0-9]+\\\\.\": drop}}\n";
    const std::string b =
        "version: 1\ndefault_policy: p\npolicies:\n  p: {default: drop, ips: {198.19.0.0/16: pass}, "
        "hostnames: {\"*.example\": pass}}\n";
    write_file(path, a);

    const size_t sz = rte_rcu_qsbr_get_memsize(kWorkers);
    auto* qsbr = static_cast<rte_rcu_qsbr*>(std::aligned_alloc(64, (sz + 63) / 64 * 64));
    ASSERT_NE(qsbr, nullptr);
    ASSERT_EQ(rte_rcu_qsbr_init(qsbr, kWorkers), 0);

    ctl::ReasonRegistry reasons;
    ctl::CompileContext ctx{&names(), nullptr, &reasons, kWorkers};
    ctl::PolicyManager pm(path, "auto", ctx, qsbr);
    std::vector<ctl::PolicyError> errors;
    ASSERT_TRUE(pm.load_initial(errors));

    std::atomic<bool> stop{false};
    std::atomic<uint64_t> evaluations{0};
    std::vector<std::thread> workers;
    for (unsigned w = 0; w < kWorkers; ++w) {
        workers.emplace_back([&, w] {
            rte_rcu_qsbr_thread_register(qsbr, w);
            rte_rcu_qsbr_thread_online(qsbr, w);
            const uint8_t client[4] = {198, 18, 0, 10};
            const uint8_t server[4] = {198, 19, 0, 80};
            uint64_t n = 0;
            uint64_t last_gen = 0;
            while (!stop.load(std::memory_order_relaxed)) {
                const dp::PolicySnapshot* pol = pm.slot().load(std::memory_order_acquire);
                if (pol != nullptr) {
                    dp::FlowFacts f;
                    f.ip_version = 4;
                    f.client_ip = client;
                    f.server_ip = server;
                    f.l7_known = true;
                    f.host = (n & 1) != 0 ? "cdn7.example" : "www.example";
                    const dp::Verdict v = pol->evaluate(f, w);
                    EXPECT_GE(pol->generation, last_gen) << "generations only go forward";
                    last_gen = pol->generation;
                    (void)v;
                    ++n;
                }
                rte_rcu_qsbr_quiescent(qsbr, w);  // no reference to `pol` survives this
            }
            rte_rcu_qsbr_thread_offline(qsbr, w);
            rte_rcu_qsbr_thread_unregister(qsbr, w);
            evaluations.fetch_add(n);
        });
    }
    int published = 0;
    for (int i = 0; i < kReloads; ++i) {
        write_file(path, (i & 1) != 0 ? a : b);
        if (pm.reload("test")) {
            ++published;
        }
        pm.poll(ctl::PolicyManager::Clock::now());  // frees what the grace period allows
    }
    // One invalid file: refused, the running snapshot stays.
    write_file(path, "version: 1\ndefault_policy: nosuch\n");
    EXPECT_FALSE(pm.reload("test"));
    stop.store(true);
    for (auto& t : workers) {
        t.join();
    }
    for (int i = 0; i < 100 && pm.retired_pending() != 0; ++i) {
        pm.poll(ctl::PolicyManager::Clock::now());
    }
    EXPECT_EQ(published, kReloads);
    EXPECT_EQ(pm.status().reloads_ok, static_cast<uint64_t>(kReloads));
    EXPECT_EQ(pm.status().reloads_failed, 1u);
    EXPECT_EQ(pm.retired_pending(), 0u) << "every old snapshot freed after its grace period";
    EXPECT_GT(evaluations.load(), 0u);
    std::printf("%d reloads under %u evaluating threads, %llu evaluations\n", published, kWorkers,
                static_cast<unsigned long long>(evaluations.load()));
    std::free(qsbr);
    std::filesystem::remove_all(dir);
}

TEST(Handoffs, SingleWriterCountersReadConcurrently) {
    dp::WorkerCounters* c = new dp::WorkerCounters();
    constexpr uint64_t kN = 200000;
    std::atomic<bool> done{false};
    std::thread writer([&] {
        for (uint64_t i = 0; i < kN; ++i) {
            c->rx_packets.inc();
            c->drops[1].add(2);
            c->flows_active.set(i);
        }
        done.store(true, std::memory_order_release);
    });
    uint64_t last = 0;
    while (!done.load(std::memory_order_acquire)) {
        const uint64_t v = c->rx_packets.get();
        EXPECT_GE(v, last) << "a single writer's counter never goes back";
        last = v;
    }
    writer.join();
    EXPECT_EQ(c->rx_packets.get(), kN);
    EXPECT_EQ(c->drops[1].get(), 2 * kN);
    delete c;
}

TEST(Handoffs, FlowLogRingDrainedWhileWorkerEnqueues) {
    constexpr unsigned kRing = 1024;
    constexpr unsigned kRecords = 20000;
    const ssize_t sz = rte_ring_get_memsize_elem(sizeof(dp::FlowRecord), kRing);
    ASSERT_GT(sz, 0);
    auto* ring = static_cast<rte_ring*>(std::aligned_alloc(64, (static_cast<size_t>(sz) + 63) / 64 * 64));
    ASSERT_NE(ring, nullptr);
    ASSERT_EQ(rte_ring_init(ring, "tsan_flowlog", kRing, RING_F_SP_ENQ | RING_F_SC_DEQ), 0);

    const std::string dir = temp_dir();
    const std::string out = dir + "/flows.jsonl";
    ctl::FlowLog log;
    ASSERT_EQ(log.open(out, names().module()), "");
    log.add_ring(ring);

    std::atomic<bool> done{false};
    uint64_t full = 0;
    std::thread worker([&] {
        for (unsigned i = 0; i < kRecords; ++i) {
            dp::FlowRecord r{};
            r.key.ip_version = 4;
            r.key.proto = 17;
            r.key.addr[0][0] = 198;
            r.key.addr[1][0] = 198;
            r.key.port[0] = static_cast<uint16_t>(i);
            r.packets[0] = i;
            std::snprintf(r.host, sizeof(r.host), "h%u.example", i);
            while (rte_ring_sp_enqueue_elem(ring, &r, sizeof(r)) != 0) {
                ++full;  // the real worker counts it lost; here we wait for the drain
                std::this_thread::yield();
            }
        }
        done.store(true, std::memory_order_release);
    });
    size_t drained = 0;
    while (!done.load(std::memory_order_acquire) || drained < kRecords) {
        drained += log.drain();
    }
    worker.join();
    log.close();
    EXPECT_EQ(drained, kRecords);
    EXPECT_EQ(log.written(), kRecords);
    std::ifstream f(out);
    std::string line;
    unsigned lines = 0;
    while (std::getline(f, line)) {
        EXPECT_EQ(line.front(), '{');
        ++lines;
    }
    EXPECT_EQ(lines, kRecords);
    std::printf("%u flow records through a %u-slot ring, the producer found it full %llu times\n", kRecords,
                kRing, static_cast<unsigned long long>(full));
    std::free(ring);
    std::filesystem::remove_all(dir);
}

} // namespace
} // namespace l7gate::test
