#pragma once
// First-flight reassembly: the in-order bytes a TCP client sends first, put back together
// before nDPI sees them, so that hostname and SNI rules hold however the client segments its
// ClientHello or HTTP request (issue 18, point 7).
//
// A TCP flow whose first client payload starts a TLS handshake record or an HTTP request
// that this payload does not complete gets a slot from a per-worker pool (sized at start-up,
// nothing allocated per packet). Its client segments are then copied into the slot in
// sequence order and held (not forwarded) until the message is complete (the TLS record's
// length, the end of the HTTP header block) or a bound is reached: the configured byte
// bound, kMaxHeld segments, the worker's budget of held mbufs, a FIN/RST/IP fragment from
// the client, or kHoldNs since the first held segment. nDPI is then handed one packet with
// the reassembled bytes, the flow is decided, and the held segments are forwarded in order
// (or dropped with the flow). Segments that are not the next bytes are dropped: out of order
// (the client resends them), a resend of held bytes (duplicate) or one whose bytes differ
// from the held ones (conflict: first wins, so what nDPI inspected is what the server gets).
// A first flight that ended on a bound without nDPI naming a host is decided by
// --on-unnamed-first-flight (default drop); a flow that finds no free slot too.
//
// Single writer: the owning worker. See README "Evasion" for the semantics and counters.

#include <cstdint>
#include <string_view>

struct rte_mbuf;

namespace l7gate::dp {

struct FirstFlightConfig {
    uint32_t bytes = 16389;     // bound per flow (one full TLS record); 0: no reassembly
    uint32_t slots = 256;       // flows reassembled at once per worker
    uint32_t mbufs = 1024;      // segments held at once per worker
    bool unnamed_drop = true;   // --on-unnamed-first-flight drop
};

inline constexpr unsigned kFirstFlightMaxHeld = 128;              // segments per flow
inline constexpr uint64_t kFirstFlightHoldNs = 1000000000ull;     // 1 s
inline constexpr uint32_t kFirstFlightMaxBytes = 65000;

// How a first flight ended (l7gate_first_flight_total{outcome}).
#define L7G_FIRST_FLIGHT_OUTCOMES(X)                                                              \
    X(Complete, "complete", "the first message (TLS record, HTTP header block) was complete")     \
    X(Bound, "bound", "the byte bound, the per-flow segment limit or the held-mbuf budget was reached") \
    X(Ended, "ended", "the client sent FIN or RST, or an IP fragment, before the message was complete") \
    X(Timeout, "timeout", "the message was still incomplete 1 s after its first segment")         \
    X(NoSlot, "no_slot", "no free reassembly slot: decided by --on-unnamed-first-flight")        \
    X(UnnamedPass, "unnamed_pass", "ended on a bound without a hostname: passed (fail-open)")     \
    X(UnnamedDrop, "unnamed_drop", "ended on a bound without a hostname: dropped (fail-closed)")

enum class FirstFlightOutcome : uint8_t {
#define L7G_X(e, name, help) e,
    L7G_FIRST_FLIGHT_OUTCOMES(L7G_X)
#undef L7G_X
        Count,
};
inline constexpr unsigned kFirstFlightOutcomes = static_cast<unsigned>(FirstFlightOutcome::Count);
inline constexpr std::string_view kFirstFlightOutcomeNames[] = {
#define L7G_X(e, name, help) name,
    L7G_FIRST_FLIGHT_OUTCOMES(L7G_X)
#undef L7G_X
};
inline constexpr std::string_view kFirstFlightOutcomeHelp[] = {
#define L7G_X(e, name, help) help,
    L7G_FIRST_FLIGHT_OUTCOMES(L7G_X)
#undef L7G_X
};

enum class FirstMessage : uint8_t { NeedMore, Complete, Other };

// Is data[0, len) the start of a TLS handshake record or an HTTP request, and is it complete?
// `scan` keeps where the search for the end of the HTTP header block resumes (start at 0).
FirstMessage first_message(const uint8_t* data, uint32_t len, uint32_t& scan) noexcept;

struct FirstFlightSlot {
    uint64_t start_ns = 0;
    uint32_t base_seq = 0;   // sequence number of data[0]
    uint32_t len = 0;
    uint32_t scan = 0;
    uint32_t nheld = 0;
    rte_mbuf* held[kFirstFlightMaxHeld] = {};
};

class FirstFlightPool {
public:
    static constexpr uint32_t kNone = UINT32_MAX;
    FirstFlightPool() = default;
    FirstFlightPool(const FirstFlightPool&) = delete;
    FirstFlightPool& operator=(const FirstFlightPool&) = delete;
    ~FirstFlightPool();

    bool init(const FirstFlightConfig& cfg, int socket) noexcept;
    bool enabled() const noexcept { return cfg_.bytes != 0; }
    const FirstFlightConfig& config() const noexcept { return cfg_; }

    uint32_t take() noexcept { return free_top_ == 0 ? kNone : free_[--free_top_]; }
    void put(uint32_t i) noexcept {
        slots_[i].len = 0;
        slots_[i].nheld = 0;
        free_[free_top_++] = i;
    }
    FirstFlightSlot& slot(uint32_t i) noexcept { return slots_[i]; }
    uint8_t* data(uint32_t i) noexcept { return data_ + size_t{i} * cfg_.bytes; }
    // Room for one more held segment in the worker's budget.
    bool can_hold() const noexcept { return held_ < cfg_.mbufs; }
    void held_add(uint32_t n) noexcept { held_ += n; }
    void held_sub(uint32_t n) noexcept { held_ -= n; }
    uint32_t held() const noexcept { return held_; }
    uint32_t in_use() const noexcept { return cfg_.slots - free_top_; }
    // A packet of headers plus the whole bound, handed to nDPI.
    uint8_t* scratch() noexcept { return scratch_; }
    static constexpr uint32_t kScratchHeaders = 512;

private:
    FirstFlightConfig cfg_{};
    FirstFlightSlot* slots_ = nullptr;
    uint8_t* data_ = nullptr;
    uint8_t* scratch_ = nullptr;
    uint32_t* free_ = nullptr;
    uint32_t free_top_ = 0;
    uint32_t held_ = 0;
};

} // namespace l7gate::dp
