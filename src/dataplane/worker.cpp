#include "dataplane/worker.hpp"

#include "dataplane/inject.hpp"
#include "dataplane/memory.hpp"

#include <ndpi_api.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <ctime>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_pause.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <rte_ring_peek_zc.h>

// Stage timers (meson -Dprofiling=true): compiled out of release builds entirely.
#if L7G_PROFILING
#define L7G_TSC(var) const uint64_t var = rte_rdtsc()
#define L7G_STAGE_ADD(stage, cycles) counters_.stage_cycles[static_cast<size_t>(Stage::stage)].add(cycles)
#else
#define L7G_TSC(var)
#define L7G_STAGE_ADD(stage, cycles)
#endif

namespace l7gate::dp {

const char* Worker::init(const WorkerConfig& cfg) noexcept {
    cfg_ = cfg;
    for (PacketMeta& pm : burst_.meta) {
        pm.no_decap = static_cast<uint8_t>(~cfg.decap & kDecapAll);  // an input of the parser, never reset by it
    }
    if (cfg.flow_secret == nullptr ? !flows_.init(cfg.flows, cfg.timeouts, cfg.socket)
                                   : !flows_.init(cfg.flows, cfg.timeouts, cfg.socket, *cfg.flow_secret)) {
        return "cannot allocate the flow table or draw its hash secret (lower --flows or give EAL more memory)";
    }
    isn_ = static_cast<uint32_t*>(table_alloc(sizeof(uint32_t) * flows_.capacity(), cfg.socket));
    if (isn_ == nullptr) {
        return "cannot allocate the flow table (lower --flows or give EAL more memory)";
    }
    ff_ = static_cast<uint32_t*>(table_alloc(sizeof(uint32_t) * flows_.capacity(), cfg.socket));
    if (ff_ == nullptr || !ff_pool_.init(cfg.first_flight, cfg.socket)) {
        return "cannot allocate the first-flight reassembly buffers (lower --first-flight-bytes or --first-flight-flows)";
    }
    if (cfg.active_timeout_s != 0 && cfg.flow_log != nullptr) {
        reported_ = static_cast<Reported*>(table_alloc(sizeof(Reported) * flows_.capacity(), cfg.socket));
        if (reported_ == nullptr) {
            return "cannot allocate the active-timeout state (lower --flows or turn --ipfix-active-timeout off)";
        }
        std::memset(reported_, 0, sizeof(Reported) * flows_.capacity());
        // Steps of kActiveBudget entries, paced so that a whole pass takes an eighth of the
        // timeout: a report is late by at most that, and the scan costs the packet path
        // nothing measurable (a step every housekeeping read a cache line per packet at line
        // rate). A pass covers the entries that ever held a flow (FlowTable::high_water()),
        // not a table sized for a peak that is mostly empty.
        active_pass_ns_ = uint64_t{cfg.active_timeout_s} * 1000000000u / 8u;
    }
    constexpr uint8_t kIpCarried = kDecapAll & ~(1u << static_cast<unsigned>(Encap::Pppoe) | 1u << static_cast<unsigned>(Encap::Mpls));
    if (cfg.flow_log != nullptr && (cfg.decap & kIpCarried) != 0) {
        // Written only at a tunnelled flow's creation, so never read uninitialised: no memset.
        outer_ = static_cast<Outer*>(table_alloc(sizeof(Outer) * flows_.capacity(), cfg.socket));
        if (outer_ == nullptr) {
            return "cannot allocate the tunnelled flows' outer addresses (lower --flows or narrow --decap)";
        }
    }
    if (!frags_.init(cfg.frags, cfg.frag_timeout_s, cfg.socket)) {
        return "cannot allocate the fragment table (lower --frags)";
    }
    if (const char* err = classifier_.init(cfg.classifier, cfg.socket); err != nullptr) {
        return err;
    }
    ShaperBuckets* buckets = cfg.shaper_buckets;
    if (buckets == nullptr) {
        void* mem = table_alloc(sizeof(ShaperBuckets), cfg.socket);
        if (mem == nullptr) {
            return "cannot allocate the shaper buckets";
        }
        own_buckets_ = buckets = new (mem) ShaperBuckets();
        if (!buckets->seeded()) {
            return "cannot draw the shaper's per-host key secret (getrandom)";
        }
    }
    if (const char* err = shaper_.init(buckets, cfg.socket, cfg.shaper_backlog, &counters_.shaper_host_buckets_full);
        err != nullptr) {
        return err;
    }
    counters_.shaper_backlog_cap.set(cfg.shaper_backlog);
    if (cfg.mtu < kMtuMin || cfg.mtu > kMtuMax) {
        return "MTU out of range";
    }
    max_frame_ = max_frame_len(cfg.mtu);
    short_frame_ = cfg.mtu + 14;
    linear_stride_ = (max_frame_ + 63) & ~63u;
    linear_ = static_cast<uint8_t*>(table_alloc(size_t{kMaxBurst} * linear_stride_, cfg.socket));
    if (linear_ == nullptr) {
        return "cannot allocate the worker's frame buffer for multi-segment frames";
    }
    if (!commands_.init(cfg.socket)) {
        return "cannot allocate the worker's command rings";
    }
    for (unsigned i = 0; i < cfg.nb_ports; ++i) {
        for (unsigned j = 0; j < cfg.nb_ports; ++j) {
            if (cfg.port[j] == cfg.peer[i]) {
                peer_idx_[i] = j;
            }
        }
    }
    tsc_hz_ = rte_get_tsc_hz();
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    tsc_start_ = rte_rdtsc();
    epoch_start_ns_ = static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
    return nullptr;
}

Worker::~Worker() {
    table_free(isn_);
    table_free(ff_);
    table_free(linear_);
    table_free(reported_);
    table_free(outer_);
    if (own_buckets_ != nullptr) {
        own_buckets_->~ShaperBuckets();
        table_free(own_buckets_);
    }
}

uint64_t Worker::now_ns() const noexcept {
    if (cfg_.capture_clock) {
        return last_time_ns_;  // replays: time moves only with the capture
    }
    const uint64_t d = rte_rdtsc() - tsc_start_;
    return epoch_start_ns_ + static_cast<uint64_t>(static_cast<unsigned __int128>(d) * 1000000000u / tsc_hz_);
}

uint64_t Worker::capture_time(const rte_mbuf* m) noexcept {
    if ((m->ol_flags & cfg_.timestamp_flag) != 0) {
        const uint64_t ts = *RTE_MBUF_DYNFIELD(m, cfg_.timestamp_offset, const rte_mbuf_timestamp_t*);
        const uint64_t t = ts * cfg_.timestamp_scale_ns;
        // Captures can step back a little (merged files, clock fixes); time never does here,
        // as in ndpiReader.
        if (t > last_time_ns_) {
            last_time_ns_ = t;
        }
    }
    return last_time_ns_;
}

void Worker::end_flow(FlowEntry& e, FlowEnd why) noexcept {
    if (e.ff_held()) {
        unsigned unused = 0;
        ff_release(ff_[flows_.index_of(e)], DropReason::FfAbandoned, unused);  // never completed
        e.set_ff_over();
    }
    if (e.dpi_state() == DpiState::Classifying || e.dpi_state() == DpiState::Pending) {
        classifier_.finish_at_end(e);
        emit_scores(e, e.last_ns);
    }
    if (cfg_.flow_log != nullptr) {
        FlowRecord* r = record_slot();
        // At shutdown the control thread is draining the ring: wait for room (bounded)
        // rather than lose the final records. In the loop a full ring never blocks.
        for (unsigned spin = 0; r == nullptr && why == FlowEnd::Shutdown && spin < 2000000; ++spin) {
            rte_pause();
            r = record_slot();
        }
        if (r != nullptr) {
            fill_record(e, why, *r);
            rte_ring_enqueue_zc_elem_finish(cfg_.flow_log, 1);
            counters_.flow_log_records.inc();
        } else {
            counters_.flow_log_lost.inc();
        }
    }
    if (reported_ != nullptr) {
        std::memset(&reported_[flows_.index_of(e)], 0, sizeof(Reported));  // the entry's next flow starts afresh
    }
    classifier_.release(e);
}

// The next free slot of the record ring, written in place (rte_ring's zero-copy enqueue: the
// record is built once, in the ring, instead of on the stack and then copied); nullptr when the
// ring is full. The ring is single-producer: the slot stays this worker's until
// rte_ring_enqueue_zc_elem_finish() publishes it.
inline FlowRecord* Worker::record_slot() noexcept {
    rte_ring_zc_data zcd;
    if (rte_ring_enqueue_zc_burst_elem_start(cfg_.flow_log, sizeof(FlowRecord), 1, &zcd, nullptr) == 0) {
        return nullptr;
    }
    return static_cast<FlowRecord*>(zcd.ptr1);  // one element never wraps
}

[[gnu::always_inline]] inline void Worker::fill_record(const FlowEntry& e, FlowEnd why, FlowRecord& r) noexcept {
    // Every byte is written once (the record has no implicit padding): the parts that only
    // some flows have are zeroed in their own branch, not by a memset of the whole record
    // first (a rep stos of 38 words per ended flow).
    r.key = e.key;
    r.client_slot = e.client_slot();
    r.category = e.category;
    r.verdict = e.action;
    r.end = static_cast<uint8_t>(why);
    r.reason = static_cast<uint16_t>(e.reason & ~cached::kUnenforced);
    r.unenforced = cached::enforced(e.reason) ? 0 : 1;
    r.outer_version = 0;
    r.pad[0] = 0;
    r.pad[1] = 0;
    r.risk_excepted = 0;
    if (policy_ != nullptr && e.risk != 0 && policy_->any_exceptions) [[unlikely]] {
        // Which risks an exception covers (MAC pools cannot be told apart here: by IP).
        char lower[80];
        FlowFacts f = facts(e, lower);
        f.l7_known = true;
        r.risk_excepted = policy_->excepted_risks(f);
    }
    r.first_ns = e.first_ns;
    r.last_ns = e.last_ns;
    r.packets[0] = e.packets[0];
    r.packets[1] = e.packets[1];
    r.bytes[0] = e.bytes[0];
    r.bytes[1] = e.bytes[1];
    r.risk = e.risk;
    r.master_proto = e.master_proto;
    r.app_proto = e.app_proto;
    r.worker = cfg_.queue;
    if (const FlowMeta* m = classifier_.meta(e); m != nullptr) {
        std::memcpy(r.host, m->host, sizeof(r.host));
        std::memcpy(r.ja3c, m->ja3c, sizeof(r.ja3c));
        std::memcpy(r.ja3s, m->ja3s, sizeof(r.ja3s));
        r.tls_version = m->tls_version;
    } else {
        std::memset(r.host, 0, sizeof(r.host));
        std::memset(r.ja3c, 0, sizeof(r.ja3c));
        std::memset(r.ja3s, 0, sizeof(r.ja3s));
        r.tls_version = 0;
    }
    if (reported_ != nullptr) {
        const Reported& p = reported_[flows_.index_of(e)];
        r.reported_packets[0] = p.packets[0];
        r.reported_packets[1] = p.packets[1];
        r.reported_bytes[0] = p.bytes[0];
        r.reported_bytes[1] = p.bytes[1];
    } else {
        std::memset(r.reported_packets, 0, sizeof(r.reported_packets));
        std::memset(r.reported_bytes, 0, sizeof(r.reported_bytes));
    }
    if (e.key.tunnel != 0 && outer_ != nullptr) [[unlikely]] {
        const Outer& o = outer_[flows_.index_of(e)];
        r.outer_version = o.version;
        std::memcpy(r.outer_src, o.src, sizeof(r.outer_src));
        std::memcpy(r.outer_dst, o.dst, sizeof(r.outer_dst));
    } else {
        std::memset(r.outer_src, 0, sizeof(r.outer_src));
        std::memset(r.outer_dst, 0, sizeof(r.outer_dst));
    }
}

void Worker::report_active(uint64_t now_ns) noexcept {
    if (now_ns < active_next_ns_) {
        return;
    }
    const uint32_t end = flows_.high_water();
    active_next_ns_ = now_ns + active_pass_ns_ / std::max<uint64_t>(1, (end + kActiveBudget - 1) / kActiveBudget);
    const uint64_t timeout = uint64_t{cfg_.active_timeout_s} * 1000000000u;
    for (unsigned k = 0; k < kActiveBudget && k < end; ++k) {
        const uint32_t i = active_cursor_ < end ? active_cursor_ : 0;
        active_cursor_ = i + 1;
        const FlowEntry& e = flows_.at(i);
        if (!e.live()) {
            continue;
        }
        Reported& p = reported_[i];
        // Due when it has been active for a timeout since its start or its last report (a
        // packet that late): a flow that went quiet is left to its idle timeout, whose record
        // says the rest, as nProbe's lifetime timeout does.
        if (e.last_ns < (p.at_ns != 0 ? p.at_ns : e.first_ns) + timeout) {
            continue;
        }
        // Never waits: a full ring loses this report (counted as the flow log's ring_full); the
        // flow is due again on the next pass and its next record carries what this one missed.
        FlowRecord* r = record_slot();
        if (r == nullptr) {
            counters_.flow_log_lost.inc();
            continue;
        }
        fill_record(e, FlowEnd::Active, *r);
        rte_ring_enqueue_zc_elem_finish(cfg_.flow_log, 1);
        counters_.flow_log_records.inc();
        p.at_ns = now_ns;
        p.packets[0] = e.packets[0];
        p.packets[1] = e.packets[1];
        p.bytes[0] = e.bytes[0];
        p.bytes[1] = e.bytes[1];
    }
}


void Worker::drop(rte_mbuf* m, DropReason r) noexcept {
    counters_.drops[static_cast<unsigned>(r)].inc();
    // Freed in bulk (one mempool put for many): a dropped flow's packets cost no more than
    // forwarded ones, whose PMD frees them in bulk too.
    dropped_[ndropped_++] = m;
    if (ndropped_ == kDropBatch) {
        free_dropped();
    }
}

void Worker::free_dropped() noexcept {
    if (ndropped_ != 0) {
        rte_pktmbuf_free_bulk(dropped_, ndropped_);
        ndropped_ = 0;
    }
}

void Worker::monitored(const rte_mbuf* m, uint8_t action, bool blocked) noexcept {
    const Monitored k = blocked                     ? Monitored::Block
                        : action == cached::kDrop   ? Monitored::Drop
                        : action == cached::kReject ? Monitored::Reject
                        : cached::police(action)    ? Monitored::Police
                                                    : Monitored::Shape;
    counters_.monitor_forwarded_packets[static_cast<size_t>(k)].inc();
    counters_.monitor_forwarded_bytes[static_cast<size_t>(k)].add(m->pkt_len);
}

bool Worker::shape(rte_mbuf* m, const FlowEntry& e, unsigned pi, uint64_t now_ns, uint8_t tag) noexcept {
    const uint8_t si = cached::shaper(e.action);
    if (policy_ == nullptr || si >= policy_->shapers.size() || !policy_->shapers[si].defined) {
        return true;  // a verdict kept from an older snapshot whose shaper is gone: unshaped
    }
    const ShaperProfile& sp = policy_->shapers[si];
    const uint8_t port = static_cast<uint8_t>(cfg_.peer[pi]);
    uint64_t host_key = 0;
    if (sp.per_host) {
        const unsigned local = cached::local_is_server(e.action) ? e.client_slot() ^ 1u : e.client_slot();
        host_key = shaper_.host_key(si, port, e.key.addr[local]);
    }
    ShaperCounters& sc = counters_.shaper[si];
    DropReason why = DropReason::ShaperOverflow;
    switch (shaper_.admit(m, sp, si, cached::police(e.action), port, static_cast<uint8_t>(peer_idx_[pi]), host_key,
                          now_ns, why, tag)) {
    case Admit::Send:
        sc.sent.inc();
        sc.bytes.add(m->pkt_len);
        return true;
    case Admit::Queued:
        sc.queued.inc();
        return false;
    case Admit::Drop:
        break;
    }
    sc.dropped.inc();
    drop(m, why);
    return false;
}

void Worker::flush_shaped(unsigned out) noexcept {
    const unsigned n = shaped_n_[out];
    shaped_n_[out] = 0;
    rte_mbuf** pkts = shaped_tx_[out];
    uint32_t len[kMaxBurst];
    uint64_t bytes = 0;
    for (unsigned i = 0; i < n; ++i) {
        len[i] = pkts[i]->pkt_len;
        bytes += len[i];
    }
    const uint16_t port = cfg_.port[out];
    const uint16_t sent = rte_eth_tx_burst(port, cfg_.queue, pkts, static_cast<uint16_t>(n));
    for (unsigned i = sent; i < n; ++i) {
        bytes -= len[i];
        drop(pkts[i], DropReason::TxFull);
    }
    QueueCounters& pc = counters_.port[port];
    pc.tx_packets.add(sent);
    pc.tx_bytes.add(bytes);
}

void Worker::drain_shaper(uint64_t now_ns) noexcept {
    shaper_.drain(
        policy_, now_ns,
        [this](uint8_t si, uint8_t out, rte_mbuf* m) {
            ShaperCounters& sc = counters_.shaper[si];
            sc.delayed.inc();
            sc.queued.sub(1);
            sc.bytes.add(m->pkt_len);
            if (const uint8_t tag = shaper_.tag(m); tag != 0) [[unlikely]] {
                uninspected(static_cast<Uninspected>(tag - 1), m);  // queued as uninspected (shape())
            }
            shaped_tx_[out][shaped_n_[out]++] = m;
            if (shaped_n_[out] == kMaxBurst) {
                flush_shaped(out);
            }
        },
        [this](uint8_t si, rte_mbuf* m) {
            counters_.shaper[si].dropped.inc();
            counters_.shaper[si].queued.sub(1);
            drop(m, DropReason::ShaperDelay);
        });
    for (unsigned out = 0; out < cfg_.nb_ports; ++out) {
        if (shaped_n_[out] != 0) {
            flush_shaped(out);
        }
    }
    free_dropped();
    counters_.shaper_backlog.set(shaper_.backlog());
}

void Worker::flush_shaper() noexcept {
    shaper_.flush([this](rte_mbuf* m) { drop(m, DropReason::ShaperFlush); });
    free_dropped();
    counters_.shaper_backlog.set(0);
    for (ShaperCounters& sc : counters_.shaper) {
        sc.queued.set(0);
    }
}

// A packet forwarded without its content classified: counted under its one cause.
inline void Worker::uninspected(Uninspected cause, const rte_mbuf* m) noexcept {
    counters_.uninspected_packets[static_cast<size_t>(cause)].inc();
    counters_.uninspected_bytes[static_cast<size_t>(cause)].add(m->pkt_len);
}

// What shape() carries with a queued packet: 1 + the cause process_burst counts the packet
// under when it leaves at once (a tunnel not looked into, a flow without nDPI state), 0 when
// it is inspected. Only shaped packets compute it.
static inline uint8_t uninspected_tag(TunSkip skip, DpiState dpi) noexcept {
    return skip != TunSkip::None     ? static_cast<uint8_t>(1 + static_cast<unsigned>(Uninspected::Encapsulation))
           : dpi == DpiState::None ? static_cast<uint8_t>(1 + static_cast<unsigned>(Uninspected::NoDpiState))
                                     : 0;
}

// A tunnelled packet (or a tunnel not looked into), off the plain path: counted by
// encapsulation, and an inner flow's key gets its tunnel discriminator, a keyed hash (the
// flow table's secret) of the encapsulation, the carrier's addresses and the tunnel id, so that
// the same inner 5-tuple in two tunnels is two flows and nobody can aim at a tunnel's buckets.
void Worker::tunnelled(PacketMeta& pm) noexcept {
    if (pm.tun_skip != TunSkip::None) {
        counters_.encap_skipped[static_cast<size_t>(pm.skip_encap)][static_cast<size_t>(pm.tun_skip)].inc();
    }
    if (pm.encap == Encap::None || pm.kind != PacketKind::Ip) {
        return;
    }
    counters_.encap_packets[static_cast<size_t>(pm.encap)].inc();
    struct {
        uint8_t addr[2][16];
        uint32_t id;
        uint8_t encap;
        uint8_t version;
        uint16_t zero;
    } t{};
    // Direction-independent, as the key: the carrier's addresses in order.
    const bool swap = std::memcmp(pm.outer_src, pm.outer_dst, 16) > 0;
    std::memcpy(t.addr[0], swap ? pm.outer_dst : pm.outer_src, 16);
    std::memcpy(t.addr[1], swap ? pm.outer_src : pm.outer_dst, 16);
    // GTP-U TEIDs and MPLS labels differ by direction (each end assigns the one it receives
    // on): they would split a flow's two directions, so the carrier's addresses stand for them.
    t.id = pm.encap == Encap::GtpU || pm.encap == Encap::Mpls ? 0 : pm.tunnel_id;
    t.encap = static_cast<uint8_t>(pm.encap);
    t.version = pm.outer_version;
    const uint64_t h = siphash_bytes<sizeof(t)>(&t, flows_.secret());
    const auto tag = static_cast<uint16_t>(h ^ h >> 16 ^ h >> 32 ^ h >> 48);
    pm.key.tunnel = tag != 0 ? tag : 1;
}

// A tunnelled flow's entry was created by pm: its carrier's addresses, for the flow's records.
void Worker::remember_outer(const FlowEntry& e, const PacketMeta& pm) noexcept {
    Outer& o = outer_[flows_.index_of(e)];
    std::memcpy(o.src, pm.outer_src, sizeof(o.src));
    std::memcpy(o.dst, pm.outer_dst, sizeof(o.dst));
    o.version = pm.outer_version;
}

void Worker::reject(const rte_mbuf* m, const PacketMeta& pm, uint64_t now_ns) noexcept {
    if (pm.encap != Encap::None) {
        // A RST or ICMP error for the inner flow would need the tunnel's headers rebuilt
        // (lengths, checksums, GTP/VXLAN fields): a tunnelled flow's reject is a drop.
        counters_.reject_tunnelled.inc();
        return;
    }
    if (cfg_.reject_rate == 0) {
        return;
    }
    if (m->nb_segs != 1 && pm.payload_offset > m->data_len) [[unlikely]] {
        // The reject packets are built from the first segment's headers; these run beyond it.
        counters_.inject_failed.inc();
        return;
    }
    if (reject_forbidden(rte_pktmbuf_mtod(m, const uint8_t*), pm)) {
        counters_.reject_suppressed.inc();  // dropped in silence (RFC 793, RFC 1122)
        return;
    }
    // Token bucket in nanoseconds of credit: one packet costs 1e9 / rate; at most a tenth of
    // a second of credit (and at least two packets) builds up, so a flood of rejected flows
    // cannot turn the gateway into an amplifier.
    const uint64_t cost = 1000000000ull / cfg_.reject_rate;
    const uint64_t cap = cost * (cfg_.reject_rate / 10 > 2 ? cfg_.reject_rate / 10 : 2);
    const uint64_t gained = now_ns > inj_last_ns_ ? now_ns - inj_last_ns_ : 0;
    inj_last_ns_ = now_ns;
    inj_credit_ns_ = inj_credit_ns_ + gained > cap ? cap : inj_credit_ns_ + gained;
    const unsigned want = pm.l4_proto == 6 ? ((pm.tcp_flags & tcp_flag::kAck) != 0 ? 2u : 1u) : 1u;
    if (inj_credit_ns_ < cost * want) {
        counters_.inject_limited.add(want);
        return;
    }
    // run() sends these after every burst (at most one of each per packet fits); a caller
    // driving process_burst() itself may not, so never write past the arrays.
    if (inj_back_n_ == sizeof(inj_back_) / sizeof(inj_back_[0]) || inj_fwd_n_ == sizeof(inj_fwd_) / sizeof(inj_fwd_[0])) {
        counters_.inject_failed.inc();
        return;
    }
    RejectPackets rp;
    bool nomem = false;
    if (build_reject(m, pm, rp, nomem) == 0 && !nomem) {
        return;  // nothing to say for this protocol
    }
    if (nomem) {
        counters_.inject_failed.inc();
    }
    if (rp.back != nullptr) {
        inj_credit_ns_ -= cost;
        inj_back_[inj_back_n_++] = rp.back;
    }
    if (rp.forward != nullptr) {
        inj_credit_ns_ -= cost;
        inj_fwd_[inj_fwd_n_++] = rp.forward;
    }
}

void Worker::flush_injected(unsigned pi) noexcept {
    const uint16_t q = cfg_.queue;
    auto send = [&](uint16_t port, rte_mbuf** pkts, unsigned& n) {
        if (n == 0) {
            return;
        }
        const uint16_t sent = rte_eth_tx_burst(port, q, pkts, static_cast<uint16_t>(n));
        counters_.injected.add(sent);
        for (unsigned i = sent; i < n; ++i) {
            rte_pktmbuf_free(pkts[i]);
            counters_.inject_failed.inc();
        }
        n = 0;
    };
    send(cfg_.port[pi], inj_back_, inj_back_n_);
    send(cfg_.peer[pi], inj_fwd_, inj_fwd_n_);
}

void Worker::update_tcp(FlowTable& ft, FlowEntry& e, uint8_t flags, uint8_t slot,
                        uint64_t now_ns) noexcept {
    if ((flags & tcp_flag::kRst) != 0) {
        e.add_tcp(tcp_state::kRst);
    }
    if ((flags & tcp_flag::kFin) != 0) {
        e.add_tcp(slot == 0 ? tcp_state::kFin0 : tcp_state::kFin1);
    }
    const uint8_t st = e.tcp();
    if ((st & tcp_state::kRst) != 0 ||
        (st & (tcp_state::kFin0 | tcp_state::kFin1)) == (tcp_state::kFin0 | tcp_state::kFin1)) {
        ft.set_class(e, TimeoutClass::TcpClosed, now_ns);
    } else if (e.tclass() == TimeoutClass::TcpSyn &&
               (st & (tcp_state::kSeen0 | tcp_state::kSeen1)) ==
                   (tcp_state::kSeen0 | tcp_state::kSeen1)) {
        ft.set_class(e, TimeoutClass::Tcp, now_ns);
    }
}

FlowFacts Worker::facts(const FlowEntry& e, char (&lower)[80]) const noexcept {
    FlowFacts f;
    const uint8_t c = e.client_slot();
    f.ip_version = e.key.ip_version;
    f.client_ip = e.key.addr[c];
    f.server_ip = e.key.addr[c ^ 1];
    f.l7_known = (e.dpi_state() != DpiState::Classifying && e.dpi_state() != DpiState::Pending) || e.app_proto != 0;
    f.master_proto = e.master_proto;
    f.app_proto = e.app_proto;
    f.category = e.category;
    f.risk = e.risk;
    // As a server reads the name: "Host:  WWW.YouTube.com. " is www.youtube.com (blanks
    // around it dropped, the DNS root's trailing dot too; lowercased below), for every rule.
    std::string_view h = classifier_.host(e);
    while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) {
        h.remove_prefix(1);
    }
    while (!h.empty() && (h.back() == ' ' || h.back() == '\t' || h.back() == '.')) {
        h.remove_suffix(1);
    }
    const size_t n = h.size() < sizeof(lower) ? h.size() : sizeof(lower);
    for (size_t i = 0; i < n; ++i) {
        lower[i] = HostTable::lower(h[i]);
    }
    f.host = std::string_view(lower, n);
    return f;
}

uint16_t Worker::unenforced_bit(const FlowEntry& e, const PolicySnapshot& pol, const rte_mbuf* m,
                                uint8_t slot) const noexcept {
    if (!pol.any_monitor) {
        return 0;
    }
    char lower[80];
    FlowFacts f = facts(e, lower);
    if (m->data_len >= 12) {
        const uint8_t* eth = rte_pktmbuf_mtod(m, const uint8_t*);
        const bool from_client = slot == e.client_slot();
        f.client_mac = from_client ? eth + 6 : eth;
        f.server_mac = from_client ? eth : eth + 6;
    }
    return pol.unenforced_bit(f);
}

void Worker::emit_scores(const FlowEntry& e, uint64_t now_ns) noexcept {
    if (cfg_.scores == nullptr || e.risk == 0) {
        return;
    }
    uint16_t cs = 0;
    uint16_t ss = 0;
    ndpi_risk2score(e.risk, &cs, &ss);
    const uint8_t c = e.client_slot();
    for (int role = 0; role < 2; ++role) {
        ScoreEvent ev{};
        const uint8_t* a = e.key.addr[role == 0 ? c : c ^ 1];
        std::memcpy(ev.addr, a, 16);
        ev.ip_version = e.key.ip_version;
        ev.role = static_cast<uint8_t>(role);
        ev.score = role == 0 ? cs : ss;
        ev.time_ns = now_ns;
        if (ev.score == 0) {
            continue;
        }
        if (rte_ring_sp_enqueue_elem(cfg_.scores, &ev, sizeof(ev)) == 0) {
            counters_.score_events.inc();
        } else {
            counters_.score_events_lost.inc();
        }
    }
}

bool Worker::saw_policy(uint16_t g) const noexcept {
    // Epoch changes between the flow's verdict (g, not 0) and now, on the cycle 1..65535 that
    // the epoch runs through.
    const uint32_t age = (static_cast<uint32_t>(epoch_) + 65535u - g) % 65535u;
    return age <= epochs_since_policy_;
}

void Worker::decide(FlowEntry& e, const PolicySnapshot& pol, const rte_mbuf* m, uint8_t slot, bool changed) noexcept {
    // Why here: a new flow (g == 0; or one whose nDPI state was reclaimed), new facts (changed:
    // protocol, risks), a new policy snapshot, or only a new blocked set.
    const uint16_t g = e.generation;
    const bool policy_seen = g != 0 && saw_policy(g);
    e.generation = epoch_;
    if (blocked_ != nullptr &&
        (blocked_->contains(e.key.ip_version, e.key.addr[0]) || blocked_->contains(e.key.ip_version, e.key.addr[1]))) {
        // In monitor mode (the local host's policy) the block is recorded, not enforced.
        const uint16_t reason = static_cast<uint16_t>(blocked_->reason | unenforced_bit(e, pol, m, slot));
        if (!e.blocked_verdict() || e.action != cached::kDrop || e.reason != reason) {
            e.action = cached::kDrop;
            e.reason = reason;
            e.set_blocked_verdict(true);
            counters_.reason_flows[e.reason & (kMaxReasons - 1)].inc();
        }
        return;
    }
    if (e.blocked_verdict()) {
        // Released: no host of the flow is blocked any more. The policy decides again, now:
        // a long-lived flow does not wait for an idle timeout that its packets keep pushing
        // back. A flow without its metadata record stays dropped: the policy's verdict saw a
        // hostname that the flow no longer has, and was replaced by the block.
        e.set_blocked_verdict(false);
        if (e.meta_lost()) {
            return;
        }
    } else if (policy_seen && !changed) {
        return;  // only the blocked set moved, and it holds neither host: a cheap check
    } else if (cached::drops(e.action) && (g == 0 || policy_seen)) {
        return;  // under the policy that dropped (or rejected) it, a flow stays so
    } else if (!changed && g != 0 && e.meta_lost() &&
               (!cached::shaped(e.action) ||
                (cached::shaper(e.action) < pol.shapers.size() && pol.shapers[cached::shaper(e.action)].defined))) {
        // A new policy, and its hostname is gone: the verdict that saw it stands. A shaped one
        // names its shaper by slot, the same name's in every snapshot (ShaperSlots). When the
        // new policy no longer defines that shaper, the kept verdict means nothing any more:
        // the new policy decides, without the hostname, rather than the packets leaving
        // unshaped.
        return;
    }
    const uint8_t c = e.client_slot();
    char lower[80];
    FlowFacts f = facts(e, lower);
    if (m->data_len >= 12) {
        const uint8_t* eth = rte_pktmbuf_mtod(m, const uint8_t*);
        // This packet's source MAC belongs to its sender.
        const bool from_client = slot == c;
        f.client_mac = from_client ? eth + 6 : eth;
        f.server_mac = from_client ? eth : eth + 6;
    }
    const Verdict v = pol.evaluate(f, cfg_.queue);
    counters_.policy_evaluations.inc();
    const uint8_t action = cached::encode(v.action, v.shaper, v.local_is_server);
    const uint16_t reason = static_cast<uint16_t>(v.reason | (v.enforced ? 0 : cached::kUnenforced));
    if (action != e.action || reason != e.reason) {
        e.action = action;
        e.reason = reason;
        counters_.reason_flows[v.reason & (kMaxReasons - 1)].inc();
    }
}

void Worker::reclaim_half_open(const FlowEntry& fresh, uint64_t now_ns) noexcept {
    // Under a SYN flood, half-open flows would hold every nDPI state until their timeout and
    // legitimate flows would go unclassified. The oldest half-open flow gives its state up
    // and moves to the short closed-TCP timeout, out of the half-open list, so the next
    // reclaim finds the next oldest at the head.
    uint32_t idx = flows_.oldest(TimeoutClass::TcpSyn);
    for (unsigned n = 0; n < kReclaimScan && idx != FlowTable::kNil; ++n) {
        FlowEntry& v = flows_.at(idx);
        const uint32_t next = v.next;
        if (&v != &fresh) {
            if (v.dpi_state() == DpiState::Classifying) {
                classifier_.reclaim(v);
            }
            v.generation = 0;  // decide again on its next packet
            flows_.set_class(v, TimeoutClass::TcpClosed, now_ns);
            if (classifier_.has_free_state()) {
                return;
            }
        }
        idx = next;
    }
}

Worker::FragFlow Worker::flow_for_fragment(const uint8_t* frame, const PacketMeta& m, uint64_t now_ns,
                                           uint8_t slot) noexcept {
    FragKey fk;
    FragTable::make_key(frame, m, fk);
    const uint32_t idx = frags_.lookup(fk, now_ns, slot);
    if (idx == FragTable::kNone) {
        return {nullptr, slot};
    }
    FlowEntry& e = flows_.at(idx);
    // The flow may have expired (and its slot been reused) since the first fragment.
    if (!e.live() || e.key.proto != m.key.proto ||
        e.key.vlan != m.key.vlan || std::memcmp(e.key.addr, m.key.addr, sizeof(e.key.addr)) != 0) {
        return {nullptr, slot};
    }
    return {&e, slot};
}

inline const uint8_t* Worker::frame_of(unsigned i, const rte_mbuf* m) const noexcept {
    if (m->nb_segs == 1) [[likely]] {
        return rte_pktmbuf_mtod(m, const uint8_t*);
    }
    return linear_ + size_t{i} * linear_stride_;
}

void Worker::parse_long(const rte_mbuf* m, PacketMeta& pm) noexcept {
    const size_t i = static_cast<size_t>(&pm - burst_.meta);  // the burst index: its slot
    if (m->pkt_len > max_frame_) {
        // Longer than any frame of the MTU, whatever it carries: not parsed, not copied.
        pm.kind = PacketKind::Malformed;
        pm.error = DropReason::OverMtu;
        pm.is_fragment = 0;
        pm.l3_length = 0;
        return;
    }
    if (m->nb_segs == 1) {
        parse_packet(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, pm);
    } else {
        // The chain, copied whole into this burst index's slot (pkt_len <= max_frame_ <= the
        // slot's size). A chain that holds fewer bytes than its pkt_len (a broken PMD) is
        // padded with zeros, so every later stage may read pkt_len bytes.
        uint8_t* dst = linear_ + i * linear_stride_;
        const uint32_t len = m->pkt_len;
        uint32_t off = 0;
        for (const rte_mbuf* s = m; s != nullptr && off < len; s = s->next) {
            const uint32_t n = s->data_len < len - off ? s->data_len : len - off;
            std::memcpy(dst + off, rte_pktmbuf_mtod(s, const uint8_t*), n);
            off += n;
        }
        if (off < len) {
            std::memset(dst + off, 0, len - off);
        }
        parse_packet(dst, len, pm);
    }
    if (pm.l3_length > cfg_.mtu) {
        pm.kind = PacketKind::Malformed;
        pm.error = DropReason::OverMtu;
    }
}

// process_burst's stages. Each is force-inlined into process_burst: the compiler still sees
// one loop body (the callgrind budget checks that the split costs no instruction), the reader
// sees the steps of a packet.
#define L7G_STAGE [[gnu::always_inline]] inline

// Stage 3, a packet that is not IP (non-IP, or malformed): counted, then forwarded or dropped
// (--malformed).
L7G_STAGE void Worker::pass_unparsed(rte_mbuf* m, const PacketMeta& pm, unsigned& nout) noexcept {
    if (pm.kind == PacketKind::NonIp) {
        counters_.non_ip.inc();
        uninspected(pm.tun_skip != TunSkip::None ? Uninspected::Encapsulation : Uninspected::NonIp, m);
        burst_.out[nout++] = m;
    } else if (pm.error == DropReason::OverMtu) [[unlikely]] {
        drop(m, DropReason::OverMtu);  // not malformed: dropped whatever --malformed says
    } else {
        counters_.malformed[static_cast<unsigned>(pm.error)].inc();
        if (cfg_.malformed_drop) {
            drop(m, pm.error);
        } else {
            uninspected(Uninspected::Malformed, m);
            burst_.out[nout++] = m;
        }
    }
}

// Stage 3, flow: packet i's (m's) flow, found by the burst lookup (or, for a later fragment, through
// its first fragment), found again (created earlier in this burst), or created now. A SYN
// with a new initial sequence number on a closed flow's 5-tuple ends that flow and starts a
// new one. nullptr: the packet was dealt with here (a fragment without its first, a flow
// that found no entry) and is in burst_.out[.., nout) or dropped. `slot`: the packet's key
// slot (the fragment's flow may say otherwise).
L7G_STAGE FlowEntry* Worker::flow_of(unsigned i, rte_mbuf* m, const PacketMeta& pm, unsigned pi, uint64_t now_ns,
                                     uint8_t& slot, unsigned& nout) noexcept {
    Burst& b = burst_;
    FlowEntry* e = b.flows[i];
    if (pm.is_fragment && !pm.first_fragment) {
        // By value both ways (FragFlow): the loop's slot never has its address taken, not even
        // through a copy, so the compiler need not keep it in memory across the loop body.
        const FragFlow f = flow_for_fragment(frame_of(i, m), pm, now_ns, slot);
        e = f.e;
        slot = f.slot;
        if (e == nullptr) {
            counters_.malformed[static_cast<unsigned>(DropReason::FragNoFirst)].inc();
            if (cfg_.malformed_drop) {
                drop(m, DropReason::FragNoFirst);
            } else {
                uninspected(Uninspected::Malformed, m);
                b.out[nout++] = m;
            }
            return nullptr;
        }
        counters_.frag_matched.inc();
    } else {
        if (e == nullptr) {
            // A flow created earlier in this same burst is found by the second lookup.
            e = flows_.lookup(pm.key, pm.hash);
        }
        // tcp_flags is 0 outside TCP: no branch on the protocol.
        const bool syn = (pm.tcp_flags & (tcp_flag::kSyn | tcp_flag::kAck)) == tcp_flag::kSyn;
        if (e != nullptr && syn && e->tclass() == TimeoutClass::TcpClosed && isn_[flows_.index_of(*e)] != pm.tcp_seq) {
            // A new connection (a SYN with another initial sequence number) on the
            // 5-tuple of one that ended (RST, or FIN both ways; a reject counts): a new
            // flow, classified and judged afresh, never the old one's cached verdict.
            // Clients reuse a port at once after a reset. The same SYN again (a
            // retransmission, a replayed capture) stays with its flow.
            end_flow(*e, FlowEnd::Reused);
            flows_.remove(*e);
            counters_.flows_reused.inc();
            e = nullptr;
        }
        if (e == nullptr) {
            // A TCP flow that opens with the server's SYN-ACK: its SYN reached another
            // worker (the RSS hash is not symmetric) or passed before l7gate started. The
            // receiver of the SYN-ACK is the client.
            const bool synack = pm.l4_proto == 6 && (pm.tcp_flags & (tcp_flag::kSyn | tcp_flag::kAck | tcp_flag::kRst)) ==
                                                        (tcp_flag::kSyn | tcp_flag::kAck);
            const uint8_t client = static_cast<uint8_t>(synack ? slot ^ 1u : slot);
            e = flows_.insert(pm.key, pm.hash, b.time_ns[i], client);
            if (e == nullptr) {
                // Every entry taken, or only this key's two buckets full (a collision
                // attack would show here, not as a full table): counted apart, one policy.
                const bool table_full = flows_.full();
                (table_full ? counters_.table_full : counters_.bucket_full).inc();
                if (flowless(m, pm, slot, client, pi, b.time_ns[i], table_full)) {
                    uninspected(Uninspected::NoFlow, m);
                    b.out[nout++] = m;
                }
                return nullptr;
            }
            counters_.flows_created.inc();
            if (synack) {
                counters_.flows_asymmetric.inc();
            }
            isn_[flows_.index_of(*e)] = syn ? pm.tcp_seq : 0;
            if (pm.key.tunnel != 0 && outer_ != nullptr) [[unlikely]] {
                remember_outer(*e, pm);
            }
            if (syn && pm.payload_length == 0 && (pm.tcp_flags & (tcp_flag::kFin | tcp_flag::kRst)) == 0 &&
                classifier_.deferrable(pm.key)) {
                classifier_.defer(*e);  // no nDPI state until its first payload
            } else {
                if (!classifier_.has_free_state()) {
                    reclaim_half_open(*e, b.time_ns[i]);
                }
                classifier_.start(*e);
            }
        }
    }
    return e;
}

// Stage 3, track: the flow's packet and byte counts, last-seen time and TCP state.
L7G_STAGE void Worker::track(FlowEntry& e, const rte_mbuf* m, const PacketMeta& pm, uint8_t slot, uint64_t t) noexcept {
    flows_.touch(e, slot, m->pkt_len, t);
    // TCP state. The seen bit is set for every protocol (only a TCP flow's class reads
    // it), so that mixed TCP and UDP traffic takes no unpredictable branch here; only a
    // FIN or RST (never set outside TCP) or a TCP flow still in its handshake goes further.
    e.add_tcp(static_cast<uint8_t>(tcp_state::kSeen0 << slot));
    if (((pm.tcp_flags & (tcp_flag::kFin | tcp_flag::kRst)) != 0 || e.tclass() == TimeoutClass::TcpSyn) &&
        pm.l4_offset != 0) {
        update_tcp(flows_, e, pm.tcp_flags, slot, t);
    }
}

// Stage 3, classify: nDPI (a deferred flow's state taken at its first payload; a client's
// first flight reassembled first when it may need it), or the per-protocol packet count of a
// flow whose classification is over. `changed`: the classification moved. false: first-flight
// reassembly consumed the packet (held, or dropped).
L7G_STAGE bool Worker::classify(unsigned i, FlowEntry& e, rte_mbuf* m, const PacketMeta& pm, uint8_t slot, uint64_t t,
                                bool& changed, unsigned& nout, uint64_t& cycles) noexcept {
    (void)cycles;
    if (e.dpi_state() == DpiState::Pending && pm.l4_offset != 0) {
        if (pm.payload_length == 0) {
            AppClassifier::skip(e, pm.tcp_flags, slot);
        } else {
            if (!classifier_.has_free_state()) {
                reclaim_half_open(e, t);
            }
            classifier_.begin(e, m->pkt_len);
        }
    }
    if (e.dpi_state() == DpiState::Classifying) {
        // nDPI sees packets that carry their L4 header, from the IP header on.
        if (!pm.is_fragment || pm.first_fragment) {
            FfStep step = FfStep::Normal;
            if (slot == e.client_slot() && pm.l4_proto == 6 && ff_pool_.enabled() && policy_ != nullptr &&
                !e.ff_over() && !cached::drops(e.action)) {
                bool ff_changed = false;  // a copy, as for the slot in flow_of()
                step = first_flight(e, m, frame_of(i, m), pm, slot, t, ff_changed, nout);
                changed = ff_changed;
                if (step == FfStep::Consumed) {
                    return false;
                }
            } else if (e.ff_held()) {
                // The server's packets wait for the client's message: nDPI must not end
                // before it has seen it.
                step = FfStep::Forward;
            }
            L7G_TSC(tc0);
            if (step == FfStep::Normal) {
                // The whole frame (pkt_len: data_len when it is one segment).
                changed = classifier_.packet(e, frame_of(i, m) + pm.l3_offset, m->pkt_len - pm.l3_offset,
                                             t / 1000000u);
            }
#if L7G_PROFILING
            cycles += rte_rdtsc() - tc0;
#endif
            if (changed && e.dpi_state() == DpiState::Done) {
                emit_scores(e, t);  // the flow's risks are final now
            }
        }
    } else if (e.dpi_state() != DpiState::Pending) {
        // Done or None. A Classifying or Pending flow's packets are counted once, when its
        // classification ends (under its final protocol), never as Unknown before that.
        classifier_.count_packet(e, m->pkt_len);
    }
    return true;
}

// Stage 3, a first fragment: recorded whatever the verdict, so that the later fragments of a
// dropped flow's datagram find their flow and take its verdict (and are counted under it),
// instead of counting as frag_no_first and following --malformed.
L7G_STAGE void Worker::track_fragment(const FlowEntry& e, const uint8_t* frame, const PacketMeta& pm, uint8_t slot,
                                      uint64_t t) noexcept {
    FragKey fk;
    FragTable::make_key(frame, pm, fk);
    if (frags_.insert(fk, flows_.index_of(e), slot, t)) {
        counters_.frag_tracked.inc();
    } else {
        counters_.frag_table_full.inc();
    }
}

// Stage 3, verdict and action: the policy decides again when something the verdict depends
// on changed (a new flow: generation 0 never matches the epoch, which skips 0; the protocol or
// risks; a snapshot), then the flow's cached action applies: drop or reject (counted under
// its reason), shape or police, pass. true: the packet leaves now.
L7G_STAGE bool Worker::act(FlowEntry& e, rte_mbuf* m, const PacketMeta& pm, uint8_t slot, uint64_t t, unsigned pi,
                           bool changed, uint16_t generation, uint64_t& cycles) noexcept {
    (void)cycles;
    if (policy_ != nullptr) {
        if (changed || e.generation != generation) {
            L7G_TSC(tp0);
            decide(e, *policy_, m, slot, changed);
#if L7G_PROFILING
            cycles += rte_rdtsc() - tp0;
#endif
        }
        if (e.action != static_cast<uint8_t>(Action::Pass)) {
            counters_.reason_packets[e.reason & (kMaxReasons - 1)].inc();
            if (!cached::enforced(e.reason)) [[unlikely]] {
                monitored(m, e.action, e.blocked_verdict());
                // Forwarded against a dropping verdict: uninspected, cause monitor (a tunnel
                // not looked into or a flow without nDPI state is counted by the caller).
                if (cached::drops(e.action) && pm.tun_skip == TunSkip::None && e.dpi_state() != DpiState::None) {
                    uninspected(Uninspected::Monitor, m);
                }
                return true;  // monitor mode: recorded, counted, forwarded
            }
            if (cached::drops(e.action)) {
                if (e.action == cached::kReject) {
                    reject(m, pm, t);
                    if (pm.l4_proto == 6 && e.tclass() != TimeoutClass::TcpClosed) {
                        // Both endpoints were told to reset: the connection is over, and
                        // a new SYN on its 5-tuple starts a new flow.
                        e.add_tcp(tcp_state::kRst);
                        flows_.set_class(e, TimeoutClass::TcpClosed, t);
                    }
                }
                drop(m, DropReason::Policy);
                return false;
            }
        }
    }
    if (cached::shaped(e.action) && policy_ != nullptr &&
        !shape(m, e, pi, t, uninspected_tag(pm.tun_skip, e.dpi_state()))) {
        return false;  // queued (counted as uninspected when it leaves, if it is) or dropped by the shaper
    }
    return true;
}

unsigned Worker::process_burst(unsigned pi, unsigned n, uint64_t now_ns) noexcept {
    Burst& b = burst_;
    QueueCounters& qc = counters_.port[cfg_.port[pi]];
    uint64_t rx_bytes = 0;

    L7G_TSC(ts_parse);
    // Stage 1: parse, prefetching a few packets ahead, then hash the keys to look up (all at
    // once: see FlowHasher::burst).
    unsigned nlook = 0;
    const bool capture_clock = cfg_.capture_clock;
    for (unsigned i = 0; i < n && i < 3; ++i) {
        rte_prefetch0(rte_pktmbuf_mtod(b.mbufs[i], void*));
    }
    for (unsigned i = 0; i < n; ++i) {
        if (i + 3 < n) {
            rte_prefetch0(rte_pktmbuf_mtod(b.mbufs[i + 3], void*));
        }
        rte_mbuf* m = b.mbufs[i];
        rx_bytes += m->pkt_len;
        b.time_ns[i] = capture_clock ? capture_time(m) : now_ns;
        PacketMeta& pm = b.meta[i];
        // One predictable branch: a frame in one mbuf and no longer than --mtu + 14 cannot be
        // over the MTU (its IP length is at most its length less the Ethernet header).
        if (m->nb_segs == 1 && m->pkt_len <= short_frame_) [[likely]] {
            parse_packet(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len, pm);
        } else {
            parse_long(m, pm);  // out of line; finds the burst index from pm (no live copy of i here)
        }
        if ((static_cast<uint8_t>(pm.encap) | static_cast<uint8_t>(pm.tun_skip)) != 0) [[unlikely]] {
            tunnelled(pm);
        }
        b.flows[i] = nullptr;
        if (pm.kind == PacketKind::Ip && (!pm.is_fragment || pm.first_fragment)) {
            b.keys[nlook] = &pm.key;
            b.lookup_slot[nlook] = static_cast<uint8_t>(i);
            ++nlook;
        }
    }
    flows_.hash_burst(b.keys, b.hashes, nlook);
    for (unsigned k = 0; k < nlook; ++k) {
        b.meta[b.lookup_slot[k]].hash = b.hashes[k];
    }
    qc.rx_packets.add(n);
    qc.rx_bytes.add(rx_bytes);
    counters_.rx_packets.add(n);

    L7G_TSC(ts_lookup);
    L7G_STAGE_ADD(Parse, ts_lookup - ts_parse);
    // Stage 2: bulk flow lookup.
    if (nlook == n) {
        flows_.lookup_burst(b.keys, b.hashes, n, b.flows);  // every packet looked up: in place
    } else {
        FlowEntry* found[kMaxBurst];
        flows_.lookup_burst(b.keys, b.hashes, nlook, found);
        for (unsigned k = 0; k < nlook; ++k) {
            b.flows[b.lookup_slot[k]] = found[k];
        }
    }
    L7G_TSC(ts_stage3);
    L7G_STAGE_ADD(Lookup, ts_stage3 - ts_lookup);
    uint64_t cyc_classify = 0;  // L7G_PROFILING only
    uint64_t cyc_policy = 0;

    // Stage 3: per packet: its flow, tracking, classification, verdict and action.
    const uint16_t generation = epoch_;  // the snapshots change between bursts only
    unsigned nout = 0;
    for (unsigned i = 0; i < n; ++i) {
        rte_mbuf* m = b.mbufs[i];
        const PacketMeta& pm = b.meta[i];
        if (pm.kind != PacketKind::Ip) {
            pass_unparsed(m, pm, nout);
            continue;
        }
        uint8_t slot = pm.reversed;
        FlowEntry* e = flow_of(i, m, pm, pi, now_ns, slot, nout);
        if (e == nullptr) {
            continue;
        }
        const uint64_t t = b.time_ns[i];
        track(*e, m, pm, slot, t);
        bool changed = false;
        if (!classify(i, *e, m, pm, slot, t, changed, nout, cyc_classify)) {
            continue;
        }
        if (pm.is_fragment && pm.first_fragment) {
            track_fragment(*e, frame_of(i, m), pm, slot, t);
        }
        if (act(*e, m, pm, slot, t, pi, changed, generation, cyc_policy)) {
            // A tunnel not looked into, or a flow nDPI never got a state for: forwarded
            // under the flow's verdict, its content unclassified.
            if ((pm.tun_skip != TunSkip::None) | (e->dpi_state() == DpiState::None)) [[unlikely]] {
                uninspected(pm.tun_skip != TunSkip::None ? Uninspected::Encapsulation : Uninspected::NoDpiState, m);
            }
            b.out[nout++] = m;
        }
    }
    free_dropped();
#if L7G_PROFILING
    L7G_STAGE_ADD(Classify, cyc_classify);
    L7G_STAGE_ADD(Policy, cyc_policy);
    L7G_STAGE_ADD(Action, rte_rdtsc() - ts_stage3 - cyc_classify - cyc_policy);
#else
    (void)cyc_classify;
    (void)cyc_policy;
#endif
    return nout;
}

#undef L7G_STAGE

Worker::FfStep Worker::first_flight(FlowEntry& e, rte_mbuf* m, const uint8_t* frame, const PacketMeta& pm,
                                    uint8_t slot, uint64_t t, bool& changed, unsigned& nout) noexcept {
    uint32_t& slot_of = ff_[flows_.index_of(e)];  // meaningful while e.ff_held()
    const uint8_t* pay = frame + pm.payload_offset;
    const uint32_t plen = pm.payload_length;
    const uint32_t seq = pm.tcp_seq + ((pm.tcp_flags & tcp_flag::kSyn) != 0 ? 1u : 0u);
    if (!e.ff_held()) {
        if (plen == 0) {
            return FfStep::Normal;
        }
        const uint32_t isn = isn_[flows_.index_of(e)];
        if (isn != 0 && seq != isn + 1) {
            // Not the client's first byte (the SYN was seen): its first bytes come later.
            drop(m, DropReason::FfOutOfOrder);
            return FfStep::Consumed;
        }
        uint32_t scan = 0;
        if (first_message(pay, plen, scan) != FirstMessage::NeedMore) {
            e.set_ff_over();  // complete in one segment, or neither TLS nor HTTP: as before
            return FfStep::Normal;
        }
        const uint32_t idx = ff_pool_.take();
        if (idx == FirstFlightPool::kNone) {
            counters_.first_flight[static_cast<unsigned>(FirstFlightOutcome::NoSlot)].inc();
            if (ff_pool_.config().unnamed_drop && names_matter(e, m)) {
                drop(m, DropReason::FfNoSlot);  // the client resends it; a slot may be free then
                return FfStep::Consumed;
            }
            e.set_ff_over();
            return FfStep::Normal;
        }
        FirstFlightSlot& s = ff_pool_.slot(idx);
        s.start_ns = t;
        s.base_seq = seq;
        s.len = 0;
        s.scan = 0;
        s.nheld = 0;
        slot_of = idx;
        e.set_ff_held();
    }
    const uint32_t idx = slot_of;
    FirstFlightSlot& s = ff_pool_.slot(idx);
    uint8_t* buf = ff_pool_.data(idx);
    const uint32_t bound = ff_pool_.config().bytes;
    constexpr auto kNotYet = FirstFlightOutcome::Count;
    FirstFlightOutcome why = kNotYet;
    if (pm.is_fragment || (pm.tcp_flags & (tcp_flag::kFin | tcp_flag::kRst)) != 0) {
        why = FirstFlightOutcome::Ended;
    } else if (t > s.start_ns + kFirstFlightHoldNs) {
        why = FirstFlightOutcome::Timeout;
    }
    if (plen == 0) {
        if (why == kNotYet) {
            return FfStep::Forward;  // a pure ACK: nDPI must not see the sequence move ahead
        }
    } else {
        const int32_t off = static_cast<int32_t>(seq - s.base_seq);
        if (off < 0 || static_cast<uint32_t>(off) > s.len) {
            if (why == kNotYet) {
                drop(m, DropReason::FfOutOfOrder);
                return FfStep::Consumed;
            }
        } else {
            const uint32_t o = static_cast<uint32_t>(off);
            const uint32_t overlap = plen < s.len - o ? plen : s.len - o;
            if (std::memcmp(buf + o, pay, overlap) != 0) {
                drop(m, DropReason::FfConflict);
                return FfStep::Consumed;
            }
            uint32_t add = plen - overlap;
            if (add == 0 && why == kNotYet) {
                drop(m, DropReason::FfDuplicate);
                return FfStep::Consumed;
            }
            if (add > bound - s.len) {
                add = bound - s.len;
                why = why == kNotYet ? FirstFlightOutcome::Bound : why;
            }
            std::memcpy(buf + s.len, pay + overlap, add);
            s.len += add;
            if (why == kNotYet && first_message(buf, s.len, s.scan) != FirstMessage::NeedMore) {
                why = FirstFlightOutcome::Complete;
            }
            if (why == kNotYet && s.len == bound) {
                why = FirstFlightOutcome::Bound;
            }
        }
    }
    if (why == kNotYet) {
        if (s.nheld < kFirstFlightMaxHeld && ff_pool_.can_hold()) {
            s.held[s.nheld++] = m;
            ff_pool_.held_add(1);
            counters_.first_flight_held.set(ff_pool_.held());
            return FfStep::Consumed;
        }
        why = FirstFlightOutcome::Bound;
    }
    // The first flight is over: nDPI gets one packet with this packet's headers (its sequence
    // number moved back to the first byte, no fragment bits) and every byte reassembled.
    const uint32_t hdr = static_cast<uint32_t>(pm.payload_offset - pm.l3_offset);
    if (hdr > FirstFlightPool::kScratchHeaders && why == FirstFlightOutcome::Complete) {
        why = FirstFlightOutcome::Bound;  // headers too long to hand over: nDPI saw nothing
    }
    if (hdr <= FirstFlightPool::kScratchHeaders && s.len != 0 && e.dpi_state() == DpiState::Classifying) {
        uint8_t* p = ff_pool_.scratch();
        std::memcpy(p, frame + pm.l3_offset, hdr);
        std::memcpy(p + hdr, buf, s.len);
        const uint32_t total = hdr + s.len;
        if (pm.ip_version == 4) {
            p[2] = static_cast<uint8_t>(total >> 8);
            p[3] = static_cast<uint8_t>(total);
            p[6] &= 0x40;  // keep DF; clear MF and the offset
            p[7] = 0;
        } else {
            const uint32_t pl = total - 40;
            p[4] = static_cast<uint8_t>(pl >> 8);
            p[5] = static_cast<uint8_t>(pl);
        }
        uint8_t* tcp = p + (pm.l4_offset - pm.l3_offset);
        tcp[4] = static_cast<uint8_t>(s.base_seq >> 24);
        tcp[5] = static_cast<uint8_t>(s.base_seq >> 16);
        tcp[6] = static_cast<uint8_t>(s.base_seq >> 8);
        tcp[7] = static_cast<uint8_t>(s.base_seq);
        tcp[13] &= static_cast<uint8_t>(~(tcp_flag::kSyn | tcp_flag::kFin | tcp_flag::kRst));
        classifier_.packet(e, p, total, t / 1000000u);
    }
    changed = true;  // decide now, whatever nDPI found
    counters_.first_flight[static_cast<unsigned>(why)].inc();
    if (why != FirstFlightOutcome::Complete && classifier_.host(e).empty() && names_matter(e, m)) {
        if (ff_pool_.config().unnamed_drop) {
            counters_.first_flight[static_cast<unsigned>(FirstFlightOutcome::UnnamedDrop)].inc();
            e.action = cached::kDrop;
            e.reason = static_cast<uint16_t>(policy_->unnamed_reason | unenforced_bit(e, *policy_, m, slot));
            e.generation = epoch_;
            counters_.reason_flows[e.reason & (kMaxReasons - 1)].inc();
        } else {
            counters_.first_flight[static_cast<unsigned>(FirstFlightOutcome::UnnamedPass)].inc();
        }
    }
    // Decided here, so that the held segments leave (into burst_.out, ahead of this one) or
    // are dropped now; the caller applies the same verdict to this packet.
    decide(e, *policy_, m, slot, true);
    ff_release(idx, cached::drops(e.action) && cached::enforced(e.reason) ? DropReason::Policy : DropReason::None, nout);
    e.set_ff_over();
    return FfStep::Fed;
}

bool Worker::names_matter(const FlowEntry& e, const rte_mbuf* m) const noexcept {
    if (policy_ == nullptr) {
        return false;
    }
    char lower[80];
    FlowFacts f = facts(e, lower);
    if (m->data_len >= 12) {
        const uint8_t* eth = rte_pktmbuf_mtod(m, const uint8_t*);
        f.client_mac = eth + 6;  // a client packet: its source MAC is the client's
        f.server_mac = eth;
    }
    bool local_is_server = false;
    const uint16_t p = policy_->pool_policy(f, local_is_server);
    return p < policy_->policies.size() && policy_->policies[p].first_l7_pos != kNoPos;
}

void Worker::ff_release(uint32_t idx, DropReason r, unsigned& nout) noexcept {
    FirstFlightSlot& s = ff_pool_.slot(idx);
    for (uint32_t k = 0; k < s.nheld; ++k) {
        if (r == DropReason::None) {
            burst_.out[nout++] = s.held[k];
        } else {
            drop(s.held[k], r);
        }
    }
    ff_pool_.held_sub(s.nheld);
    counters_.first_flight_held.set(ff_pool_.held());
    ff_pool_.put(idx);
}

void Worker::serve_command() noexcept {
    const Command* c = commands_.current();
    if (c == nullptr) {
        return;
    }
    if (c->type != CommandType::TopFlows) {
        commands_.finish(1);
        return;
    }
    // The slot is this worker's until finish(): the control thread reads it after the reply.
    CommandSlot& q = commands_.current_slot();
    uint32_t& cursor = commands_.cursor();
    constexpr uint32_t kChunk = 4096;  // entries per housekeeping round: a few microseconds
    const uint32_t want = c->arg == 0 ? 1 : c->arg < kTopFlowsMax ? c->arg : kTopFlowsMax;
    const uint32_t end = cursor + kChunk < flows_.capacity() ? cursor + kChunk : flows_.capacity();
    for (uint32_t i = cursor; i < end; ++i) {
        const FlowEntry& e = flows_.at(i);
        if (!e.live()) {
            continue;
        }
        const uint64_t bytes = e.bytes[0] + e.bytes[1];
        uint32_t pos = q.count;
        if (q.count == want) {
            // Full: replace the smallest if this one is bigger.
            pos = 0;
            for (uint32_t k = 1; k < q.count; ++k) {
                if (q.top[k].bytes < q.top[pos].bytes) {
                    pos = k;
                }
            }
            if (q.top[pos].bytes >= bytes) {
                continue;
            }
        } else {
            ++q.count;
        }
        FlowSummary& s = q.top[pos];
        s = FlowSummary{};
        s.key = e.key;
        s.client_slot = e.client_slot();
        s.category = e.category;
        s.action = e.action;
        s.master_proto = e.master_proto;
        s.app_proto = e.app_proto;
        s.reason = static_cast<uint16_t>(e.reason & ~cached::kUnenforced);
        s.packets = e.packets[0] + e.packets[1];
        s.bytes = bytes;
        s.risk = e.risk;
        const std::string_view h = classifier_.host(e);
        if (!h.empty()) {
            std::memcpy(s.host, h.data(), h.size() < sizeof(s.host) - 1 ? h.size() : sizeof(s.host) - 1);
        }
    }
    cursor = end;
    if (end == flows_.capacity()) {
        commands_.finish();
    }
}

void Worker::housekeeping(uint64_t now_ns) noexcept {
    // Expiry keeps pace with creation: a flood of new flows (one per packet) expires as fast
    // as it arrives once its timeout has passed, so the table does not fill with dead flows.
    // The extra work is bounded by what the last few bursts created.
    const uint64_t created = counters_.flows_created.get();
    const unsigned budget = kExpireBudget + static_cast<unsigned>(2 * (created - created_at_housekeeping_));
    created_at_housekeeping_ = created;
    const unsigned n = flows_.expire(now_ns, budget, [this](FlowEntry& e) { end_flow(e, FlowEnd::Idle); });
    if (n != 0) {
        counters_.flows_expired.add(n);
        free_dropped();  // segments held in the first flights of expired flows
    }
    if (reported_ != nullptr) {
        report_active(now_ns);
    }
    counters_.flows_active.set(flows_.active());
    classifier_.publish();
    serve_command();
    sweep_reasons();
}

void Worker::sweep_reasons() noexcept {
    ReasonSweep& s = reason_sweep_;
    if (!s.active) {
        // acquire: the control thread is done reading `seen` before it raises the request.
        const uint64_t want = s.request.load(std::memory_order_acquire);
        if (want == s.serving) {
            return;
        }
        s.serving = want;
        s.active = true;
        s.cursor = 0;
        std::memset(s.seen, 0, sizeof(s.seen));
    }
    const uint32_t cap = flows_.capacity();
    const uint32_t end = cap - s.cursor > ReasonSweep::kSliceEntries ? s.cursor + ReasonSweep::kSliceEntries : cap;
    for (uint32_t i = s.cursor; i < end; ++i) {
        const FlowEntry& e = flows_.at(i);
        if (e.live()) {
            const unsigned r = e.reason & (kMaxReasons - 1);
            s.seen[r / 64] |= uint64_t{1} << (r % 64);
        }
    }
    s.cursor = end;
    if (end == cap) {
        s.active = false;
        // release: `seen` is complete before the control thread can see the sweep done.
        s.completed.store(s.serving, std::memory_order_release);
    }
}

void Worker::flush_flows() noexcept {
    const unsigned n = flows_.expire_all([this](FlowEntry& e) { end_flow(e, FlowEnd::Shutdown); });
    free_dropped();  // segments still held in first flights
    counters_.flows_flushed.add(n);
    counters_.flows_active.set(flows_.active());
}

void Worker::load_snapshots() noexcept {
    // acquire: pairs with the control thread's release store, so the snapshot's contents
    // are visible before its pointer is.
    policy_ = cfg_.policy != nullptr ? cfg_.policy->load(std::memory_order_acquire) : nullptr;
    blocked_ = cfg_.blocked != nullptr ? cfg_.blocked->load(std::memory_order_acquire) : nullptr;
    if (policy_ != nullptr && counters_.policy_generation.get() != policy_->generation) {
        counters_.policy_generation.set(policy_->generation);  // ack for the control thread
    }
    const uint64_t pg = policy_ != nullptr ? policy_->generation : 0;
    const uint64_t bg = blocked_ != nullptr ? blocked_->generation : 0;
    const bool policy_moved = policy_ != epoch_policy_ || pg != epoch_policy_gen_;
    if (policy_moved || blocked_ != epoch_blocked_ || bg != epoch_blocked_gen_) {
        epoch_policy_ = policy_;
        epoch_blocked_ = blocked_;
        epoch_policy_gen_ = pg;
        epoch_blocked_gen_ = bg;
        // Every flow is decided again on its next packet (after a new blocked set alone, only
        // the blocked set is checked: decide()). 0 is skipped: new flows start there.
        epoch_ = static_cast<uint16_t>(epoch_ == UINT16_MAX ? 1 : epoch_ + 1);
        if (policy_moved) {
            epochs_since_policy_ = 0;
        } else if (epochs_since_policy_ < UINT16_MAX) {
            ++epochs_since_policy_;
        }
    }
}

int Worker::run() noexcept {
    classifier_.attach_thread();
    Burst& b = burst_;
    const uint16_t q = cfg_.queue;
    if (cfg_.qsbr != nullptr) {
        rte_rcu_qsbr_thread_register(cfg_.qsbr, q);
        rte_rcu_qsbr_thread_online(cfg_.qsbr, q);
    }
    for (uint64_t iter = 1; !stop_.load(std::memory_order_relaxed); ++iter) {
        load_snapshots();
        bool idle = true;
        for (unsigned pi = 0; pi < cfg_.nb_ports; ++pi) {
            if (cfg_.fail_open) {
                in_rx_.store(1, std::memory_order_seq_cst);
                if (rx_owner_.load(std::memory_order_seq_cst) != kOwnerWorker) {
                    in_rx_.store(0, std::memory_order_release);
                    break;  // the standby path polls these queues until we are back
                }
            }
            L7G_TSC(ts_rx);
            const uint16_t n = rte_eth_rx_burst(cfg_.port[pi], q, b.mbufs, kMaxBurst);
#if L7G_PROFILING
            if (n != 0) {
                L7G_STAGE_ADD(Rx, rte_rdtsc() - ts_rx);
            }
#endif
            if (cfg_.fail_open) {
                in_rx_.store(0, std::memory_order_release);
            }
            if (n == 0) {
                continue;
            }
            if (cfg_.test_stall_ms != 0 && counters_.rx_packets.get() + n >= cfg_.test_stall_after) {
                const uint64_t until = rte_rdtsc() + tsc_hz_ / 1000 * cfg_.test_stall_ms;
                while (rte_rdtsc() < until) {
                    rte_pause();
                }
                cfg_.test_stall_ms = 0;  // once
            }
            idle = false;
            const uint64_t t0 = rte_rdtsc();
            const uint64_t now = cfg_.capture_clock
                                     ? last_time_ns_
                                     : epoch_start_ns_ + static_cast<uint64_t>(static_cast<unsigned __int128>(t0 - tsc_start_) *
                                                                             1000000000u / tsc_hz_);
            const unsigned nout = process_burst(pi, n, now);
            if (nout != 0) {
                uint64_t bytes = 0;
                for (unsigned i = 0; i < nout; ++i) {
                    bytes += b.out[i]->pkt_len;
                }
                const uint16_t peer = cfg_.peer[pi];
                L7G_TSC(ts_tx);
                const uint16_t sent = rte_eth_tx_burst(peer, q, b.out, static_cast<uint16_t>(nout));
                L7G_STAGE_ADD(Tx, rte_rdtsc() - ts_tx);
                if (sent < nout) {
                    for (unsigned i = sent; i < nout; ++i) {
                        bytes -= b.out[i]->pkt_len;  // not sent: still ours to read
                        drop(b.out[i], DropReason::TxFull);
                    }
                    free_dropped();
                }
                QueueCounters& pc = counters_.port[peer];
                pc.tx_packets.add(sent);
                pc.tx_bytes.add(bytes);
            }
            if (inj_back_n_ + inj_fwd_n_ != 0) {
                flush_injected(pi);
            }
            counters_.bursts.inc();
            counters_.busy_cycles.add(rte_rdtsc() - t0);
        }
        if (!shaper_.idle()) {
            drain_shaper(now_ns());
        }
        if (idle) {
            counters_.idle_polls.inc();
        }
        if (idle || (iter & (kHousekeepingEvery - 1)) == 0) {
            housekeeping(now_ns());
            counters_.heartbeat.set(iter);
        }
        if (cfg_.qsbr != nullptr) {
            // No reference into policy_ survives this point (it is reloaded at the top).
            rte_rcu_qsbr_quiescent(cfg_.qsbr, q);
        }
        if (idle && cfg_.stop_at_end && counters_.rx_packets.get() != 0) {
            break;  // --bench-stop-at-end: the replay is over
        }
    }
    flush_flows();
    flush_shaper();
    if (cfg_.qsbr != nullptr) {
        rte_rcu_qsbr_thread_offline(cfg_.qsbr, q);
        rte_rcu_qsbr_thread_unregister(cfg_.qsbr, q);
    }
    NdpiArena::attach(nullptr);
    finished_.store(true, std::memory_order_release);
    return 0;
}

} // namespace l7gate::dp
