#pragma once
// FragTable: remembers, per worker, which flow a fragmented datagram belongs to.
//
// The first fragment (offset 0) carries the L4 header, so it finds or creates the flow as
// usual and records (src, dst, proto, vlan, fragment id) -> flow index here. Later fragments
// carry no ports; they look the datagram up here and take the flow's accounting and
// verdict. Entries live for a short timeout (RFC 791 suggests seconds, not minutes).
//
// Set-associative (4 ways per 256-byte bucket), fixed size, no allocation after init; a
// full bucket refuses the new datagram (counted), its later fragments then count as
// frag_no_first. The bucket comes from a keyed hash (SipHash-1-3, a secret per table drawn at
// init): the key's fields are the sender's choice, and with a fixed or linear hash a sender
// could compute datagram ids that fill a victim's bucket.

#include <cstdint>

#include "dataplane/hash.hpp"
#include "dataplane/packet_parser.hpp"

namespace l7gate::dp {

struct FragKey {
    uint8_t src[16];
    uint8_t dst[16];
    uint32_t id;
    uint32_t vlan;
    uint8_t proto;
    uint8_t ip_version;
    uint16_t pad;
    bool operator==(const FragKey& o) const noexcept;
};

class FragTable {
public:
    static constexpr unsigned kWays = 4;
    static constexpr uint32_t kNone = UINT32_MAX;

    FragTable() = default;
    FragTable(const FragTable&) = delete;
    FragTable& operator=(const FragTable&) = delete;
    ~FragTable();

    // A secret from random_hash_key(); false when none came or out of memory.
    bool init(uint32_t capacity, uint32_t timeout_s, int socket) noexcept;
    // With a given secret (tests).
    bool init(uint32_t capacity, uint32_t timeout_s, int socket, const HashKey& secret) noexcept;

    // The bucket `k` maps to (tests).
    uint32_t bucket_of(const FragKey& k) const noexcept {
        return static_cast<uint32_t>(siphash_bytes<sizeof(FragKey)>(&k, secret_)) & mask_;
    }

    // Builds the datagram key of a fragment from its parsed metadata and frame bytes.
    static void make_key(const uint8_t* frame, const PacketMeta& m, FragKey& k) noexcept;

    // Records the datagram's flow (first fragment). False when the bucket is full of live
    // entries.
    bool insert(const FragKey& k, uint32_t flow_idx, uint8_t slot, uint64_t now_ns) noexcept;

    // Flow index for a later fragment, or kNone. Refreshes the entry's lifetime.
    uint32_t lookup(const FragKey& k, uint64_t now_ns, uint8_t& slot) noexcept;

    uint32_t capacity() const noexcept { return (mask_ + 1) * kWays; }

private:
    struct Entry {
        FragKey key;
        uint32_t flow_idx;  // kNone when free
        uint64_t expires_ns;
        uint8_t slot;
        uint8_t pad[7];
    };
    static_assert(sizeof(Entry) == 64);
    struct alignas(64) Bucket {
        Entry e[kWays];
    };

    Bucket* buckets_ = nullptr;
    HashKey secret_{};
    uint32_t mask_ = 0;
    uint64_t timeout_ns_ = 0;
};

} // namespace l7gate::dp
