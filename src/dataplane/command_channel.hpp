#pragma once
// Commands from the control thread to one worker and the worker's replies (the prompt's
// "show flows", telemetry's /l7gate/top_flows). Two single-producer single-consumer rings and
// kSlots reply slots, all owned by the worker: allocated with it (init), freed with it
// (~Worker, after its lcore has stopped), never by a timeout.
//   cp: picks a slot that no outstanding command names and enqueues Command{seq, slot, ...};
//   dp: at housekeeping (never per packet) takes one command at a time, works on it a bounded
//       chunk per round, writes its answer into slot(cmd.slot) only, then enqueues
//       Reply{seq, slot} (the ring's release store publishes the slot before the reply);
//   cp: dequeues the reply (acquire), copies the answer out when `seq` is a query it still
//       waits for (else it is the stale reply of a query that timed out), and only then counts
//       the slot free again.
// So a slot is written by the worker only between taking the command that names it and
// enqueueing its reply, and read by the control thread only after that reply: however late
// a stalled worker answers, it writes memory that is still its own. At most kSlots commands
// are outstanding per worker and both rings hold more, so neither enqueue can fail. No
// locks, no allocation after init, nothing shared but the rings.

#include <cstdint>

#include "dataplane/flow_query.hpp"

struct rte_ring;

namespace l7gate::dp {

enum class CommandType : uint16_t {
    TopFlows = 1,  // arg: how many (1..kTopFlowsMax); answer: CommandSlot::top[0, count)
};

struct Command {
    uint64_t seq = 0;   // cp: unique per worker, never 0
    uint32_t slot = 0;  // where the answer goes (< kSlots)
    CommandType type = CommandType::TopFlows;
    uint16_t arg = 0;
};

struct Reply {
    uint64_t seq = 0;   // the command's
    uint32_t slot = 0;  // the command's: its answer is there
    uint32_t status = 0;  // 0: done; 1: unknown command type (slot left empty)
};

// One answer. dp: rw between taking its command and replying; cp: ro after the reply.
struct alignas(64) CommandSlot {
    uint32_t count = 0;  // top[0, count) valid, by bytes descending
    uint32_t pad = 0;
    FlowSummary top[kTopFlowsMax];
};

class CommandChannel {
public:
    static constexpr unsigned kSlots = 4;

    CommandChannel() = default;
    ~CommandChannel() { release(); }
    CommandChannel(const CommandChannel&) = delete;
    CommandChannel& operator=(const CommandChannel&) = delete;

    // Start-up (table_alloc: DPDK's heap on `socket` with EAL, else the C heap). False: no
    // memory.
    bool init(int socket) noexcept;
    // Frees the rings and slots: only once the worker no longer runs.
    void release() noexcept;
    bool ready() const noexcept { return mem_ != nullptr; }

    // ---- worker side (the lcore that owns the channel) ----
    // The command being worked on: the one taken earlier and not finished, else the next one
    // queued (its slot emptied), else nullptr. A command naming a slot out of range is
    // answered at once with status 1 and skipped.
    const Command* current() noexcept;
    CommandSlot& current_slot() noexcept { return slots_[cur_.slot]; }
    uint32_t& cursor() noexcept { return cursor_; }  // progress of a chunked command
    // Publishes the current command's answer (its slot) and the reply.
    void finish(uint32_t status = 0) noexcept;

    // ---- control side (one thread) ----
    // False only when the ring is full (the caller kept more than kSlots outstanding).
    bool send(const Command& c) noexcept;
    bool receive(Reply& r) noexcept;
    const CommandSlot& slot(uint32_t i) const noexcept { return slots_[i]; }

private:
    void* mem_ = nullptr;
    rte_ring* commands_ = nullptr;  // cp -> dp
    rte_ring* replies_ = nullptr;   // dp -> cp
    CommandSlot* slots_ = nullptr;  // [kSlots], see CommandSlot
    // dp only:
    Command cur_{};
    bool busy_ = false;
    uint32_t cursor_ = 0;
};

} // namespace l7gate::dp
