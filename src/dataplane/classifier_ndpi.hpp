#pragma once
// AppClassifier: the per-worker adapter around nDPI 4.2.
//
// One detection module per worker (nDPI is not thread-safe across threads). A flow gets an
// nDPI flow state from a fixed per-worker pool when it is created and gives it back as soon
// as classification is final; the flow entry keeps only the results (protocol ids, category,
// risk bitmap) and a FlowMeta side record (hostname/SNI, JA3, TLS version).
//
// nDPI is fed exactly as ndpiReader 4.2 feeds it, so results agree with the reference: every
// packet of the flow in both directions that carries its L4 header (the IP header onward),
// until nDPI has an application protocol and ndpi_extra_dissection_possible() says no more
// metadata will come, or until the packet limit (TCP 80, UDP 24, others 32 by default, the
// count including the packet that reaches it); then ndpi_detection_giveup() with guessing
// for flows still unknown. Flows that end earlier are given up at their end. The HTTP URL
// is checked with ndpi_validate_url() when classification ends (ndpiReader does the same
// at print time), which is where the URL risks (SQL injection, XSS) come from in 4.2.

#include <cstdint>
#include <string_view>

#include "dataplane/counters.hpp"
#include "dataplane/flow_table.hpp"
#include "dataplane/ndpi_arena.hpp"

struct ndpi_detection_module_struct;
struct ndpi_flow_struct;

namespace l7gate::dp {

inline constexpr uint32_t kNoExt = UINT32_MAX;

// Per-flow results that do not fit the 128-byte entry; only flows that have any take one.
struct FlowMeta {
    char host[80];          // SNI / HTTP Host / DNS query, as nDPI's host_server_name
    uint8_t ja3c[16];       // MD5 digests (binary); all-zero when absent
    uint8_t ja3s[16];
    uint16_t tls_version;   // 0 when absent
    uint16_t pad;
    uint32_t next_free;
};
static_assert(sizeof(FlowMeta) == 120);

struct ClassifierConfig {
    uint32_t dpi_flows = 65536;      // nDPI flow states per worker
    uint32_t meta_flows = 262144;    // FlowMeta records per worker
    uint16_t max_packets_tcp = 80;   // ndpiReader's defaults
    uint16_t max_packets_udp = 24;
    uint16_t max_packets_other = 32;
    size_t arena_bytes = 32u << 20;  // nDPI's own allocations per worker
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
    Counter meta_pool_full;    // flows whose metadata could not be kept
    Counter ndpi_packets;      // calls to ndpi_detection_process_packet
    Counter ndpi_cycles;       // TSC cycles inside those calls
    Counter giveups;           // flows ended by ndpi_detection_giveup
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

    // The flow's hostname as known now (nDPI's state while classifying, then the side record).
    std::string_view host(const FlowEntry& e) const noexcept;

    // Flow ends while still classifying: give up (with guessing) and keep the results.
    void finish_at_end(FlowEntry& e) noexcept;

    // Flow is freed: return its metadata record.
    void release(FlowEntry& e) noexcept;

    // Per-packet accounting once the flow is classified.
    void count_packet(const FlowEntry& e, uint32_t bytes) noexcept {
        const unsigned p = e.app_proto != 0 ? e.app_proto : e.master_proto;
        counters_.proto_packets[p & (kMaxNdpiProtocols - 1)].inc();
        counters_.proto_bytes[p & (kMaxNdpiProtocols - 1)].add(bytes);
        counters_.category_bytes[e.category].add(bytes);
    }

    const FlowMeta* meta(const FlowEntry& e) const noexcept {
        return e.dpi_state() == DpiState::Done && e.ext != kNoExt ? &meta_[e.ext] : nullptr;
    }

    const ClassifierCounters& counters() const noexcept { return counters_; }
    ndpi_detection_module_struct* module() const noexcept { return ndpi_; }
    uint64_t arena_heap_fallbacks() const noexcept { return arena_.heap_fallbacks(); }
    const NdpiArena& arena() const noexcept { return arena_; }
    uint32_t dpi_in_use() const noexcept { return dpi_capacity_ - dpi_free_top_; }
    uint32_t flow_state_bytes() const noexcept { return slot_size_; }

private:
    ndpi_flow_struct* slot(uint32_t idx) const noexcept {
        return reinterpret_cast<ndpi_flow_struct*>(dpi_mem_ + size_t{idx} * slot_size_);
    }
    // ndpi_validate_url() on the flow's HTTP URL, as ndpiReader does (0 when not HTTP).
    static uint64_t url_risk(const FlowEntry& e, const ndpi_flow_struct* f) noexcept;
    static uint64_t url_risk_bits() noexcept;
    void finish(FlowEntry& e, ndpi_flow_struct* f, bool give_up, uint16_t master, uint16_t app,
                uint16_t category) noexcept;

    ClassifierConfig cfg_{};
    ndpi_detection_module_struct* ndpi_ = nullptr;
    NdpiArena arena_;
    uint8_t* dpi_mem_ = nullptr;
    uint16_t* dpi_packets_ = nullptr;   // packets seen per slot (for the limit)
    uint32_t* dpi_free_ = nullptr;
    uint32_t dpi_free_top_ = 0;
    uint32_t dpi_capacity_ = 0;
    uint32_t slot_size_ = 0;
    FlowMeta* meta_ = nullptr;
    uint32_t meta_free_ = kNoExt;        // free list through FlowMeta::next_free
    ClassifierCounters counters_{};
};

} // namespace l7gate::dp
