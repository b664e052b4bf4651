// The control/worker handoffs under ThreadSanitizer (build-tsan, see tools/test.sh):
//   - policy publication: the control thread reloads (PolicyManager) while "worker" threads
//     load the snapshot (acquire), evaluate flows with it and report quiescent states as
//     Worker::run() does; every reader sees each new generation, and old snapshots are freed
//     only after the RCU grace period: a retired snapshot stays while one reader still holds it;
//   - single-writer counters read by another thread (dp::Counter);
//   - the flow-log ring: a worker thread enqueues FlowRecords, the control thread drains
//     them with RecordStream::poll() into the FlowLog sink while they arrive.
// TSan fails the test on any data race or use after free; the tests also check the counts.

#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
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

#include "control/records/flow_log.hpp"
#include "control/base/ndpi_names.hpp"
#include "control/policy/compiler.hpp"
#include "control/policy/manager.hpp"
#include "control/records/record_stream.hpp"
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

// Waits (yielding) until pred() holds; false after 10 s.
template <typename Pred>
bool wait_for(Pred&& pred) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::yield();
    }
    return true;
}

rte_rcu_qsbr* new_qsbr(unsigned threads) {
    const size_t sz = rte_rcu_qsbr_get_memsize(threads);
    auto* qsbr = static_cast<rte_rcu_qsbr*>(std::aligned_alloc(64, (sz + 63) / 64 * 64));
    if (qsbr != nullptr && rte_rcu_qsbr_init(qsbr, threads) != 0) {
        std::free(qsbr);
        return nullptr;
    }
    return qsbr;
}

const char* const kPolicyA =
    "version: 1\ndefault_policy: p\npolicies:\n  p: {default: pass, ips: {198.19.0.0/16: drop}, "
    "hostnames: {\"~^cdn[0-9]+\\\\.\": drop}}\n";
const char* const kPolicyB =
    "version: 1\ndefault_policy: p\npolicies:\n  p: {default: drop, ips: {198.19.0.0/16: pass}, "
    "hostnames: {\"*.example\": pass}}\n";

// One evaluation of a flow with `pol`, as a worker makes them.
dp::Verdict evaluate_once(const dp::PolicySnapshot& pol, unsigned worker, uint64_t n) {
    static const uint8_t client[4] = {198, 18, 0, 10};
    static const uint8_t server[4] = {198, 19, 0, 80};
    dp::FlowFacts f;
    f.ip_version = 4;
    f.client_ip = client;
    f.server_ip = server;
    f.l7_known = true;
    f.host = (n & 1) != 0 ? "cdn7.example" : "www.example";
    return pol.evaluate(f, worker);
}

TEST(Handoffs, PolicyReloadsWhileWorkersEvaluate) {
    constexpr unsigned kWorkers = 2;
    constexpr int kReloads = 60;
    const std::string dir = temp_dir();
    const std::string path = dir + "/policy.yaml";
    const std::string a = kPolicyA;
    const std::string b = kPolicyB;
    write_file(path, a);

    rte_rcu_qsbr* qsbr = new_qsbr(kWorkers);
    ASSERT_NE(qsbr, nullptr);

    ctl::ReasonRegistry reasons;
    ctl::CompileContext ctx{&names(), nullptr, &reasons, kWorkers};
    ctl::PolicyManager pm(path, "auto", ctx, qsbr);
    std::vector<ctl::PolicyError> errors;
    ASSERT_TRUE(pm.load_initial(errors));
    ASSERT_EQ(pm.status().generation, 1u);

    std::atomic<bool> stop{false};
    std::atomic<uint64_t> evaluations{0};
    // Per worker: the latest generation it evaluated with (written by the worker only), and
    // every generation it saw, in the order it saw them (read after join).
    std::atomic<uint64_t> seen[kWorkers] = {};
    std::vector<uint64_t> history[kWorkers];
    std::vector<std::thread> workers;
    for (unsigned w = 0; w < kWorkers; ++w) {
        workers.emplace_back([&, w] {
            rte_rcu_qsbr_thread_register(qsbr, w);
            rte_rcu_qsbr_thread_online(qsbr, w);
            uint64_t n = 0;
            while (!stop.load(std::memory_order_relaxed)) {
                const dp::PolicySnapshot* pol = pm.slot().load(std::memory_order_acquire);
                if (pol != nullptr) {
                    (void)evaluate_once(*pol, w, n);
                    if (history[w].empty() || history[w].back() != pol->generation) {
                        history[w].push_back(pol->generation);
                        seen[w].store(pol->generation, std::memory_order_relaxed);
                    }
                    ++n;
                }
                rte_rcu_qsbr_quiescent(qsbr, w);  // no reference to `pol` survives this
            }
            rte_rcu_qsbr_thread_offline(qsbr, w);
            rte_rcu_qsbr_thread_unregister(qsbr, w);
            evaluations.fetch_add(n);
        });
    }
    // Every worker has evaluated with generation `g` (bounded wait).
    auto all_saw = [&](uint64_t g) {
        return wait_for([&] {
            for (const auto& s : seen) {
                if (s.load(std::memory_order_relaxed) < g) {
                    return false;
                }
            }
            return true;
        });
    };
    EXPECT_TRUE(all_saw(1));
    int published = 0;
    for (int i = 0; i < kReloads; ++i) {
        write_file(path, (i & 1) != 0 ? a : b);
        if (pm.reload("test")) {
            ++published;
        }
        pm.poll(ctl::PolicyManager::Clock::now());  // frees what the grace period allows
        // Each new generation reaches every worker while they keep evaluating.
        if (!all_saw(pm.status().generation)) {
            ADD_FAILURE() << "generation " << pm.status().generation << " never reached every worker";
            break;
        }
    }
    // One invalid file: refused, the running snapshot stays.
    write_file(path, "version: 1\ndefault_policy: nosuch\n");
    EXPECT_FALSE(pm.reload("test"));
    const uint64_t final_gen = pm.status().generation;
    stop.store(true);
    for (auto& t : workers) {
        t.join();
    }
    for (int i = 0; i < 100 && pm.retired_pending() != 0; ++i) {
        pm.poll(ctl::PolicyManager::Clock::now());
    }
    EXPECT_EQ(published, kReloads);
    EXPECT_EQ(final_gen, static_cast<uint64_t>(kReloads) + 1);
    EXPECT_EQ(pm.status().reloads_ok, static_cast<uint64_t>(kReloads));
    EXPECT_EQ(pm.status().reloads_failed, 1u);
    EXPECT_EQ(pm.retired_pending(), 0u) << "every old snapshot freed after its grace period";
    EXPECT_GT(evaluations.load(), 0u);
    // Each worker saw generation 1, then every later one in increasing order, up to the last
    // one published (the failed reload published nothing).
    for (unsigned w = 0; w < kWorkers; ++w) {
        SCOPED_TRACE("worker " + std::to_string(w));
        ASSERT_FALSE(history[w].empty());
        EXPECT_EQ(history[w].front(), 1u);
        EXPECT_EQ(history[w].back(), final_gen);
        for (size_t i = 1; i < history[w].size(); ++i) {
            EXPECT_GT(history[w][i], history[w][i - 1]) << "at the " << i << "th change";
        }
        EXPECT_EQ(history[w].size(), final_gen) << "a generation was skipped";
    }
    std::printf("%d reloads under %u evaluating threads, %llu evaluations\n", published, kWorkers,
                static_cast<unsigned long long>(evaluations.load()));
    std::free(qsbr);
    std::filesystem::remove_all(dir);
}

// A reader that loaded a snapshot and has not reported a quiescent state since keeps it alive
// across reloads and any number of polls (while another reader quiesces all along); once it
// reports one, the next poll frees everything retired.
TEST(Handoffs, RetiredSnapshotStaysWhileAReaderHoldsIt) {
    constexpr unsigned kReaders = 2;  // 0 holds generation 1; 1 keeps reporting quiescent states
    constexpr int kReloads = 3;
    const std::string dir = temp_dir();
    const std::string path = dir + "/policy.yaml";
    write_file(path, kPolicyA);

    rte_rcu_qsbr* qsbr = new_qsbr(kReaders);
    ASSERT_NE(qsbr, nullptr);
    ctl::ReasonRegistry reasons;
    ctl::CompileContext ctx{&names(), nullptr, &reasons, kReaders};
    ctl::PolicyManager pm(path, "auto", ctx, qsbr);
    std::vector<ctl::PolicyError> errors;
    ASSERT_TRUE(pm.load_initial(errors));

    std::atomic<bool> holding{false};
    std::atomic<bool> let_go{false};
    std::atomic<bool> quiesced{false};
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> uses{0};  // evaluations with the held snapshot
    std::thread holder([&] {
        rte_rcu_qsbr_thread_register(qsbr, 0);
        rte_rcu_qsbr_thread_online(qsbr, 0);
        const dp::PolicySnapshot* pol = pm.slot().load(std::memory_order_acquire);
        holding.store(true, std::memory_order_release);
        uint64_t n = 0;
        // Reads the snapshot over and over: after it was freed, TSan reports the use.
        while (!let_go.load(std::memory_order_acquire)) {
            (void)evaluate_once(*pol, 0, n++);
            EXPECT_EQ(pol->generation, 1u);
            uses.fetch_add(1, std::memory_order_relaxed);
            std::this_thread::yield();
        }
        rte_rcu_qsbr_quiescent(qsbr, 0);  // `pol` is not used after this
        quiesced.store(true, std::memory_order_release);
        while (!stop.load(std::memory_order_relaxed)) {
            rte_rcu_qsbr_quiescent(qsbr, 0);
            std::this_thread::yield();
        }
        rte_rcu_qsbr_thread_offline(qsbr, 0);
        rte_rcu_qsbr_thread_unregister(qsbr, 0);
    });
    std::thread busy([&] {
        rte_rcu_qsbr_thread_register(qsbr, 1);
        rte_rcu_qsbr_thread_online(qsbr, 1);
        for (uint64_t n = 0; !stop.load(std::memory_order_relaxed); ++n) {
            const dp::PolicySnapshot* pol = pm.slot().load(std::memory_order_acquire);
            (void)evaluate_once(*pol, 1, n);
            rte_rcu_qsbr_quiescent(qsbr, 1);
            std::this_thread::yield();
        }
        rte_rcu_qsbr_thread_offline(qsbr, 1);
        rte_rcu_qsbr_thread_unregister(qsbr, 1);
    });
    ASSERT_TRUE(wait_for([&] { return holding.load(std::memory_order_acquire); }));

    for (int i = 0; i < kReloads; ++i) {
        write_file(path, (i & 1) != 0 ? kPolicyA : kPolicyB);
        EXPECT_TRUE(pm.reload("test"));
    }
    for (int i = 0; i < 2000; ++i) {
        pm.poll(ctl::PolicyManager::Clock::now());
        if ((i & 63) == 0) {
            std::this_thread::yield();
        }
    }
    EXPECT_EQ(pm.retired_pending(), static_cast<size_t>(kReloads))
        << "a snapshot was freed while a reader could still use it";
    // The holder goes on reading generation 1 after all those polls.
    const uint64_t before = uses.load(std::memory_order_relaxed);
    EXPECT_TRUE(wait_for([&] { return uses.load(std::memory_order_relaxed) > before + 100; }));
    pm.poll(ctl::PolicyManager::Clock::now());
    EXPECT_EQ(pm.retired_pending(), static_cast<size_t>(kReloads));

    let_go.store(true, std::memory_order_release);
    ASSERT_TRUE(wait_for([&] { return quiesced.load(std::memory_order_acquire); }));
    pm.poll(ctl::PolicyManager::Clock::now());
    EXPECT_EQ(pm.retired_pending(), 0u) << "the holder's quiescent state freed nothing";

    stop.store(true);
    holder.join();
    busy.join();
    std::printf("the held generation-1 snapshot was evaluated %llu times while %d newer ones were published\n",
                static_cast<unsigned long long>(uses.load()), kReloads);
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
    ctl::RecordStream stream;
    stream.add_ring(ring);
    stream.add_sink(log);

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
        drained += stream.poll();
    }
    worker.join();
    stream.finish();
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
