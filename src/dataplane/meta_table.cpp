#include "dataplane/meta_table.hpp"

#include <cstring>

#include "dataplane/hash.hpp"
#include "dataplane/memory.hpp"

namespace l7gate::dp {

MetaTable::~MetaTable() {
    table_free(records_);
    table_free(slots_);
}

bool MetaTable::init(uint32_t capacity, int socket) noexcept {
    HashKey secret;
    return random_hash_key(secret) && init(capacity, socket, secret);
}

bool MetaTable::init(uint32_t capacity, int socket, const HashKey& secret) noexcept {
    secret_ = secret;
    if (capacity == 0 || capacity > (UINT32_MAX >> 2)) {
        return false;
    }
    uint32_t slots = 2;
    while (slots < 2 * capacity) {
        slots <<= 1;
    }
    records_ = static_cast<FlowMeta*>(table_alloc(sizeof(FlowMeta) * size_t{capacity}, socket));
    slots_ = static_cast<uint64_t*>(table_alloc(sizeof(uint64_t) * size_t{slots}, socket));
    if (records_ == nullptr || slots_ == nullptr) {
        return false;
    }
    capacity_ = capacity;
    slot_mask_ = slots - 1;
    for (uint32_t i = 0; i < capacity; ++i) {
        records_[i].refs = i + 1 < capacity ? i + 1 : kNone;
    }
    free_ = 0;
    return true;
}

uint32_t MetaTable::find_slot(const FlowMeta& v, uint32_t h) const noexcept {
    const uint64_t tag = uint64_t{h} << 32;
    for (uint32_t s = h & slot_mask_;; s = (s + 1) & slot_mask_) {
        const uint64_t x = slots_[s];
        if (x == 0) {
            return s;
        }
        if ((x & ~uint64_t{UINT32_MAX}) == tag &&
            std::memcmp(&records_[static_cast<uint32_t>(x) - 1], &v, kFlowMetaValueBytes) == 0) {
            return s;
        }
    }
}

uint32_t MetaTable::intern(const FlowMeta& value) noexcept {
    const uint32_t h = hash(value);
    const uint32_t s = find_slot(value, h);  // the load factor stays <= 50%: an empty slot exists
    if (slots_[s] != 0) {
        const uint32_t id = static_cast<uint32_t>(slots_[s]) - 1;
        records_[id].refs += 1;
        shared_ += 1;
        return id;
    }
    if (free_ == kNone) {
        return kNone;
    }
    const uint32_t id = free_;
    FlowMeta& r = records_[id];
    free_ = r.refs;
    std::memcpy(&r, &value, kFlowMetaValueBytes);
    r.refs = 1;
    slots_[s] = uint64_t{h} << 32 | (uint64_t{id} + 1);
    in_use_ += 1;
    return id;
}

void MetaTable::release(uint32_t id) noexcept {
    FlowMeta& r = records_[id];
    if (--r.refs != 0) {
        return;
    }
    // Remove its slot, then shift back every later slot of the run that may move into the
    // hole (its home is not cyclically within (hole, slot]), so probes never stop early.
    uint32_t hole = hash(r) & slot_mask_;
    while (static_cast<uint32_t>(slots_[hole]) != id + 1) {
        hole = (hole + 1) & slot_mask_;
    }
    for (uint32_t s = (hole + 1) & slot_mask_; slots_[s] != 0; s = (s + 1) & slot_mask_) {
        const uint32_t home = static_cast<uint32_t>(slots_[s] >> 32) & slot_mask_;
        const bool stays = hole <= s ? (hole < home && home <= s) : (hole < home || home <= s);
        if (!stays) {
            slots_[hole] = slots_[s];
            hole = s;
        }
    }
    slots_[hole] = 0;
    r.refs = free_;
    free_ = id;
    in_use_ -= 1;
}

} // namespace l7gate::dp
