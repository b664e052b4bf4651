#pragma once
// MetaTable: one per worker, the flow metadata that does not fit the 128-byte flow entry
// (hostname, JA3 digests, TLS version), interned. Flows with the same metadata (the same
// client software to the same server name: most of them on real traffic) share one
// reference-counted record, so a classified flow costs its entry plus a 4-byte record id
// (FlowEntry::ext) and its share of the record.
//
// Fixed capacity, no locks, no allocation after init. The index is open addressing with
// linear probing over (hash, id) pairs, twice as many slots as records (load <= 50%), and
// deletion by backward shift, so it never needs tombstones or a rebuild. The hash is keyed
// (SipHash-1-3, a secret per table drawn at init): hostnames are the sender's choice, and with
// a fixed or linear hash a sender could compute names that share a slot, and make every
// intern() walk a probe chain as long as the table.

#include <cstddef>
#include <cstdint>

#include "dataplane/hash.hpp"

namespace l7gate::dp {

struct FlowMeta {
    char host[80];         // SNI / HTTP Host / DNS query, as nDPI's host_server_name; zero-padded
    uint8_t ja3c[16];      // MD5 digests (binary); all-zero when absent
    uint8_t ja3s[16];
    uint16_t tls_version;  // 0 when absent
    uint16_t pad;          // zero
    uint32_t refs;         // flows holding the record; the next free record while free
};
static_assert(sizeof(FlowMeta) == 120);
inline constexpr size_t kFlowMetaValueBytes = offsetof(FlowMeta, refs);  // what is compared

class MetaTable {
public:
    static constexpr uint32_t kNone = UINT32_MAX;

    MetaTable() = default;
    MetaTable(const MetaTable&) = delete;
    MetaTable& operator=(const MetaTable&) = delete;
    ~MetaTable();

    // Allocates `capacity` records on `socket`. Returns false when out of memory (or for a
    // capacity of 0 or over 2^30); the other calls need a table that was initialised.
    bool init(uint32_t capacity, int socket) noexcept;
    // With a given secret (tests).
    bool init(uint32_t capacity, int socket, const HashKey& secret) noexcept;

    // The id of a record equal to `value` (its refs field ignored), with one more reference:
    // an existing one when there is one, else a new copy. kNone when no record is free.
    uint32_t intern(const FlowMeta& value) noexcept;
    // Drops one reference; the record is freed with its last.
    void release(uint32_t id) noexcept;

    const FlowMeta& at(uint32_t id) const noexcept { return records_[id]; }
    uint32_t capacity() const noexcept { return capacity_; }
    uint32_t in_use() const noexcept { return in_use_; }
    uint64_t shared() const noexcept { return shared_; }  // intern() calls that found a record
    size_t memory_bytes() const noexcept {
        return size_t{capacity_} * sizeof(FlowMeta) + (size_t{slot_mask_} + 1) * sizeof(uint64_t);
    }

    // The index's hash of a value (tests).
    uint32_t hash(const FlowMeta& v) const noexcept {
        return static_cast<uint32_t>(siphash_bytes<kFlowMetaValueBytes>(&v, secret_));
    }

private:
    uint32_t find_slot(const FlowMeta& v, uint32_t h) const noexcept;  // the slot or an empty one

    HashKey secret_{};
    FlowMeta* records_ = nullptr;
    uint64_t* slots_ = nullptr;  // 0 = empty; else hash << 32 | (id + 1)
    uint32_t slot_mask_ = 0;
    uint32_t capacity_ = 0;
    uint32_t free_ = kNone;      // free list through FlowMeta::refs
    uint32_t in_use_ = 0;
    uint64_t shared_ = 0;
};

} // namespace l7gate::dp
