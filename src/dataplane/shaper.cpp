#include "dataplane/shaper.hpp"

#include <cstring>
#include <new>

#include <rte_mbuf_dyn.h>

#include "dataplane/hash.hpp"  // random_hash_key
#include "dataplane/hash.hpp"
#include "dataplane/memory.hpp"

namespace l7gate::dp {

void shaper_derive(ShaperProfile& p) noexcept {
    const uint64_t rate = p.rate_bps != 0 ? p.rate_bps : 1;
    // About 1 ms of the rate per chunk, at most a quarter of the burst, at least 64 bytes.
    uint64_t chunk = rate / 8 / 1000;
    if (chunk > p.burst_bytes / 4) {
        chunk = p.burst_bytes / 4;
    }
    if (chunk < 64) {
        chunk = 64;
    }
    if (chunk > (1u << 30)) {
        chunk = 1u << 30;
    }
    p.chunk_bytes = static_cast<uint32_t>(chunk);
    const auto ns = [&](uint64_t bytes) {
        return static_cast<uint64_t>(static_cast<unsigned __int128>(bytes) * 8u * 1000000000u / rate);
    };
    p.chunk_ns = ns(chunk) != 0 ? ns(chunk) : 1;
    const uint64_t burst = p.burst_bytes > chunk ? p.burst_bytes : chunk;
    p.tau_ns = ns(burst) > p.chunk_ns ? ns(burst) : p.chunk_ns;
}

uint32_t shaper_default_queue(uint64_t rate_bps, uint32_t max_delay_us) noexcept {
    // Full-size frames the rate sends in max_delay: a packet queued behind more of them would
    // wait longer than max_delay and be dropped at the head anyway.
    const uint64_t bytes = static_cast<uint64_t>(static_cast<unsigned __int128>(rate_bps) * max_delay_us / 8000000u);
    uint64_t q = (bytes + kShaperFrameBytes - 1) / kShaperFrameBytes;
    if (q < kShaperMinQueue) {
        q = kShaperMinQueue;
    }
    if (q > kShaperMaxQueue) {
        q = kShaperMaxQueue;
    }
    return static_cast<uint32_t>(q);
}

bool bucket_take(SharedBucket& b, uint64_t now_ns, uint64_t chunk_ns, uint64_t tau_ns, uint64_t& retry_ns) noexcept {
    // Relaxed: the bucket publishes no other data; the CAS alone makes each chunk taken once.
    uint64_t tat = b.tat.load(std::memory_order_relaxed);
    for (;;) {
        const uint64_t next = (tat > now_ns ? tat : now_ns) + chunk_ns;
        if (next > now_ns + tau_ns) {
            retry_ns = next - tau_ns;
            return false;
        }
        if (b.tat.compare_exchange_weak(tat, next, std::memory_order_relaxed)) {
            return true;
        }
    }
}

SharedBucket* ShaperBuckets::host(uint64_t key, uint64_t now_ns) noexcept {
    const unsigned start = static_cast<unsigned>(key) & (kHostBuckets - 1);
    SharedBucket* cand = nullptr;
    uint64_t cand_key = 0;
    for (unsigned i = 0; i < kProbe; ++i) {
        SharedBucket& b = host_[(start + i) & (kHostBuckets - 1)];
        const uint64_t k = b.key.load(std::memory_order_relaxed);
        if (k == key) {
            return &b;
        }
        if (cand == nullptr && (k == 0 || b.tat.load(std::memory_order_relaxed) + kIdleNs < now_ns)) {
            cand = &b;
            cand_key = k;
        }
    }
    if (cand == nullptr) {
        return nullptr;
    }
    if (cand->key.compare_exchange_strong(cand_key, key, std::memory_order_relaxed)) {
        cand->tat.store(0, std::memory_order_relaxed);  // a new host starts with a full bucket
        return cand;
    }
    // Another worker took it first, possibly for the same host.
    return cand_key == key ? cand : nullptr;
}

ShaperBuckets::ShaperBuckets() noexcept : seeded_(random_hash_key(secret_)) {}

uint64_t shaper_host_key(const HashKey& secret, unsigned shaper, unsigned port, const uint8_t (&addr)[16]) noexcept {
    uint64_t a0;
    uint64_t a1;
    std::memcpy(&a0, addr, 8);
    std::memcpy(&a1, addr + 8, 8);
    SipHash13 h(secret);
    h.block(a0);
    h.block(a1);
    // The last block: shaper and port, and the message length (20 bytes) in the top byte.
    return h.finish(uint64_t{20} << 56 | uint64_t{shaper & 0xff} << 8 | (port & 0xff)) | 1u;
}

Shaper::~Shaper() {
    table_free(queues_);
    table_free(active_);
}

const char* Shaper::init(ShaperBuckets* shared, int socket, uint32_t backlog_cap,
                         Counter* host_buckets_full) noexcept {
    shared_ = shared;
    backlog_cap_ = backlog_cap;
    host_buckets_full_ = host_buckets_full;
    static const rte_mbuf_dynfield desc = {"l7gate_shaper_link", sizeof(Link), alignof(Link), 0};
    dynfield_ = rte_mbuf_dynfield_register(&desc);
    static const rte_mbuf_dynfield tag_desc = {"l7gate_shaper_tag", sizeof(uint8_t), alignof(uint8_t), 0};
    tagfield_ = rte_mbuf_dynfield_register(&tag_desc);
    if (dynfield_ < 0 || tagfield_ < 0) {
        return "cannot register the shaper's mbuf field";
    }
    constexpr unsigned n = kFlat + kHostQueues;
    queues_ = static_cast<ShapeQueue*>(table_alloc(sizeof(ShapeQueue) * n, socket));
    active_ = static_cast<uint32_t*>(table_alloc(sizeof(uint32_t) * n, socket));
    if (queues_ == nullptr || active_ == nullptr) {
        return "cannot allocate the shaper queues";
    }
    for (unsigned i = 0; i < n; ++i) {
        new (&queues_[i]) ShapeQueue();
    }
    for (unsigned s = 0; s < kMaxShapers; ++s) {
        for (unsigned pt = 0; pt < kMaxPorts; ++pt) {
            queues_[s * kMaxPorts + pt].shaper = static_cast<uint8_t>(s);
            queues_[s * kMaxPorts + pt].port = static_cast<uint8_t>(pt);
        }
    }
    return nullptr;
}

ShapeQueue* Shaper::host_queue(uint64_t key) noexcept {
    ShapeQueue* hq = queues_ + kFlat;
    const unsigned start = static_cast<unsigned>(key >> 32) & (kHostQueues - 1);
    ShapeQueue* free = nullptr;
    for (unsigned i = 0; i < kProbe; ++i) {
        ShapeQueue& q = hq[(start + i) & (kHostQueues - 1)];
        if (q.key == key) {
            return &q;
        }
        if (free == nullptr && q.count == 0) {
            free = &q;
        }
    }
    if (free != nullptr) {
        *free = ShapeQueue();
        free->key = key;
    }
    return free;
}

bool Shaper::refill(ShapeQueue& q, const ShaperProfile& p, uint64_t now_ns) noexcept {
    if (now_ns < q.retry_ns) {
        return false;
    }
    SharedBucket* b = q.key != 0 ? shared_->host(q.key, now_ns) : &shared_->flat(q.shaper, q.port);
    if (b == nullptr) {
        q.retry_ns = now_ns + 1000000;  // every nearby host bucket busy: try again in 1 ms
        if (host_buckets_full_ != nullptr) {
            host_buckets_full_->inc();
        }
        return false;
    }
    while (q.credit <= 0) {
        if (!bucket_take(*b, now_ns, p.chunk_ns, p.tau_ns, q.retry_ns)) {
            return false;
        }
        q.credit += p.chunk_bytes;
    }
    return true;
}

void Shaper::push(ShapeQueue& q, rte_mbuf* m, uint64_t now_ns, uint8_t tag) noexcept {
    Link& l = link(m);
    l.next = nullptr;
    l.enq_ns = now_ns;
    *RTE_MBUF_DYNFIELD(m, tagfield_, uint8_t*) = tag;
    if (q.tail != nullptr) {
        link(q.tail).next = m;
    } else {
        q.head = m;
    }
    q.tail = m;
    ++q.count;
    ++backlog_;
    if (q.active == 0) {
        q.active = 1;
        active_[nactive_++] = static_cast<uint32_t>(&q - queues_);
    }
}

rte_mbuf* Shaper::pop(ShapeQueue& q) noexcept {
    rte_mbuf* m = q.head;
    q.head = link(m).next;
    if (q.head == nullptr) {
        q.tail = nullptr;
    }
    --q.count;
    --backlog_;
    return m;
}

Admit Shaper::admit(rte_mbuf* m, const ShaperProfile& p, uint8_t shaper, bool police, uint8_t port, uint8_t out,
                    uint64_t host_key, uint64_t now_ns, DropReason& why, uint8_t tag) noexcept {
    ShapeQueue* q = host_key != 0 ? host_queue(host_key) : &queues_[shaper * kMaxPorts + port];
    if (q == nullptr) {
        why = DropReason::ShaperHosts;
        return Admit::Drop;
    }
    if (host_key != 0) {
        q->shaper = shaper;
        q->port = port;
    }
    q->out = out;
    if (police) {
        if (q->credit > 0 || refill(*q, p, now_ns)) {
            q->credit -= m->pkt_len;
            return Admit::Send;
        }
        why = DropReason::Police;
        return Admit::Drop;
    }
    if (q->count == 0 && (q->credit > 0 || refill(*q, p, now_ns))) {
        q->credit -= m->pkt_len;
        return Admit::Send;
    }
    if (q->count >= p.queue_packets) {
        why = DropReason::ShaperOverflow;
        return Admit::Drop;
    }
    if (backlog_ >= backlog_cap_) {
        why = DropReason::ShaperBacklog;
        return Admit::Drop;
    }
    push(*q, m, now_ns, tag);
    return Admit::Queued;
}

} // namespace l7gate::dp
