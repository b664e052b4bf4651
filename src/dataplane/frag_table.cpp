#include "dataplane/frag_table.hpp"

#include <cstring>

#include "dataplane/hash.hpp"

#include "dataplane/memory.hpp"

namespace l7gate::dp {

bool FragKey::operator==(const FragKey& o) const noexcept {
    return std::memcmp(this, &o, sizeof(*this)) == 0;
}

FragTable::~FragTable() { table_free(buckets_); }

bool FragTable::init(uint32_t capacity, uint32_t timeout_s, int socket) noexcept {
    HashKey secret;
    return random_hash_key(secret) && init(capacity, timeout_s, socket, secret);
}

bool FragTable::init(uint32_t capacity, uint32_t timeout_s, int socket, const HashKey& secret) noexcept {
    secret_ = secret;
    uint32_t nb = 1;
    while (nb * kWays < capacity) {
        nb <<= 1;
    }
    buckets_ = static_cast<Bucket*>(table_alloc(sizeof(Bucket) * nb, socket));
    if (buckets_ == nullptr) {
        return false;
    }
    for (uint32_t b = 0; b < nb; ++b) {
        for (Entry& e : buckets_[b].e) {
            e.flow_idx = kNone;
        }
    }
    mask_ = nb - 1;
    timeout_ns_ = uint64_t{timeout_s} * 1000000000u;
    return true;
}

void FragTable::make_key(const uint8_t* frame, const PacketMeta& m, FragKey& k) noexcept {
    std::memset(&k, 0, sizeof(k));
    const uint8_t* ip = frame + m.l3_offset;
    if (m.ip_version == 4) {
        std::memcpy(k.src, ip + 12, 4);
        std::memcpy(k.dst, ip + 16, 4);
    } else {
        std::memcpy(k.src, ip + 8, 16);
        std::memcpy(k.dst, ip + 24, 16);
    }
    k.id = m.frag_id;
    k.vlan = m.key.vlan;
    k.proto = m.l4_proto;
    k.ip_version = m.ip_version;
}

bool FragTable::insert(const FragKey& k, uint32_t flow_idx, uint8_t slot, uint64_t now_ns) noexcept {
    Bucket& b = buckets_[bucket_of(k)];
    Entry* victim = nullptr;
    for (Entry& e : b.e) {
        if (e.flow_idx != kNone && e.key == k) {
            victim = &e;  // a retransmitted first fragment refreshes its entry
            break;
        }
        if (victim == nullptr && (e.flow_idx == kNone || e.expires_ns <= now_ns)) {
            victim = &e;
        }
    }
    if (victim == nullptr) {
        return false;
    }
    victim->key = k;
    victim->flow_idx = flow_idx;
    victim->slot = slot;
    victim->expires_ns = now_ns + timeout_ns_;
    return true;
}

uint32_t FragTable::lookup(const FragKey& k, uint64_t now_ns, uint8_t& slot) noexcept {
    Bucket& b = buckets_[bucket_of(k)];
    for (Entry& e : b.e) {
        if (e.flow_idx != kNone && e.key == k) {
            if (e.expires_ns <= now_ns) {
                e.flow_idx = kNone;
                return kNone;
            }
            e.expires_ns = now_ns + timeout_ns_;
            slot = e.slot;
            return e.flow_idx;
        }
    }
    return kNone;
}

} // namespace l7gate::dp
