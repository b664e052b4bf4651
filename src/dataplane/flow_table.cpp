#include "dataplane/flow_table.hpp"

#include <cstring>

#include <rte_prefetch.h>

#include "dataplane/memory.hpp"

namespace l7gate::dp {

namespace {
constexpr uint32_t kEmpty = UINT32_MAX;

uint32_t next_pow2(uint32_t v) noexcept {
    uint32_t p = 1;
    while (p < v) {
        p <<= 1;
    }
    return p;
}
} // namespace

FlowTable::~FlowTable() {
    table_free(buckets_);
    table_free(entries_);
    table_free(free_stack_);
}

bool FlowTable::init(uint32_t capacity, const FlowTimeouts& timeouts, int socket) noexcept {
    // A secret per table (so per worker), from the kernel's CSPRNG.
    HashKey secret;
    return random_hash_key(secret) && init(capacity, timeouts, socket, FlowHasher(secret));
}

bool FlowTable::init(uint32_t capacity, const FlowTimeouts& timeouts, int socket,
                     const HashKey& secret) noexcept {
    return init(capacity, timeouts, socket, FlowHasher(secret));
}

bool FlowTable::init(uint32_t capacity, const FlowTimeouts& timeouts, int socket,
                     const FlowHasher& hasher) noexcept {
    hasher_ = hasher;
    if (capacity == 0 || capacity > (1u << 30)) {
        return false;
    }
    // Twice as many slots as entries: load factor <= 50%.
    const uint32_t nbuckets = next_pow2((capacity * 2 + kBucketSlots - 1) / kBucketSlots);
    buckets_ = static_cast<Bucket*>(table_alloc(sizeof(Bucket) * nbuckets, socket));
    entries_ = static_cast<FlowEntry*>(table_alloc(sizeof(FlowEntry) * capacity, socket));
    free_stack_ = static_cast<uint32_t*>(table_alloc(sizeof(uint32_t) * capacity, socket));
    if (buckets_ == nullptr || entries_ == nullptr || free_stack_ == nullptr) {
        return false;
    }
    for (uint32_t b = 0; b < nbuckets; ++b) {
        for (unsigned s = 0; s < kBucketSlots; ++s) {
            buckets_[b].idx[s] = kEmpty;
        }
    }
    // Lowest indexes on top of the stack: a lightly loaded table stays compact in memory.
    for (uint32_t i = 0; i < capacity; ++i) {
        free_stack_[i] = capacity - 1 - i;
    }
    free_top_ = capacity;
    high_water_ = 0;
    capacity_ = capacity;
    bucket_mask_ = nbuckets - 1;
    timeouts_ = timeouts;
    memory_bytes_ = sizeof(Bucket) * nbuckets + sizeof(FlowEntry) * capacity +
                    sizeof(uint32_t) * capacity;
    for (List& l : lists_) {
        l = List{};
    }
    return true;
}

FlowEntry* FlowTable::lookup(const FlowKey& key, uint32_t hash) noexcept {
    const uint32_t bs[2] = {primary(hash), alternative(hash)};
    for (uint32_t b : bs) {
        const Bucket& bk = buckets_[b];
        for (unsigned s = 0; s < kBucketSlots; ++s) {
            if (bk.sig[s] == hash && bk.idx[s] != kEmpty && entries_[bk.idx[s]].key == key) {
                return &entries_[bk.idx[s]];
            }
        }
    }
    return nullptr;
}

void FlowTable::lookup_burst(const FlowKey* const keys[], const uint32_t hashes[], unsigned n,
                             FlowEntry* out[]) noexcept {
    for (unsigned i = 0; i < n; ++i) {
        rte_prefetch0(&buckets_[primary(hashes[i])]);
    }
    // Stage 2: first signature hit in the primary bucket; prefetch the candidate entry.
    uint32_t cand[64];
    for (unsigned i = 0; i < n; ++i) {
        const Bucket& bk = buckets_[primary(hashes[i])];
        cand[i] = kEmpty;
        for (unsigned s = 0; s < kBucketSlots; ++s) {
            if (bk.sig[s] == hashes[i] && bk.idx[s] != kEmpty) {
                cand[i] = bk.idx[s];
                // Both lines: the key is in the first, the counters, state and cached
                // verdict the packet then updates in the second.
                rte_prefetch0(&entries_[cand[i]]);
                rte_prefetch0(reinterpret_cast<const uint8_t*>(&entries_[cand[i]]) + 64);
                break;
            }
        }
    }
    // Stage 3: confirm; anything unusual (miss, signature collision, alternative bucket)
    // takes the full scalar lookup.
    for (unsigned i = 0; i < n; ++i) {
        if (cand[i] != kEmpty && entries_[cand[i]].key == *keys[i]) {
            out[i] = &entries_[cand[i]];
        } else {
            out[i] = lookup(*keys[i], hashes[i]);
        }
    }
}

bool FlowTable::find_free_slot(uint32_t hash, uint32_t& bucket, unsigned& slot) noexcept {
    const uint32_t bs[2] = {primary(hash), alternative(hash)};
    // Primary bucket first, so most lookups are answered by the one bucket the burst
    // pipeline prefetches; then the alternative.
    for (uint32_t b : bs) {
        for (unsigned s = 0; s < kBucketSlots; ++s) {
            if (buckets_[b].idx[s] == kEmpty) {
                bucket = b;
                slot = s;
                return true;
            }
        }
    }
    // Both full: move one resident to its own other bucket (one cuckoo step). The stored
    // signature is the full hash, so the resident's other bucket needs no key rehash.
    for (uint32_t b : bs) {
        Bucket& bk = buckets_[b];
        for (unsigned s = 0; s < kBucketSlots; ++s) {
            const uint32_t sig = bk.sig[s];
            const uint32_t other = primary(sig) == b ? alternative(sig) : primary(sig);
            if (other == b) {
                continue;
            }
            Bucket& ob = buckets_[other];
            for (unsigned t = 0; t < kBucketSlots; ++t) {
                if (ob.idx[t] == kEmpty) {
                    ob.sig[t] = sig;
                    ob.idx[t] = bk.idx[s];
                    bk.idx[s] = kEmpty;
                    bucket = b;
                    slot = s;
                    return true;
                }
            }
        }
    }
    return false;
}

FlowEntry* FlowTable::insert(const FlowKey& key, uint32_t hash, uint64_t now_ns,
                             uint8_t client_slot) noexcept {
    uint32_t b;
    unsigned s;
    if (free_top_ == 0 || !find_free_slot(hash, b, s)) {
        return nullptr;  // counted as table full by the caller
    }
    const uint32_t idx = free_stack_[--free_top_];
    high_water_ = idx + 1 > high_water_ ? idx + 1 : high_water_;
    buckets_[b].sig[s] = hash;
    buckets_[b].idx[s] = idx;
    FlowEntry& e = entries_[idx];
    std::memset(&e, 0, sizeof(e));
    e.key = key;
    e.first_ns = now_ns;
    e.last_ns = now_ns;
    e.flags = static_cast<uint8_t>(1u | (client_slot & 1u) << 1);
    e.queued_s = static_cast<uint32_t>(now_ns / 1000000000u);
    const TimeoutClass c = key.proto == 6    ? TimeoutClass::TcpSyn
                           : key.proto == 17 ? TimeoutClass::Udp
                                             : TimeoutClass::Other;
    link_tail(idx, c);
    return &e;
}

void FlowTable::link_tail(uint32_t idx, TimeoutClass c) noexcept {
    FlowEntry& e = entries_[idx];
    List& l = lists_[static_cast<unsigned>(c)];
    e.set_tclass(c);
    e.next = kNil;
    e.prev = l.tail;
    if (l.tail != kNil) {
        entries_[l.tail].next = idx;
    } else {
        l.head = idx;
    }
    l.tail = idx;
}

void FlowTable::unlink(uint32_t idx) noexcept {
    FlowEntry& e = entries_[idx];
    List& l = lists_[static_cast<unsigned>(e.tclass())];
    if (e.prev != kNil) {
        entries_[e.prev].next = e.next;
    } else {
        l.head = e.next;
    }
    if (e.next != kNil) {
        entries_[e.next].prev = e.prev;
    } else {
        l.tail = e.prev;
    }
    e.prev = kNil;
    e.next = kNil;
}

void FlowTable::requeue(FlowEntry& e, uint32_t now_s) noexcept {
    const uint32_t idx = index_of(e);
    const TimeoutClass c = e.tclass();
    unlink(idx);
    link_tail(idx, c);
    e.queued_s = now_s;
}

void FlowTable::set_class(FlowEntry& e, TimeoutClass c, uint64_t now_ns) noexcept {
    if (e.tclass() == c) {
        return;
    }
    const uint32_t idx = index_of(e);
    unlink(idx);
    link_tail(idx, c);
    e.queued_s = static_cast<uint32_t>(now_ns / 1000000000u);
}

void FlowTable::free_entry(FlowEntry& e, uint32_t hash) noexcept {
    const uint32_t idx = index_of(e);
    unlink(idx);
    e.flags = 0;
    const uint32_t bs[2] = {primary(hash), alternative(hash)};
    for (uint32_t b : bs) {
        Bucket& bk = buckets_[b];
        for (unsigned s = 0; s < kBucketSlots; ++s) {
            if (bk.idx[s] == idx) {
                bk.idx[s] = kEmpty;
                free_stack_[free_top_++] = idx;
                return;
            }
        }
    }
}

void FlowTable::remove(FlowEntry& e) noexcept { free_entry(e); }

} // namespace l7gate::dp
