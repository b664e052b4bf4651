#pragma once
// Token-bucket shaping and policing: the policy markers shape:NAME and police:NAME.
//
// Buckets. A rate holds for the aggregate over every worker, so each bucket is shared
// (SharedBucket, one cache line) and kept as a GCRA theoretical arrival time: taking
// `chunk` bytes moves `tat` forward by chunk*8/rate, which is allowed while tat stays less
// than the burst's worth of time (tau) ahead of now. An idle bucket (tat in the past) is
// therefore full, never fuller. Workers take chunks of about a millisecond of the rate (at
// most a quarter of the burst) into a local credit and spend that per packet: the shared
// line is written once per chunk, never per packet. Credit may go negative by one packet, so
// a frame larger than a chunk still leaves and the debt is paid before the next one.
//
// Buckets exist per (shaper, output port): a rate holds in each direction of a bridge pair,
// as an egress shaper on each interface would. `per: host` adds the local host to the key;
// those buckets live in a fixed shared table (claimed by compare-and-swap, idle ones reused).
//
// Queues. A packet of a shaped flow that finds no credit waits in its worker's FIFO for the
// same key and leaves when the bucket allows, in order. The FIFOs are intrusive lists through
// an mbuf dynamic field, so they need no storage of their own: the packet count (`queue`,
// by default what the rate sends in max_delay, shaper_default_queue()) bounds each, and the
// worker's backlog cap (WorkerConfig::shaper_backlog, derived from the mbuf pool) bounds them
// all together, so queued packets can never empty the pool the RX rings refill from. A full
// queue drops the newcomer (shaper_overflow), so does a full backlog (shaper_backlog) and a
// per-host key that finds no free queue among its kProbe slots (shaper_hosts); a packet that
// waited longer than max_delay is dropped at the head (shaper_delay). A queued packet also
// carries a byte of the caller's (admit's tag, a second dynamic field): the worker puts the
// uninspected cause there and counts it when the packet leaves the queue, not when it is
// queued, so a packet dropped from the queue is never counted as forwarded. police:NAME uses
// the same buckets without a queue: out-of-profile packets are dropped (police).

#include <atomic>
#include <cstdint>

#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include "dataplane/counters.hpp"
#include "dataplane/drop_reason.hpp"
#include "dataplane/hash.hpp"
#include "dataplane/policy_snapshot.hpp"

namespace l7gate::dp {

static_assert(kShaperCounters == kMaxShapers);

struct alignas(64) SharedBucket {
    std::atomic<uint64_t> tat{0};  // ns on the workers' clock
    std::atomic<uint64_t> key{0};  // per-host buckets: owner key; 0 = never used
};

// Takes chunk_ns worth of the bucket at now_ns. False when that would exceed the burst;
// retry_ns is then the earliest time it can succeed.
bool bucket_take(SharedBucket& b, uint64_t now_ns, uint64_t chunk_ns, uint64_t tau_ns, uint64_t& retry_ns) noexcept;

// Every bucket of the process; allocated once by the control thread, shared by the workers.
class ShaperBuckets {
public:
    // Draws the per-host key's secret from getrandom(2); seeded() is false when none came.
    ShaperBuckets() noexcept;
    bool seeded() const noexcept { return seeded_; }
    const HashKey& secret() const noexcept { return secret_; }

    static constexpr unsigned kHostBuckets = 1u << 14;
    static constexpr unsigned kProbe = 8;
    static constexpr uint64_t kIdleNs = 10'000'000'000ull;  // a host bucket full this long is reusable

    SharedBucket& flat(unsigned shaper, unsigned port) noexcept { return flat_[shaper * kMaxPorts + port]; }
    // The bucket of `key`, claiming a never-used or idle one; nullptr when all kProbe
    // candidates are in use by other hosts.
    SharedBucket* host(uint64_t key, uint64_t now_ns) noexcept;

private:
    HashKey secret_{};  // written once before the workers start, then read-only
    bool seeded_ = false;
    SharedBucket flat_[kMaxShapers * kMaxPorts];
    SharedBucket host_[kHostBuckets];
};

// Key of a per-host bucket and queue (never 0): SipHash-1-3 of (address, shaper, port) under
// the buckets' secret (one for the process, so every worker finds a host's bucket). A keyed
// PRF: nobody without the secret computes an address whose key is another host's (a CRC,
// affine in its seed, gave 32 bits of entropy and computable collisions).
uint64_t shaper_host_key(const HashKey& secret, unsigned shaper, unsigned port, const uint8_t (&addr)[16]) noexcept;

struct ShapeQueue {
    rte_mbuf* head = nullptr;
    rte_mbuf* tail = nullptr;
    uint64_t key = 0;       // per-host queues: the bucket key (0: flat, or a free host queue)
    uint64_t retry_ns = 0;  // the shared bucket cannot give anything before this
    int64_t credit = 0;     // bytes this worker may still send for the key
    uint32_t count = 0;
    uint8_t shaper = 0;
    uint8_t port = 0;       // output port id
    uint8_t out = 0;        // output port index in the worker's port list
    uint8_t active = 0;     // on the active list
};

enum class Admit : uint8_t { Send, Queued, Drop };

// One per worker.
class Shaper {
public:
    static constexpr unsigned kFlat = kMaxShapers * kMaxPorts;
    static constexpr unsigned kHostQueues = 4096;
    static constexpr unsigned kProbe = 8;
    static constexpr unsigned kDrainBudget = 256;  // packets released per drain() call

    Shaper() = default;
    ~Shaper();
    Shaper(const Shaper&) = delete;
    Shaper& operator=(const Shaper&) = delete;

    // Allocates the queues; registers the mbuf dynamic field (EAL must be up). `backlog_cap`:
    // packets all queues may hold together; `host_buckets_full` (optional) counts refills of a
    // per-host queue that found no shared bucket free for its host. nullptr or an error line.
    const char* init(ShaperBuckets* shared, int socket, uint32_t backlog_cap = 4096,
                     Counter* host_buckets_full = nullptr) noexcept;

    // A packet of a shape/police flow. Send: it may leave now (credit taken). Queued: the
    // shaper owns it until drain() or flush(), and `tag` (the caller's, e.g. what to count
    // when it leaves) waits with it: tag(m) reads it back. Drop: the caller drops it for `why`.
    Admit admit(rte_mbuf* m, const ShaperProfile& p, uint8_t shaper, bool police, uint8_t port, uint8_t out,
                uint64_t host_key, uint64_t now_ns, DropReason& why, uint8_t tag = 0) noexcept;

    // The tag a queued packet was admitted with (meaningful from admit() to its drain()).
    uint8_t tag(const rte_mbuf* m) const noexcept { return *RTE_MBUF_DYNFIELD(m, tagfield_, const uint8_t*); }

    // Releases queued packets the buckets allow at now_ns, oldest first per queue:
    // emit(shaper, out_index, mbuf) for each that leaves, expired(shaper, mbuf) for each that waited longer
    // than max_delay. Queues whose shaper is gone from `pol` (a reload) leave unshaped.
    template <class Emit, class Expired>
    void drain(const PolicySnapshot* pol, uint64_t now_ns, Emit&& emit, Expired&& expired) noexcept;

    // Hands every queued packet to drop(mbuf) (l7gate stopping).
    template <class Drop>
    void flush(Drop&& drop) noexcept;

    uint64_t host_key(unsigned shaper, unsigned port, const uint8_t (&addr)[16]) const noexcept {
        return shaper_host_key(shared_->secret(), shaper, port, addr);
    }

    bool idle() const noexcept { return nactive_ == 0; }
    uint32_t backlog() const noexcept { return backlog_; }
    uint32_t backlog_cap() const noexcept { return backlog_cap_; }

private:
    struct Link {  // the mbuf dynamic field
        rte_mbuf* next;
        uint64_t enq_ns;
    };
    Link& link(rte_mbuf* m) const noexcept;
    ShapeQueue* host_queue(uint64_t key) noexcept;
    bool refill(ShapeQueue& q, const ShaperProfile& p, uint64_t now_ns) noexcept;
    void push(ShapeQueue& q, rte_mbuf* m, uint64_t now_ns, uint8_t tag) noexcept;
    rte_mbuf* pop(ShapeQueue& q) noexcept;

    ShaperBuckets* shared_ = nullptr;
    ShapeQueue* queues_ = nullptr;     // kFlat flat queues, then kHostQueues host queues
    uint32_t* active_ = nullptr;       // indexes of non-empty queues
    uint32_t nactive_ = 0;
    uint32_t backlog_ = 0;             // packets queued
    uint32_t backlog_cap_ = 4096;      // at most this many
    Counter* host_buckets_full_ = nullptr;
    int dynfield_ = -1;
    int tagfield_ = -1;  // a byte of its own: Link fills the 16 bytes it has
};

inline Shaper::Link& Shaper::link(rte_mbuf* m) const noexcept {
    return *RTE_MBUF_DYNFIELD(m, dynfield_, Link*);
}

template <class Emit, class Expired>
void Shaper::drain(const PolicySnapshot* pol, uint64_t now_ns, Emit&& emit, Expired&& expired) noexcept {
    unsigned budget = kDrainBudget;
    uint32_t keep = 0;
    for (uint32_t k = 0; k < nactive_; ++k) {
        ShapeQueue& q = queues_[active_[k]];
        const ShaperProfile* p = pol != nullptr && q.shaper < pol->shapers.size() && pol->shapers[q.shaper].defined
                                     ? &pol->shapers[q.shaper]
                                     : nullptr;
        const uint64_t max_wait = p != nullptr ? uint64_t{p->max_delay_us} * 1000u : 0;
        while (q.head != nullptr && budget != 0) {
            rte_mbuf* m = q.head;
            const uint32_t len = m->pkt_len;
            if (p != nullptr) {
                if (now_ns > link(m).enq_ns + max_wait) {
                    pop(q);
                    expired(q.shaper, m);
                    continue;
                }
                if (q.credit <= 0 && !refill(q, *p, now_ns)) {
                    break;
                }
                q.credit -= len;
            }
            pop(q);
            --budget;
            emit(q.shaper, q.out, m);
        }
        if (q.head != nullptr) {
            active_[keep++] = active_[k];
        } else {
            q.active = 0;
        }
    }
    nactive_ = keep;
}

template <class Drop>
void Shaper::flush(Drop&& drop) noexcept {
    for (uint32_t k = 0; k < nactive_; ++k) {
        ShapeQueue& q = queues_[active_[k]];
        while (q.head != nullptr) {
            drop(pop(q));
        }
        q.active = 0;
    }
    nactive_ = 0;
}

} // namespace l7gate::dp
