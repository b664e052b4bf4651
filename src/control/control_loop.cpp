#include "control/control_loop.hpp"

#include <chrono>
#include <cstdio>
#include <thread>

#include "control/stats_report.hpp"
#include "dataplane/worker.hpp"

namespace l7gate::ctl {

std::string run_control_loop(const Options& opt, const std::vector<uint16_t>& ports,
                             const std::vector<const dp::Worker*>& workers,
                             const std::atomic<bool>& stop) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    auto last_stats = start;
    auto last_rx_change = start;
    uint64_t last_rx = 0;
    StatsSnapshot prev = collect_stats(ports, workers, false);
    constexpr auto kTick = std::chrono::milliseconds(5);

    while (!stop.load(std::memory_order_relaxed)) {
        std::this_thread::sleep_for(kTick);
        const auto now = clock::now();
        const double elapsed = std::chrono::duration<double>(now - start).count();
        if (opt.duration_s > 0 && elapsed >= opt.duration_s) {
            return "duration reached";
        }
        uint64_t rx = 0;
        for (const dp::Worker* w : workers) {
            rx += w->counters().rx_packets.get();
        }
        if (rx != last_rx) {
            last_rx = rx;
            last_rx_change = now;
        } else if (opt.idle_exit_ms > 0 && rx > 0 &&
                   now - last_rx_change >= std::chrono::milliseconds(opt.idle_exit_ms)) {
            return "idle for " + std::to_string(opt.idle_exit_ms) + " ms";
        }
        if (opt.stats_interval_s > 0 &&
            std::chrono::duration<double>(now - last_stats).count() >= opt.stats_interval_s) {
            StatsSnapshot cur = collect_stats(ports, workers, false);
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
