#include "dataplane/worker.hpp"

#include <cstring>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>

namespace l7gate::dp {

bool Worker::init(const WorkerConfig& cfg) noexcept {
    cfg_ = cfg;
    if (!flows_.init(cfg.flows, cfg.timeouts, cfg.socket)) {
        return false;
    }
    if (!frags_.init(cfg.frags, cfg.frag_timeout_s, cfg.socket)) {
        return false;
    }
    for (unsigned i = 0; i < cfg.nb_ports; ++i) {
        for (unsigned j = 0; j < cfg.nb_ports; ++j) {
            if (cfg.port[j] == cfg.peer[i]) {
                peer_idx_[i] = j;
            }
        }
    }
    tsc_hz_ = rte_get_tsc_hz();
    tsc_start_ = rte_rdtsc();
    return true;
}

uint64_t Worker::now_ns() const noexcept {
    const uint64_t d = rte_rdtsc() - tsc_start_;
    return static_cast<uint64_t>(static_cast<unsigned __int128>(d) * 1000000000u / tsc_hz_);
}

void Worker::drop(rte_mbuf* m, DropReason r) noexcept {
    counters_.drops[static_cast<unsigned>(r)].inc();
    rte_pktmbuf_free(m);
}

void Worker::update_tcp(FlowTable& ft, FlowEntry& e, uint8_t flags, uint8_t slot,
                        uint64_t now_ns) noexcept {
    e.tcp_state |= slot == 0 ? tcp_state::kSeen0 : tcp_state::kSeen1;
    if ((flags & tcp_flag::kRst) != 0) {
        e.tcp_state |= tcp_state::kRst;
    }
    if ((flags & tcp_flag::kFin) != 0) {
        e.tcp_state |= slot == 0 ? tcp_state::kFin0 : tcp_state::kFin1;
    }
    const uint8_t st = e.tcp_state;
    if ((st & tcp_state::kRst) != 0 ||
        (st & (tcp_state::kFin0 | tcp_state::kFin1)) == (tcp_state::kFin0 | tcp_state::kFin1)) {
        ft.set_class(e, TimeoutClass::TcpClosed, now_ns);
    } else if (e.tclass == static_cast<uint8_t>(TimeoutClass::TcpSyn) &&
               (st & (tcp_state::kSeen0 | tcp_state::kSeen1)) ==
                   (tcp_state::kSeen0 | tcp_state::kSeen1)) {
        ft.set_class(e, TimeoutClass::Tcp, now_ns);
    }
}

FlowEntry* Worker::flow_for_fragment(const uint8_t* frame, const PacketMeta& m, uint64_t now_ns,
                                     uint8_t& slot) noexcept {
    FragKey fk;
    FragTable::make_key(frame, m, fk);
    const uint32_t idx = frags_.lookup(fk, now_ns, slot);
    if (idx == FragTable::kNone) {
        return nullptr;
    }
    FlowEntry& e = flows_.at(idx);
    // The flow may have expired (and its slot been reused) since the first fragment.
    if ((e.flags & flow_flag::kLive) == 0 || e.key.proto != m.key.proto ||
        e.key.vlan != m.key.vlan || std::memcmp(e.key.addr, m.key.addr, sizeof(e.key.addr)) != 0) {
        return nullptr;
    }
    return &e;
}

unsigned Worker::process_burst(unsigned pi, unsigned n, uint64_t now_ns) noexcept {
    Burst& b = burst_;
    QueueCounters& qc = counters_.port[cfg_.port[pi]];
    uint64_t rx_bytes = 0;

    // Stage 1: parse and hash, prefetching a few packets ahead.
    unsigned nlook = 0;
    for (unsigned i = 0; i < n && i < 3; ++i) {
        rte_prefetch0(rte_pktmbuf_mtod(b.mbufs[i], void*));
    }
    for (unsigned i = 0; i < n; ++i) {
        if (i + 3 < n) {
            rte_prefetch0(rte_pktmbuf_mtod(b.mbufs[i + 3], void*));
        }
        rte_mbuf* m = b.mbufs[i];
        rx_bytes += m->pkt_len;
        PacketMeta& pm = b.meta[i];
        parse_packet(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, pm);
        b.flows[i] = nullptr;
        if (pm.kind == PacketKind::Ip && (!pm.is_fragment || pm.first_fragment)) {
            pm.hash = flow_key_hash(pm.key);
            b.keys[nlook] = &pm.key;
            b.hashes[nlook] = pm.hash;
            b.lookup_slot[nlook] = static_cast<uint8_t>(i);
            ++nlook;
        }
    }
    qc.rx_packets.add(n);
    qc.rx_bytes.add(rx_bytes);
    counters_.rx_packets.add(n);

    // Stage 2: bulk flow lookup.
    FlowEntry* found[kMaxBurst];
    flows_.lookup_burst(b.keys, b.hashes, nlook, found);
    for (unsigned k = 0; k < nlook; ++k) {
        b.flows[b.lookup_slot[k]] = found[k];
    }

    // Stage 3: per packet: create flows, account, decide.
    unsigned nout = 0;
    for (unsigned i = 0; i < n; ++i) {
        rte_mbuf* m = b.mbufs[i];
        const PacketMeta& pm = b.meta[i];
        if (pm.kind == PacketKind::NonIp) {
            counters_.non_ip.inc();
            b.out[nout++] = m;
            continue;
        }
        if (pm.kind == PacketKind::Malformed) {
            counters_.malformed[static_cast<unsigned>(pm.error)].inc();
            if (cfg_.malformed_drop) {
                drop(m, pm.error);
            } else {
                b.out[nout++] = m;
            }
            continue;
        }
        uint8_t slot = pm.reversed;
        FlowEntry* e = b.flows[i];
        if (pm.is_fragment && !pm.first_fragment) {
            e = flow_for_fragment(rte_pktmbuf_mtod(m, const uint8_t*), pm, now_ns, slot);
            if (e == nullptr) {
                counters_.malformed[static_cast<unsigned>(DropReason::FragNoFirst)].inc();
                if (cfg_.malformed_drop) {
                    drop(m, DropReason::FragNoFirst);
                } else {
                    b.out[nout++] = m;
                }
                continue;
            }
            counters_.frag_matched.inc();
        } else if (e == nullptr) {
            // A flow created earlier in this same burst is found by the second lookup.
            e = flows_.lookup(pm.key, pm.hash);
            if (e == nullptr) {
                e = flows_.insert(pm.key, pm.hash, now_ns, slot);
                if (e == nullptr) {
                    counters_.table_full.inc();
                    if (cfg_.table_full_drop) {
                        drop(m, DropReason::TableFull);
                    } else {
                        b.out[nout++] = m;
                    }
                    continue;
                }
                counters_.flows_created.inc();
            }
        }
        flows_.touch(*e, slot, m->pkt_len, now_ns);
        if (pm.l4_proto == 6 && pm.l4_offset != 0) {
            update_tcp(flows_, *e, pm.tcp_flags, slot, now_ns);
        }
        if (pm.is_fragment && pm.first_fragment) {
            FragKey fk;
            FragTable::make_key(rte_pktmbuf_mtod(m, const uint8_t*), pm, fk);
            if (frags_.insert(fk, flows_.index_of(*e), slot, now_ns)) {
                counters_.frag_tracked.inc();
            } else {
                counters_.frag_table_full.inc();
            }
        }
        b.out[nout++] = m;
    }
    return nout;
}

void Worker::housekeeping(uint64_t now_ns) noexcept {
    const unsigned n = flows_.expire(now_ns, kExpireBudget, [](FlowEntry&) {});
    if (n != 0) {
        counters_.flows_expired.add(n);
    }
    counters_.flows_active.set(flows_.active());
}

int Worker::run() noexcept {
    Burst& b = burst_;
    const uint16_t q = cfg_.queue;
    for (uint64_t iter = 1; !stop_.load(std::memory_order_relaxed); ++iter) {
        bool idle = true;
        for (unsigned pi = 0; pi < cfg_.nb_ports; ++pi) {
            const uint16_t n = rte_eth_rx_burst(cfg_.port[pi], q, b.mbufs, kMaxBurst);
            if (n == 0) {
                continue;
            }
            idle = false;
            const uint64_t t0 = rte_rdtsc();
            const uint64_t now = static_cast<uint64_t>(
                static_cast<unsigned __int128>(t0 - tsc_start_) * 1000000000u / tsc_hz_);
            const unsigned nout = process_burst(pi, n, now);
            if (nout != 0) {
                uint64_t bytes = 0;
                for (unsigned i = 0; i < nout; ++i) {
                    b.out_len[i] = b.out[i]->pkt_len;
                    bytes += b.out_len[i];
                }
                const uint16_t peer = cfg_.peer[pi];
                const uint16_t sent = rte_eth_tx_burst(peer, q, b.out, static_cast<uint16_t>(nout));
                if (sent < nout) {
                    for (unsigned i = sent; i < nout; ++i) {
                        bytes -= b.out_len[i];
                        drop(b.out[i], DropReason::TxFull);
                    }
                }
                QueueCounters& pc = counters_.port[peer];
                pc.tx_packets.add(sent);
                pc.tx_bytes.add(bytes);
            }
            counters_.bursts.inc();
            counters_.busy_cycles.add(rte_rdtsc() - t0);
        }
        if (idle) {
            counters_.idle_polls.inc();
        }
        if (idle || (iter & (kHousekeepingEvery - 1)) == 0) {
            housekeeping(now_ns());
            counters_.heartbeat.set(iter);
        }
    }
    counters_.flows_active.set(flows_.active());
    return 0;
}

} // namespace l7gate::dp
