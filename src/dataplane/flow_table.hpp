#pragma once
// FlowTable: one per worker, fixed capacity, no locks, no allocation after init.
//
// Index: 2-choice bucketised hash. Each 64-byte bucket holds 8 (signature, entry index)
// slots; a key lives in its primary bucket, or in its alternative one when the primary is
// full; when both are full one resident moves to its own other bucket (a single cuckoo
// step). Slots = 2 x capacity, so the load factor never exceeds 50%. Buckets come from a
// keyed hash (FlowHasher: AES rounds with AES-NI, SipHash-1-3 without) whose secret each
// table draws at init from getrandom(2): nobody outside can compute keys that share a flow's
// buckets. When both
// buckets of a new key are full while entries are free (chance at 50% load, or a key
// collision attack that guessed the secret) the insert fails and the worker counts it as
// `bucket_full`, apart from `table_full`.
// Entries live in one array and are recycled through a free stack.
//
// Expiry: one intrusive doubly-linked list per timeout class, ordered by `queued_s`, the
// second at which the entry was last appended. A packet moves its flow to the tail at most
// once per second. The head is the oldest; housekeeping looks at a bounded number of heads:
// if the head's queued_s + timeout is still in the future, nothing behind it can be expired
// (last_ns >= queued_s for every entry), so the scan stops; otherwise the head is either
// really idle (expired) or was active since (moved to the tail with queued_s = now).
// No full-table scan, ever.

#include <cstdint>

#include <rte_prefetch.h>

#include "dataplane/flow_key.hpp"

namespace l7gate::dp {

enum class TimeoutClass : uint8_t {
    TcpSyn,    // TCP seen in one direction only (handshake / half-open / SYN flood)
    Tcp,       // TCP established
    TcpClosed, // TCP after RST, or FIN from both sides
    Udp,
    Other,     // ICMP and every other protocol
    Count,
};
inline constexpr unsigned kTimeoutClasses = static_cast<unsigned>(TimeoutClass::Count);

struct FlowTimeouts {
    uint32_t seconds[kTimeoutClasses] = {30, 300, 10, 60, 30};
};

namespace tcp_state {  // FlowEntry::tcp() bits
inline constexpr uint8_t kFin0 = 0x01;   // FIN sent by key slot 0
inline constexpr uint8_t kFin1 = 0x02;   // FIN sent by key slot 1
inline constexpr uint8_t kRst = 0x04;
inline constexpr uint8_t kSeen0 = 0x08;  // any packet from slot 0
inline constexpr uint8_t kSeen1 = 0x10;  // any packet from slot 1
} // namespace tcp_state

enum class DpiState : uint8_t {
    None,         // not classified and never will be (no nDPI state was available)
    Classifying,  // FlowEntry::ext = nDPI state slot
    Done,         // FlowEntry::ext = FlowMeta slot or none
    Pending,      // TCP opened by a bare SYN, no payload yet: no nDPI state; FlowEntry::ext =
                  // what nDPI would have learnt from the payload-less packets (AppClassifier)
};

// Verdict actions cached in a flow (the policy snapshot's marker, resolved).
enum class Action : uint8_t {
    Pass = 0,
    Drop = 1,
    Shape = 2,   // with a shaper index: delayed in a queue while over the rate
    Reject = 3,  // drop, and tell the endpoints (TCP RST, ICMP port unreachable)
    Police = 4,  // with a shaper index: the same bucket, out-of-profile packets dropped
};

// FlowEntry::action, the cached verdict in one byte. Shape and police carry the shaper index
// and which endpoint is the local host (for per-host buckets):
//   kShapeBase + (shaper << 2 | police << 1 | local_is_server)
namespace cached {
inline constexpr uint8_t kPass = 0;
inline constexpr uint8_t kDrop = 1;
inline constexpr uint8_t kReject = 2;
inline constexpr uint8_t kShapeBase = 3;
inline constexpr unsigned kMaxShapers = (256 - kShapeBase) / 4;  // 63
inline constexpr uint8_t encode(Action a, uint8_t shaper, bool local_is_server = false) noexcept {
    return a == Action::Shape || a == Action::Police
               ? static_cast<uint8_t>(kShapeBase + (shaper << 2 | (a == Action::Police ? 2 : 0) | (local_is_server ? 1 : 0)))
           : a == Action::Drop   ? kDrop
           : a == Action::Reject ? kReject
                                 : kPass;
}
inline constexpr bool drops(uint8_t c) noexcept { return c == kDrop || c == kReject; }
inline constexpr bool shaped(uint8_t c) noexcept { return c >= kShapeBase; }  // shape or police
inline constexpr uint8_t shaper(uint8_t c) noexcept { return static_cast<uint8_t>((c - kShapeBase) >> 2); }
inline constexpr bool police(uint8_t c) noexcept { return ((c - kShapeBase) & 2) != 0; }
inline constexpr bool local_is_server(uint8_t c) noexcept { return ((c - kShapeBase) & 1) != 0; }
// FlowEntry::reason, bit 15: the verdict is decided and recorded but not enforced (monitor
// mode: --mode monitor, or `enforce: false` on the flow's policy; README "Monitor mode");
// bits 0-11: the reason id. act() tests it only for verdicts other than pass: one branch on a
// field it already reads to count the reason's packets.
inline constexpr uint16_t kUnenforced = 0x8000;
inline constexpr bool enforced(uint16_t reason) noexcept { return reason < kUnenforced; }
} // namespace cached

struct alignas(64) FlowEntry {
    FlowKey key;            // 44 B
    uint32_t queued_s;      // expiry list position stamp (seconds of the worker clock)
    uint64_t first_ns;      // first packet (epoch ns)
    uint64_t last_ns;       // latest packet (epoch ns)
    uint64_t packets[2];    // indexed by the key slot of the sender
    uint64_t bytes[2];
    uint32_t prev;          // expiry list links (entry indexes)
    uint32_t next;
    uint64_t risk;          // nDPI risk bitmap (ndpi_risk)
    uint16_t master_proto;  // nDPI ids, valid once classification is done
    uint16_t app_proto;
    uint32_t ext;           // nDPI state slot while classifying, then FlowMeta slot (or none)
    uint8_t state;          // bits 0-4: tcp_state bits; bits 5-7: TimeoutClass
    uint8_t flags;          // bit 0: live; bit 1: client slot; bits 2-3: DpiState; bit 4: meta lost;
                            // bit 5: the verdict is the blocked set's; bits 6-7: first flight
    uint8_t category;       // nDPI category id
    uint8_t action;         // Action of the cached verdict (+ shaper index for Shape)
    uint16_t reason;        // verdict reason id (stable across policy reloads); bit 15: cached::kUnenforced
    uint16_t generation;    // the worker's verdict epoch the verdict came from (0: never decided)

    TimeoutClass tclass() const noexcept { return static_cast<TimeoutClass>(state >> 5); }
    void set_tclass(TimeoutClass c) noexcept {
        state = static_cast<uint8_t>((state & 0x1f) | static_cast<uint8_t>(c) << 5);
    }
    uint8_t tcp() const noexcept { return state & 0x1f; }
    void add_tcp(uint8_t bits) noexcept { state |= static_cast<uint8_t>(bits & 0x1f); }
    bool live() const noexcept { return (flags & 1u) != 0; }
    uint8_t client_slot() const noexcept { return (flags >> 1) & 1u; }
    DpiState dpi_state() const noexcept { return static_cast<DpiState>((flags >> 2) & 3u); }
    void set_dpi_state(DpiState d) noexcept {
        flags = static_cast<uint8_t>((flags & ~0x0cu) | static_cast<uint8_t>(d) << 2);
    }
    // Classified with a hostname or TLS data, but no metadata record was free to keep them:
    // the verdict decided at classification (which saw them) is kept across policy reloads.
    bool meta_lost() const noexcept { return (flags & 0x10u) != 0; }
    void set_meta_lost() noexcept { flags = static_cast<uint8_t>(flags | 0x10u); }
    // The cached verdict is the blocked set's drop (a host of the flow was in it), not the
    // policy's: when the host leaves the set, the policy decides again.
    bool blocked_verdict() const noexcept { return (flags & 0x20u) != 0; }
    void set_blocked_verdict(bool on) noexcept {
        flags = static_cast<uint8_t>(on ? flags | 0x20u : flags & ~0x20u);
    }
    // First-flight reassembly (the worker's): bit 6, over or never needed; bit 7, segments held
    // in a slot (the worker's per-entry array names it). Both clear in a new flow.
    bool ff_over() const noexcept { return (flags & 0x40u) != 0; }
    bool ff_held() const noexcept { return (flags & 0x80u) != 0; }
    void set_ff_over() noexcept { flags = static_cast<uint8_t>((flags & ~0x80u) | 0x40u); }
    void set_ff_held() noexcept { flags = static_cast<uint8_t>(flags | 0x80u); }
};
static_assert(sizeof(FlowEntry) == 128, "a classified flow must fit in two cache lines");

class FlowTable {
public:
    static constexpr uint32_t kNil = UINT32_MAX;
    static constexpr unsigned kBucketSlots = 8;

    FlowTable() = default;
    FlowTable(const FlowTable&) = delete;
    FlowTable& operator=(const FlowTable&) = delete;
    ~FlowTable();

    // Allocates for `capacity` entries on `socket` and draws the hash secret from
    // getrandom(2). Returns false when out of memory or when no random bytes came.
    bool init(uint32_t capacity, const FlowTimeouts& timeouts, int socket) noexcept;
    // The same with a given secret (tests, benchmarks), the construction this CPU gets.
    bool init(uint32_t capacity, const FlowTimeouts& timeouts, int socket, const HashKey& secret) noexcept;
    // The same with a given hasher (tests: each construction).
    bool init(uint32_t capacity, const FlowTimeouts& timeouts, int socket, const FlowHasher& hasher) noexcept;

    // The hash lookup() and insert() expect for a key (once per packet).
    uint32_t hash(const FlowKey& key) const noexcept { return hasher_(key); }
    // hash() of n keys at once (a burst's: see FlowHasher::burst).
    void hash_burst(const FlowKey* const* keys, uint32_t* out, unsigned n) const noexcept {
        hasher_.burst(keys, out, n);
    }
    const HashKey& secret() const noexcept { return hasher_.secret(); }
    FlowHasher::Kind hash_kind() const noexcept { return hasher_.kind(); }
    // The two buckets a hash selects (tests: which keys share a bucket pair).
    uint32_t primary_bucket(uint32_t h) const noexcept { return primary(h); }
    uint32_t alternative_bucket(uint32_t h) const noexcept { return alternative(h); }
    uint32_t bucket_count() const noexcept { return bucket_mask_ + 1; }

    // Looks up n keys; out[i] = entry or nullptr. Prefetches buckets, then entries.
    void lookup_burst(const FlowKey* const keys[], const uint32_t hashes[], unsigned n,
                      FlowEntry* out[]) noexcept;
    FlowEntry* lookup(const FlowKey& key, uint32_t hash) noexcept;

    // Inserts a key known to be absent. Returns nullptr when the table is full (full() is
    // then true) or when both buckets of the key are full (full() false).
    FlowEntry* insert(const FlowKey& key, uint32_t hash, uint64_t now_ns, uint8_t client_slot) noexcept;

    // Records a packet of `bytes` from key slot `slot` at now_ns; keeps the expiry order.
    void touch(FlowEntry& e, uint8_t slot, uint32_t bytes, uint64_t now_ns) noexcept {
        e.packets[slot] += 1;
        e.bytes[slot] += bytes;
        e.last_ns = now_ns;
        // A multiply, not a divide, on the per-packet path: the clock never goes back, so the
        // second changed iff now reached the next second boundary after queued_s.
        if (now_ns >= (uint64_t{e.queued_s} + 1) * 1000000000u) {
            requeue(e, static_cast<uint32_t>(now_ns / 1000000000u));
        }
    }

    // Moves the entry to another timeout class (TCP state change).
    void set_class(FlowEntry& e, TimeoutClass c, uint64_t now_ns) noexcept;

    // Expires idle entries, looking at most at `budget` list heads. fn(FlowEntry&) is called
    // before each entry is freed. Returns the number expired.
    template <typename Fn>
    unsigned expire(uint64_t now_ns, unsigned budget, Fn&& fn) noexcept;

    // Removes every entry (shutdown flush), calling fn for each.
    template <typename Fn>
    unsigned expire_all(Fn&& fn) noexcept;

    void remove(FlowEntry& e) noexcept;

    // Oldest entry of a timeout class (kNil when empty); follow FlowEntry::next.
    uint32_t oldest(TimeoutClass c) const noexcept { return lists_[static_cast<unsigned>(c)].head; }

    uint32_t capacity() const noexcept { return capacity_; }
    uint32_t active() const noexcept { return capacity_ - free_top_; }
    bool full() const noexcept { return free_top_ == 0; }
    // Entries from here on have never held a flow. Free entries are reused last-freed first
    // and the unused ones are handed out in index order, so this is the most flows the table
    // ever held at once: scans of live entries (the active timeout's) stop here.
    uint32_t high_water() const noexcept { return high_water_; }
    uint32_t index_of(const FlowEntry& e) const noexcept { return static_cast<uint32_t>(&e - entries_); }
    FlowEntry& at(uint32_t idx) noexcept { return entries_[idx]; }
    size_t memory_bytes() const noexcept { return memory_bytes_; }
    uint32_t timeout_s(TimeoutClass c) const noexcept { return timeouts_.seconds[static_cast<unsigned>(c)]; }

private:
    struct alignas(64) Bucket {
        uint32_t sig[kBucketSlots];
        uint32_t idx[kBucketSlots];
    };
    struct List {
        uint32_t head = kNil;
        uint32_t tail = kNil;
    };

    uint32_t primary(uint32_t h) const noexcept { return h & bucket_mask_; }
    uint32_t alternative(uint32_t h) const noexcept {
        return ((h >> 16 | h << 16) * 0x9e3779b1u) & bucket_mask_;
    }
    bool find_free_slot(uint32_t hash, uint32_t& bucket, unsigned& slot) noexcept;
    void link_tail(uint32_t idx, TimeoutClass c) noexcept;
    void unlink(uint32_t idx) noexcept;
    void requeue(FlowEntry& e, uint32_t now_s) noexcept;
    void free_entry(FlowEntry& e) noexcept { free_entry(e, hash(e.key)); }
    void free_entry(FlowEntry& e, uint32_t hash) noexcept;

    Bucket* buckets_ = nullptr;
    FlowEntry* entries_ = nullptr;
    uint32_t* free_stack_ = nullptr;
    uint32_t free_top_ = 0;   // number of free entries on the stack
    uint32_t high_water_ = 0; // see high_water()
    uint32_t capacity_ = 0;
    uint32_t bucket_mask_ = 0;
    size_t memory_bytes_ = 0;
    FlowTimeouts timeouts_{};
    FlowHasher hasher_{};
    List lists_[kTimeoutClasses];
};

template <typename Fn>
unsigned FlowTable::expire(uint64_t now_ns, unsigned budget, Fn&& fn) noexcept {
    const uint32_t now_s = static_cast<uint32_t>(now_ns / 1000000000u);
    unsigned expired = 0;
    // The hash computed to prefetch the next head's bucket, kept for freeing it.
    uint32_t next_idx = kNil;
    uint32_t next_hash = 0;
    for (unsigned c = 0; c < kTimeoutClasses && budget > 0; ++c) {
        const uint32_t to = timeouts_.seconds[c];
        next_idx = kNil;
        while (budget > 0 && lists_[c].head != kNil) {
            --budget;
            const uint32_t idx = lists_[c].head;
            FlowEntry& e = entries_[idx];
            if (uint64_t{e.queued_s} + to > now_s) {
                break;  // the list is ordered by queued_s: nothing behind is older
            }
            const uint32_t h = idx == next_idx ? next_hash : hash(e.key);
            // The list is a pointer chase through cold entries: fetch ahead. The next entry
            // arrived while this one was handled last time round, so its key and link can be
            // read now: prefetch its bucket (freeing it clears a slot there) and the entry after.
            next_idx = e.next;
            if (e.next != kNil) {
                const FlowEntry& n1 = entries_[e.next];
                next_hash = hash(n1.key);
                rte_prefetch0(&buckets_[primary(next_hash)]);
                if (n1.next != kNil) {
                    rte_prefetch0(&entries_[n1.next]);
                    rte_prefetch0(reinterpret_cast<const uint8_t*>(&entries_[n1.next]) + 64);
                }
            }
            if (e.last_ns + uint64_t{to} * 1000000000u <= now_ns) {
                fn(e);
                free_entry(e, h);
                ++expired;
            } else {
                requeue(e, now_s);
            }
        }
    }
    return expired;
}

template <typename Fn>
unsigned FlowTable::expire_all(Fn&& fn) noexcept {
    unsigned n = 0;
    for (unsigned c = 0; c < kTimeoutClasses; ++c) {
        while (lists_[c].head != kNil) {
            FlowEntry& e = entries_[lists_[c].head];
            fn(e);
            free_entry(e);
            ++n;
        }
    }
    return n;
}

} // namespace l7gate::dp
