#include "control/ops/watchdog.hpp"

#include <string>

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "control/base/log.hpp"
#include "dataplane/worker.hpp"

namespace l7gate::ctl {

Watchdog::Watchdog(std::vector<dp::Worker*> workers, std::vector<uint16_t> ports, std::vector<uint16_t> peer,
                   WatchdogConfig cfg)
    : workers_(std::move(workers)), ports_(std::move(ports)), peer_(std::move(peer)), cfg_(cfg),
      state_(workers_.size()), standby_(std::make_unique<dp::WorkerCounters>()) {
    const auto now = Clock::now();
    for (size_t w = 0; w < workers_.size(); ++w) {
        state_[w].beat = workers_[w]->counters().heartbeat.get();
        state_[w].changed = now;
    }
}

bool Watchdog::tick(Clock::time_point now) {
    if (cfg_.stall_ms == 0) {
        return false;
    }
    bool forwarding = false;
    for (size_t w = 0; w < workers_.size(); ++w) {
        State& st = state_[w];
        const unsigned q = workers_[w]->config().queue;
        const uint64_t beat = workers_[w]->counters().heartbeat.get();
        if (beat != st.beat) {
            st.beat = beat;
            st.changed = now;
            if (st.stalled) {
                st.stalled = false;
                ++recoveries_;
                if (st.standby) {
                    // Between two standby bursts: nothing of ours is inside the queue.
                    workers_[w]->standby_release();
                    st.standby = false;
                }
                log_warning("watchdog", "worker " + std::to_string(q) + " recovered" +
                                            (cfg_.fail_open ? ", its queues are its own again" : ""));
            }
            continue;
        }
        if (!st.stalled && now - st.changed >= std::chrono::milliseconds(cfg_.stall_ms)) {
            st.stalled = true;
            ++stalls_;
            log_warning("watchdog", "worker " + std::to_string(q) + " stalled: no loop progress for " +
                                        std::to_string(cfg_.stall_ms) + " ms" +
                                        (cfg_.fail_open ? "; forwarding its queues uninspected (--fail-open)" : ""));
        }
        if (st.stalled && cfg_.fail_open && !st.standby) {
            // Refused while the worker is inside an RX burst: retried next tick.
            if (workers_[w]->standby_acquire()) {
                st.standby = true;
                ++takeovers_;
            }
        }
        if (st.standby) {
            forward(w);
            forwarding = true;
        }
    }
    return forwarding;
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
        dp::QueueCounters& tx = standby_->port[peer];
        tx.tx_packets.add(sent);
        tx.tx_bytes.add(bytes);
        moved += n;
    }
    return moved;
}

void Watchdog::release_all() {
    for (size_t w = 0; w < workers_.size(); ++w) {
        if (state_[w].standby) {
            workers_[w]->standby_release();
            state_[w].standby = false;
        }
    }
}

} // namespace l7gate::ctl
