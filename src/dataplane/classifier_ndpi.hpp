#pragma once
// AppClassifier: the per-worker adapter around nDPI 4.2.
//
// One detection module per worker (nDPI is not thread-safe across threads). A flow gets an
// nDPI flow state from a fixed per-worker pool when it is created and gives it back as soon
// as classification is final; the flow entry keeps only the results (protocol ids, category,
// risk bitmap) and the id of an interned FlowMeta record (hostname/SNI, JA3, TLS version),
// shared by every flow with the same metadata (MetaTable).
//
// nDPI is fed exactly as ndpiReader 4.2 feeds it, so results agree with the reference: every
// packet of the flow in both directions that carries its L4 header (the IP header onward),
// until nDPI has an application protocol and ndpi_extra_dissection_possible() says no more
// metadata will come, or until the packet limit (TCP 80, UDP 24, others 32 by default, the
// count including the packet that reaches it); then ndpi_detection_giveup() with guessing
// for flows still unknown. Flows that end earlier are given up at their end. The HTTP URL
// is checked with ndpi_validate_url() when classification ends (ndpiReader does the same
// at print time), which is where the URL risks (SQL injection, XSS) come from in 4.2.
//
// One exception, for speed: a TCP flow that opens with a bare SYN takes no nDPI state until
// its first payload (DpiState::Pending). nDPI 4.2 learns little from payload-less packets and
// all of it is recorded in the flow entry instead: the handshake flags it tracks, the
// direction of the first packet, how many packets it has processed, and the two dissectors
// that exclude themselves on an empty packet (eDonkey, Targus). The nDPI state is then primed
// with that record before the first payload packet is fed, so nDPI reaches the same result;
// a flow that ends without payload (half-open, SYN flood) is given up from the record alone
// (port and address guesses, as nDPI would have made on its SYN). The flows a payload-less
// dissector could detect on the SYN itself (Targus ports 5001/5201, TeamViewer's addresses)
// and every flow when custom protocols are loaded (--ndpi-protos: a custom port match decides
// on the SYN) are fed from their first packet as before. A SYN thus costs no nDPI call and no
// nDPI state: half-open flows cannot exhaust the pool.

#include <cstdint>
#include <string_view>

#include "dataplane/counters.hpp"
#include "dataplane/flow_table.hpp"
#include "dataplane/meta_table.hpp"
#include "dataplane/ndpi_arena.hpp"

struct ndpi_detection_module_struct;
struct ndpi_flow_struct;

namespace l7gate::dp {

inline constexpr uint32_t kNoExt = UINT32_MAX;
static_assert(kNoExt == MetaTable::kNone, "FlowEntry::ext holds a MetaTable id or kNoExt");

struct ClassifierConfig {
    uint32_t dpi_flows = 65536;      // nDPI flow states per worker
    uint32_t meta_records = 65536;   // distinct FlowMeta records per worker (shared by flows)
    uint16_t max_packets_tcp = 80;   // ndpiReader's defaults
    uint16_t max_packets_udp = 24;
    uint16_t max_packets_other = 32;
    bool extra_dissection = true;    // false: done as soon as nDPI names the application
    size_t arena_bytes = 0;          // nDPI's own allocations per worker; 0: NdpiArena::bytes_for(dpi_flows)
    const char* protos_file = nullptr;
    const char* categories_file = nullptr;
};

// Counters the classifier keeps per worker (single writer).
inline constexpr unsigned kMaxNdpiProtocols = 512;  // NDPI_NUM_BITS in 4.2
inline constexpr unsigned kMaxRisks = 64;
inline constexpr unsigned kMaxCategories = 256;     // FlowEntry::category is a uint8_t
struct alignas(64) ClassifierCounters {
    Counter proto_packets[kMaxNdpiProtocols];
    Counter proto_bytes[kMaxNdpiProtocols];
    Counter proto_flows[kMaxNdpiProtocols];
    Counter risk_flows[kMaxRisks];
    Counter category_bytes[kMaxCategories];  // as proto_bytes, by the flow's own nDPI category
    Counter classified;        // flows whose classification ended
    Counter dpi_pool_full;     // flows that found no nDPI state: never classified
    Counter dpi_reclaimed;     // half-open flows whose state went to a newer flow
    Counter meta_pool_full;    // flows whose metadata could not be kept (FlowEntry::meta_lost)
    Counter meta_in_use;       // gauge: FlowMeta records held (set at housekeeping)
    Counter ndpi_packets;      // calls to ndpi_detection_process_packet
    Counter ndpi_cycles;       // TSC cycles inside those calls
    Counter giveups;           // flows ended by ndpi_detection_giveup
    Counter deferred;          // TCP flows that opened with a bare SYN: nDPI state at their payload
    Counter deferred_no_payload;  // of those, flows that ended without any payload
    Counter arena_full;        // flows given up because the nDPI arena ran low (results so far kept)
    Counter arena_refused;     // nDPI allocations the arena could not serve (returned NULL)
};

class AppClassifier {
public:
    AppClassifier() = default;
    AppClassifier(const AppClassifier&) = delete;
    AppClassifier& operator=(const AppClassifier&) = delete;
    ~AppClassifier();

    // Builds the detection module and the pools. Runs on the control thread at start-up.
    // Returns "" or an error line.
    const char* init(const ClassifierConfig& cfg, int socket) noexcept;

    // Worker thread: route nDPI's allocations to this worker's arena.
    void attach_thread() noexcept { NdpiArena::attach(&arena_); }

    // A new flow: take an nDPI state (or mark it unclassifiable when the pool is empty).
    void start(FlowEntry& e) noexcept;
    // A new TCP flow whose first packet is a bare SYN: may it wait for its payload?
    bool deferrable(const FlowKey& k) const noexcept;
    // Marks it Pending (no nDPI state); each of its packets without payload goes to skip().
    void defer(FlowEntry& e) noexcept {
        e.ext = 0;
        e.set_dpi_state(DpiState::Pending);
        counters_.deferred.inc();
    }
    // A payload-less packet of a Pending flow (from key slot `sender`): recorded as nDPI would.
    static void skip(FlowEntry& e, uint8_t tcp_flags, uint8_t sender) noexcept;
    // The first payload of a Pending flow: take an nDPI state and prime it from the record
    // (Classifying), or None when the pool is empty. The packet (`bytes` long) is then fed as
    // usual.
    void begin(FlowEntry& e, uint32_t bytes) noexcept;
    bool has_free_state() const noexcept { return dpi_free_top_ != 0; }
    // Pool pressure: end the classification of `victim` now (give-up, results kept) so its
    // state can serve a new flow.
    void reclaim(FlowEntry& victim) noexcept {
        finish_at_end(victim);
        counters_.dpi_reclaimed.inc();
    }

    // One packet of a flow in classification, from the IP header on (only packets that carry
    // their L4 header: non-first fragments are not fed, as in ndpiReader). Returns true when
    // the flow's protocol or risks changed or its classification ended.
    bool packet(FlowEntry& e, const uint8_t* ip, uint32_t ip_len, uint64_t time_ms) noexcept;

    // The flow's hostname as known now (nDPI's state while classifying, then the shared
    // record; for a flow whose record could not be kept, only until another flow finishes).
    std::string_view host(const FlowEntry& e) const noexcept;

    // Flow ends while still classifying (or Pending): give up (with guessing) and keep the results.
    void finish_at_end(FlowEntry& e) noexcept;

    // Flow is freed: drop its reference to the metadata record.
    void release(FlowEntry& e) noexcept;
    // Housekeeping: publish the gauges.
    void publish() noexcept { counters_.meta_in_use.set(metas_.in_use()); }

    // Per-packet accounting once the flow is classified.
    void count_packet(const FlowEntry& e, uint32_t bytes) noexcept {
        const unsigned p = e.app_proto != 0 ? e.app_proto : e.master_proto;
        counters_.proto_packets[p & (kMaxNdpiProtocols - 1)].inc();
        counters_.proto_bytes[p & (kMaxNdpiProtocols - 1)].add(bytes);
        counters_.category_bytes[e.category].add(bytes);
    }

    const FlowMeta* meta(const FlowEntry& e) const noexcept {
        return e.dpi_state() == DpiState::Done && e.ext != kNoExt ? &metas_.at(e.ext) : nullptr;
    }
    const MetaTable& metas() const noexcept { return metas_; }

    const ClassifierCounters& counters() const noexcept { return counters_; }
    ndpi_detection_module_struct* module() const noexcept { return ndpi_; }
    const NdpiArena& arena() const noexcept { return arena_; }
    uint32_t dpi_in_use() const noexcept { return dpi_capacity_ - dpi_free_top_; }
    uint32_t flow_state_bytes() const noexcept { return slot_size_; }
    // False when no prefix of nDPI's IPv4 host-protocol tree covers the /16 of `v4` (network
    // order): nDPI's address guess for it is then certainly unknown, and its Patricia lookup
    // is skipped. True tells nothing (the lookup decides).
    bool may_match_host(const uint8_t* v4) const noexcept {
        const uint32_t net16 = uint32_t{v4[0]} << 8 | v4[1];
        return (v4_nets_[net16 >> 6] >> (net16 & 63) & 1u) != 0;
    }

private:
    ndpi_flow_struct* slot(uint32_t idx) const noexcept {
        return reinterpret_cast<ndpi_flow_struct*>(dpi_mem_ + size_t{idx} * slot_size_);
    }
    // ndpi_validate_url() on the flow's HTTP URL, as ndpiReader does (0 when not HTTP).
    static uint64_t url_risk(const FlowEntry& e, const ndpi_flow_struct* f) noexcept;
    static uint64_t url_risk_bits() noexcept;
    // Takes a zeroed nDPI state for `e` (Classifying; `packets_seen` count toward the limit),
    // or marks it None and counts dpi_pool_full when the pool is empty (nullptr).
    ndpi_flow_struct* take_state(FlowEntry& e, uint16_t packets_seen) noexcept;
    // Ends classification; `f` goes back to the pool unless it is the scratch state.
    void finish(FlowEntry& e, ndpi_flow_struct* f, bool give_up, uint16_t master, uint16_t app,
                uint16_t category) noexcept;
    // Writes a Pending flow's record `rec` (its ext) into a zeroed nDPI state; `for_giveup` adds the fields
    // nDPI would have set on the SYN that ndpi_detection_giveup() reads (addresses, guesses).
    void prime(ndpi_flow_struct* f, const FlowKey& k, uint32_t rec, bool for_giveup) const noexcept;

    ClassifierConfig cfg_{};
    ndpi_detection_module_struct* ndpi_ = nullptr;
    NdpiArena arena_;
    uint8_t* dpi_mem_ = nullptr;
    ndpi_flow_struct* scratch_ = nullptr;  // gives Pending flows up at their end
    uint16_t* dpi_packets_ = nullptr;   // packets seen per slot (for the limit)
    uint32_t* dpi_free_ = nullptr;
    uint32_t dpi_free_top_ = 0;
    uint32_t dpi_capacity_ = 0;
    uint32_t slot_size_ = 0;
    MetaTable metas_;
    // The flow that finished last without a record (pool full) and its hostname, so that its
    // verdict, decided right after, still sees the name.
    const FlowEntry* lost_entry_ = nullptr;
    char lost_host_[80] = {};
    uint64_t* v4_nets_ = nullptr;        // 65,536 bits, one per /16 (see may_match_host)
    ClassifierCounters counters_{};
};

} // namespace l7gate::dp
