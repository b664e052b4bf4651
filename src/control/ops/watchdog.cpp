#include "control/ops/watchdog.hpp"

#include <pthread.h>

#include <string>
#include <system_error>

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_pause.h>

#include "control/base/log.hpp"
#include "dataplane/worker.hpp"

namespace l7gate::ctl {

Watchdog::Watchdog(std::vector<dp::Worker*> workers, std::vector<uint16_t> ports, std::vector<uint16_t> peer,
                   WatchdogConfig cfg)
    : workers_(std::move(workers)), ports_(std::move(ports)), peer_(std::move(peer)), cfg_(cfg),
      state_(workers_.size()), events_(std::make_unique<Events[]>(workers_.size())),
      reported_(workers_.size()), standby_(std::make_unique<dp::WorkerCounters>()) {
    const auto now = Clock::now();
    for (size_t w = 0; w < workers_.size(); ++w) {
        state_[w].beat = workers_[w]->counters().heartbeat.get();
        state_[w].changed = now;
    }
}

Watchdog::~Watchdog() { release_all(); }

bool Watchdog::start() {
    if (cfg_.stall_ms == 0 || thread_.joinable()) {
        return true;
    }
    try {
        thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
        log_error("watchdog", std::string("cannot start the watchdog thread: ") + e.what());
        return false;
    }
    return true;
}

void Watchdog::run() {
    pthread_setname_np(pthread_self(), "l7g-watchdog");
    // Not registered with rte_thread_register(): that would disable DPDK multi-process, and
    // dpdk-dumpcap attaches as a secondary process. Without an lcore id the mbufs the standby
    // path receives and frees go through the pool's ring rather than a per-lcore cache.
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
        lock.unlock();
        // Forwarding: poll at once, as a worker does, until no worker is taken over.
        while (tick(Clock::now()) && !stopping_.load(std::memory_order_relaxed)) {
        }
        lock.lock();
        // Nothing taken over: sleep until the next heartbeat read (or stop).
        wake_.wait_for(lock, kPoll, [this] { return stop_; });
    }
}

bool Watchdog::tick(Clock::time_point now) {
    if (cfg_.stall_ms == 0) {
        return false;
    }
    bool forwarding = false;
    unsigned moved = 0;
    for (size_t w = 0; w < workers_.size(); ++w) {
        State& st = state_[w];
        Events& ev = events_[w];
        const uint64_t beat = workers_[w]->counters().heartbeat.get();
        if (beat != st.beat) {
            st.beat = beat;
            st.changed = now;
            if (st.stalled) {
                st.stalled = false;
                if (st.standby) {
                    // Between two standby bursts: nothing of ours is inside the queue.
                    workers_[w]->standby_release();
                    st.standby = false;
                }
                recoveries_.fetch_add(1, std::memory_order_relaxed);
                ev.recoveries.fetch_add(1, std::memory_order_release);
            }
            continue;
        }
        if (!st.stalled && now - st.changed >= std::chrono::milliseconds(cfg_.stall_ms)) {
            st.stalled = true;
            stalls_.fetch_add(1, std::memory_order_relaxed);
            ev.stalls.fetch_add(1, std::memory_order_release);
        }
        if (st.stalled && cfg_.fail_open && !st.standby) {
            // Refused while the worker is inside an RX burst: retried next round.
            if (workers_[w]->standby_acquire()) {
                st.standby = true;
                takeovers_.fetch_add(1, std::memory_order_relaxed);
            }
        }
        if (st.standby) {
            moved += forward(w);
            forwarding = true;
        }
    }
    if (forwarding && moved == 0) {
        rte_pause();
    }
    return forwarding;
}

void Watchdog::report() {
    for (size_t w = 0; w < workers_.size(); ++w) {
        const Events& ev = events_[w];
        Reported& r = reported_[w];
        const std::string q = std::to_string(workers_[w]->config().queue);
        const uint64_t stalls = ev.stalls.load(std::memory_order_acquire);
        const uint64_t recoveries = ev.recoveries.load(std::memory_order_acquire);
        if (stalls != r.stalls) {
            r.stalls = stalls;
            log_warning("watchdog", "worker " + q + " stalled: no loop progress for " +
                                        std::to_string(cfg_.stall_ms) + " ms" +
                                        (cfg_.fail_open ? "; forwarding its queues uninspected (--fail-open)" : ""));
        }
        if (recoveries != r.recoveries) {
            r.recoveries = recoveries;
            log_warning("watchdog", "worker " + q + " recovered" +
                                        (cfg_.fail_open ? ", its queues are its own again" : ""));
        }
    }
}

unsigned Watchdog::forward(size_t w) {
    const dp::WorkerConfig& wc = workers_[w]->config();
    rte_mbuf* pkts[dp::kMaxBurst];
    unsigned moved = 0;
    for (uint16_t port : ports_) {
        const uint16_t n = rte_eth_rx_burst(port, wc.queue, pkts, dp::kMaxBurst);
        if (n == 0) {
            continue;
        }
        uint64_t bytes = 0;
        uint32_t len[dp::kMaxBurst];
        for (unsigned i = 0; i < n; ++i) {
            len[i] = pkts[i]->pkt_len;
            bytes += len[i];
        }
        dp::QueueCounters& rx = standby_->port[port];
        rx.rx_packets.add(n);
        rx.rx_bytes.add(bytes);
        standby_->rx_packets.add(n);
        const uint16_t peer = peer_[port];
        const uint16_t sent = rte_eth_tx_burst(peer, cfg_.standby_txq, pkts, n);
        for (unsigned i = sent; i < n; ++i) {
            bytes -= len[i];
            rte_pktmbuf_free(pkts[i]);
        }
        standby_->drops[static_cast<unsigned>(dp::DropReason::TxFull)].add(n - sent);
        standby_->uninspected_packets[static_cast<size_t>(dp::Uninspected::FailOpen)].add(sent);
        standby_->uninspected_bytes[static_cast<size_t>(dp::Uninspected::FailOpen)].add(bytes);
        dp::QueueCounters& tx = standby_->port[peer];
        tx.tx_packets.add(sent);
        tx.tx_bytes.add(bytes);
        moved += n;
    }
    return moved;
}

void Watchdog::release_all() {
    if (thread_.joinable()) {
        {
            std::lock_guard<std::mutex> g(mutex_);
            stop_ = true;
        }
        stopping_.store(true, std::memory_order_relaxed);
        wake_.notify_one();
        thread_.join();  // its last standby burst is over: the queues are free to hand back
    }
    for (size_t w = 0; w < workers_.size(); ++w) {
        if (state_[w].standby) {
            workers_[w]->standby_release();
            state_[w].standby = false;
        }
    }
}

} // namespace l7gate::ctl
