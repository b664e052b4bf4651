#include "control/control_loop.hpp"

#include <chrono>
#include <cstdio>
#include <thread>

#include "control/flow_log.hpp"
#include "control/metrics.hpp"
#include "control/policy_manager.hpp"
#include "control/host_scores.hpp"
#include "control/prompt.hpp"
#include "control/telemetry.hpp"
#include "control/watchdog.hpp"
#include "control/stats_report.hpp"
#include "dataplane/worker.hpp"

namespace l7gate::ctl {

std::string run_control_loop(Options& opt, const std::vector<uint16_t>& ports,
                             const std::vector<const dp::Worker*>& workers,
                             const std::atomic<bool>& stop, const ControlHooks& hooks) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    auto last_stats = start;
    auto last_metrics = start;
    auto last_tick = start;
    std::chrono::steady_clock::duration idle_for{0};
    uint64_t last_rx = 0;
    std::vector<uint64_t> last_beat(workers.size(), 0);
    StatsSnapshot prev = collect_stats(ports, workers, false, hooks.watchdog);
    constexpr auto kTick = std::chrono::milliseconds(5);
    uint64_t reloads_seen = UINT64_MAX;

    while (!stop.load(std::memory_order_relaxed)) {
        std::this_thread::sleep_for(kTick);
        if (opt.test_slow_control_ms != 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(opt.test_slow_control_ms));
        }
        if (hooks.watchdog != nullptr) {
            hooks.watchdog->report();  // the watchdog and fail-open run on their own thread
        }
        if (hooks.flow_log != nullptr) {
            hooks.flow_log->drain();
        }
        if (hooks.hosts != nullptr) {
            hooks.hosts->poll(hooks.policy != nullptr ? hooks.policy->current() : nullptr, hooks.events);
        }
        if (hooks.prompt != nullptr && !hooks.prompt->poll()) {
            return "quit";
        }
        const auto now = clock::now();
        if (hooks.policy != nullptr) {
            if (hooks.reload_requested != nullptr && hooks.reload_requested->exchange(false)) {
                hooks.policy->request_reload("SIGHUP");
            }
            hooks.policy->poll(now);
            const ReloadStatus& rs = hooks.policy->status();
            if (rs.reloads_ok + rs.reloads_failed != reloads_seen) {
                reloads_seen = rs.reloads_ok + rs.reloads_failed;
                telemetry_set_policy_status(rs);
            }
        }
        if (hooks.metrics != nullptr && now - last_metrics >= std::chrono::seconds(1)) {
            last_metrics = now;
            // with_pmd: the port families need the PMD's counters (rte_eth_stats_get).
            StatsSnapshot ms = collect_stats(ports, workers, true, hooks.watchdog);
            fill_host_stats(ms, hooks.hosts, opt.top_hosts);
            hooks.metrics->update(ms, *hooks.names, *hooks.reasons,
                                  policy_status(hooks.policy), hooks.tsc_hz,
                                  hooks.policy != nullptr ? hooks.policy->current() : nullptr);
        }
        const double elapsed = std::chrono::duration<double>(now - start).count();
        if (opt.duration_s > 0 && elapsed >= opt.duration_s) {
            return "duration reached";
        }
        // Idle time only accrues while every worker is polling (its heartbeat moves): a
        // worker held up inside a call (a slow disk under a pcap vdev, a busy host) has not
        // seen the end of its input.
        uint64_t rx = 0;
        bool all_polling = true;
        for (size_t i = 0; i < workers.size(); ++i) {
            rx += workers[i]->counters().rx_packets.get();
            const uint64_t beat = workers[i]->counters().heartbeat.get();
            all_polling = all_polling && beat != last_beat[i];
            last_beat[i] = beat;
        }
        if (hooks.watchdog != nullptr) {
            rx += hooks.watchdog->standby().rx_packets.get();  // the fail-open path's too
        }
        if (rx != last_rx) {
            last_rx = rx;
            idle_for = {};
        } else if (all_polling) {
            idle_for += now - last_tick;
        }
        last_tick = now;
        if (opt.bench_stop_at_end) {
            bool all_finished = true;
            for (const dp::Worker* w : workers) {
                all_finished = all_finished && w->finished();
            }
            if (all_finished) {
                return "end of the capture (--bench-stop-at-end)";
            }
        }
        if (opt.idle_exit_ms > 0 && rx > 0 && idle_for >= std::chrono::milliseconds(opt.idle_exit_ms)) {
            return "idle for " + std::to_string(opt.idle_exit_ms) + " ms";
        }
        if (opt.stats_interval_s > 0 &&
            std::chrono::duration<double>(now - last_stats).count() >= opt.stats_interval_s) {
            StatsSnapshot cur = collect_stats(ports, workers, false, hooks.watchdog);
            const double dt = std::chrono::duration<double>(now - last_stats).count();
            std::printf("[%8.1f s] %s\n", elapsed, stats_line(cur, prev, dt).c_str());
            std::fflush(stdout);
            prev = cur;
            last_stats = now;
        }
    }
    return "signal";
}

} // namespace l7gate::ctl
