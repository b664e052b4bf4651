#include "dataplane/command_channel.hpp"

#include <new>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "dataplane/memory.hpp"

namespace l7gate::dp {

namespace {
constexpr unsigned kRingSize = 2 * CommandChannel::kSlots;  // holds kRingSize - 1 > kSlots
static_assert((kRingSize & (kRingSize - 1)) == 0, "rte_ring sizes are powers of two");
static_assert(sizeof(Command) % 4 == 0 && sizeof(Reply) % 4 == 0, "rte_ring elements are multiples of 4 bytes");

size_t round64(size_t n) { return (n + 63) & ~size_t{63}; }
} // namespace

bool CommandChannel::init(int socket) noexcept {
    release();
    const ssize_t cs = rte_ring_get_memsize_elem(sizeof(Command), kRingSize);
    const ssize_t rs = rte_ring_get_memsize_elem(sizeof(Reply), kRingSize);
    if (cs < 0 || rs < 0) {
        return false;
    }
    const size_t total = round64(static_cast<size_t>(cs)) + round64(static_cast<size_t>(rs)) +
                         sizeof(CommandSlot) * kSlots;
    auto* base = static_cast<unsigned char*>(table_alloc(total, socket));
    if (base == nullptr) {
        return false;
    }
    commands_ = reinterpret_cast<rte_ring*>(base);
    replies_ = reinterpret_cast<rte_ring*>(base + round64(static_cast<size_t>(cs)));
    slots_ = reinterpret_cast<CommandSlot*>(base + round64(static_cast<size_t>(cs)) + round64(static_cast<size_t>(rs)));
    // Not named in DPDK's ring list (rte_ring_init, no memzone): one worker's private pair.
    if (rte_ring_init(commands_, "l7g_cmd", kRingSize, RING_F_SP_ENQ | RING_F_SC_DEQ) != 0 ||
        rte_ring_init(replies_, "l7g_reply", kRingSize, RING_F_SP_ENQ | RING_F_SC_DEQ) != 0) {
        table_free(base);
        commands_ = replies_ = nullptr;
        slots_ = nullptr;
        return false;
    }
    for (unsigned i = 0; i < kSlots; ++i) {
        new (&slots_[i]) CommandSlot();
    }
    mem_ = base;
    busy_ = false;
    return true;
}

void CommandChannel::release() noexcept {
    table_free(mem_);
    mem_ = nullptr;
    commands_ = replies_ = nullptr;
    slots_ = nullptr;
}

const Command* CommandChannel::current() noexcept {
    if (busy_) {
        return &cur_;
    }
    if (commands_ == nullptr) {
        return nullptr;
    }
    while (rte_ring_sc_dequeue_elem(commands_, &cur_, sizeof(cur_)) == 0) {
        if (cur_.slot < kSlots) {
            busy_ = true;
            cursor_ = 0;
            slots_[cur_.slot].count = 0;
            return &cur_;
        }
        Reply r{cur_.seq, cur_.slot, 1};
        (void)rte_ring_sp_enqueue_elem(replies_, &r, sizeof(r));
    }
    return nullptr;
}

void CommandChannel::finish(uint32_t status) noexcept {
    Reply r{cur_.seq, cur_.slot, status};
    // Never full: at most kSlots replies are outstanding (see the header).
    (void)rte_ring_sp_enqueue_elem(replies_, &r, sizeof(r));
    busy_ = false;
}

bool CommandChannel::send(const Command& c) noexcept {
    Command copy = c;  // DPDK 22.11 takes a non-const pointer
    return commands_ != nullptr && rte_ring_sp_enqueue_elem(commands_, &copy, sizeof(copy)) == 0;
}

bool CommandChannel::receive(Reply& r) noexcept {
    return replies_ != nullptr && rte_ring_sc_dequeue_elem(replies_, &r, sizeof(r)) == 0;
}

} // namespace l7gate::dp
