// "show flows" and /l7gate/top_flows against real Workers whose housekeeping answers their
// command rings on their own threads, worker 1 stalled for a while (it stops serving its
// ring), with the prompt and a telemetry-like thread asking again and again (runs in the
// ASan build: a write into freed memory fails it). The answers name the stalled worker and
// leave its flows out; once it serves again its late replies are dropped, and later answers
// hold both workers' flows and nothing from an earlier question.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <rte_mbuf.h>

#include "control/base/ndpi_names.hpp"
#include "control/observe/prompt.hpp"
#include "control/observe/worker_queries.hpp"
#include "dataplane/worker.hpp"
#include "eal_env.hpp"
#include "unit/frame_builder.hpp"

namespace l7gate::test {
namespace {

using namespace std::chrono_literals;

// Worker w's flows: TCP SYNs from 198.18.<10+w>.1:(2000+i) to 198.18.0.2:80, i < n.
void make_flows(dp::Worker& w, unsigned worker, unsigned n, rte_mempool* pool) {
    dp::Burst& b = w.burst();
    for (unsigned i = 0; i < n; ++i) {
        Ipv4Spec ip;
        ip.src = {198, 18, static_cast<uint8_t>(10 + worker), 1};
        TcpSpec t;
        t.sport = static_cast<uint16_t>(2000 + i);
        const std::vector<uint8_t> f = ipv4_frame(ip, tcp(t));
        rte_mbuf* m = rte_pktmbuf_alloc(pool);
        ASSERT_NE(m, nullptr);
        std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
        b.mbufs[i] = m;
    }
    const uint64_t now = 1700000000ull * 1000000000ull;
    const unsigned nout = w.process_burst(0, n, now);
    for (unsigned k = 0; k < nout; ++k) {
        rte_pktmbuf_free(b.out[k]);
    }
}

unsigned count(const std::string& s, const std::string& what) {
    unsigned n = 0;
    for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) {
        ++n;
    }
    return n;
}

TEST(Queries, StalledWorkerPromptAndTelemetry) {
    rte_mempool* pool = eal_pool();
    ASSERT_NE(pool, nullptr);
    ctl::NdpiNames names;
    ASSERT_EQ(names.init("", ""), "");
    constexpr unsigned kFlows = 3;
    dp::Worker* w[2];
    std::atomic<bool> stop{false};
    std::atomic<bool> stalled[2] = {false, true};
    std::atomic<int> ready{0};
    std::vector<std::thread> lcores;
    for (unsigned k = 0; k < 2; ++k) {
        dp::WorkerConfig cfg = eal_worker_config(0, 1);
        cfg.queue = static_cast<uint16_t>(k);
        cfg.flows = 65536;  // a question takes 16 housekeeping rounds (4096 entries each)
        w[k] = new dp::Worker();
        ASSERT_EQ(w[k]->init(cfg), nullptr);
        lcores.emplace_back([&, k] {
            w[k]->classifier_attach_for_test();
            make_flows(*w[k], k, kFlows, pool);
            ready.fetch_add(1);
            while (!stop.load()) {
                if (stalled[k].load()) {
                    std::this_thread::sleep_for(1ms);
                    continue;
                }
                w[k]->housekeeping(1700000000ull * 1000000000ull);
            }
            dp::NdpiArena::attach(nullptr);
        });
    }
    while (ready.load() != 2) {
        std::this_thread::sleep_for(1ms);
    }

    ctl::WorkerQueries queries({&w[0]->commands(), &w[1]->commands()}, 500ms);
    std::string out;
    ctl::PromptContext pc;
    pc.workers = {w[0], w[1]};
    pc.names = &names;
    pc.queries = &queries;
    pc.output = [&](const std::string& s) { out += s; };
    ctl::Prompt prompt(pc);
    // The control loop: polls until pred() holds (10 s at most).
    const auto run_until = [&](auto&& pred) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (!pred() && std::chrono::steady_clock::now() < deadline) {
            queries.poll();
            std::this_thread::sleep_for(1ms);
        }
        return pred();
    };
    // One "show flows" line, run as the prompt runs it: the answer is printed later.
    const auto show = [&](const char* line) {
        out.clear();
        EXPECT_EQ(prompt.execute(line), "");
        EXPECT_TRUE(prompt.waiting());
        EXPECT_TRUE(run_until([&] { return !prompt.waiting(); }));
        return out;
    };

    // Worker 1 stalled: three questions from the prompt, three from telemetry.
    std::atomic<int> tele_done{0};
    std::vector<ctl::TopFlowsAnswer> tele(3);
    std::thread telemetry([&] {
        for (auto& a : tele) {
            a = queries.inbox()->ask(10, 5s);
        }
        tele_done.store(1);
    });
    for (int k = 0; k < 3; ++k) {
        const std::string s = show("show flows");
        EXPECT_EQ(count(s, "TCP 198.18.10.1:"), kFlows) << s;
        EXPECT_EQ(count(s, "TCP 198.18.11.1:"), 0u) << s;
        EXPECT_TRUE(s.find("no answer within 500 ms from worker(s) 1") != std::string::npos ||
                    s.find("worker(s) 1 still owe answers") != std::string::npos)
            << s;
    }
    ASSERT_TRUE(run_until([&] { return tele_done.load() == 1; }));
    telemetry.join();
    for (const auto& a : tele) {
        EXPECT_FALSE(a.stopping || a.no_control);
        EXPECT_EQ(a.flows.size(), kFlows);
        EXPECT_EQ(a.timed_out.size() + a.busy.size(), 1u);
    }
    EXPECT_EQ(queries.held_slots(1), dp::CommandChannel::kSlots);

    // Worker 1 serves again: its stale replies come back and are dropped.
    stalled[1].store(false);
    ASSERT_TRUE(run_until([&] { return queries.held_slots(1) == 0; }));
    EXPECT_EQ(queries.stale_replies(), dp::CommandChannel::kSlots);
    std::thread telemetry2([&] {
        tele[0] = queries.inbox()->ask(20, 5s);
        tele_done.store(2);
    });
    for (int k = 0; k < 3; ++k) {
        const std::string s = show("show flows 20");
        EXPECT_EQ(count(s, "TCP 198.18.10.1:"), kFlows) << s;
        EXPECT_EQ(count(s, "TCP 198.18.11.1:"), kFlows) << s;
        EXPECT_EQ(s.find("partial"), std::string::npos) << s;
    }
    ASSERT_TRUE(run_until([&] { return tele_done.load() == 2; }));
    telemetry2.join();
    EXPECT_EQ(tele[0].flows.size(), 2 * kFlows);
    EXPECT_TRUE(tele[0].timed_out.empty() && tele[0].busy.empty());

    // Stopping with a question open (worker 1 stalled again): it ends "stopping"; the workers
    // go only after their threads ended.
    stalled[1].store(true);
    out.clear();
    EXPECT_EQ(prompt.execute("show flows"), "");
    queries.close();
    EXPECT_FALSE(prompt.waiting());
    EXPECT_EQ(out, "show flows: l7gate is stopping\n");
    stop.store(true);
    for (auto& t : lcores) {
        t.join();
    }
    delete w[0];
    delete w[1];
}

} // namespace
} // namespace l7gate::test
