#pragma once
// PolicySnapshot: an immutable, compiled policy. The control thread builds it from the YAML
// (src/control/policy/compiler.cpp); workers only read it, once per flow state change (flow
// created, protocol or risks changed, policy reloaded), never per packet: the verdict is
// cached in the flow entry.
//
// Semantics (README "Policy semantics"):
// 1. The local host is the endpoint that matches a pool (client checked first, then server;
//    MAC exact match before IP; longest IP prefix across pools). No pool: default policy.
// 2. Risk and score markers of every policy on the chain leaf..root apply; the strictest
//    wins (drop > shape > pass).
// 3. Other markers: the first policy from the leaf up with a matching marker decides; inside
//    one policy: hostnames, ips, protocols (app id, then master id), categories, countries,
//    continents. Nothing matched: the leaf's default (inherited).
// 4. The verdict is the stricter of 2 and 3.
// 5. Before the application protocol is known, markers that depend on it (hostnames,
//    protocols, categories) cannot match; a marker (or the default) that they could still
//    override is pending. Meanwhile the flow takes the least strict verdict still reachable
//    (that marker or the default, or any L7 marker that precedes it): when every reachable
//    verdict is at least as strict as drop it is dropped from its first packet (likewise
//    reject, police and shape); when one of them passes, it passes as `pending`.
//
// Every policy's chain is flattened at compile time: each marker table of a leaf holds the
// entries of all its ancestors tagged with their level, so evaluation is one lookup per
// marker kind whatever the depth.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/flow_table.hpp"
#include "dataplane/host_table.hpp"
#include "dataplane/prefix_table.hpp"

struct hs_database;
struct hs_scratch;

namespace l7gate::dp {

inline constexpr unsigned kMaxReasons = 4096;   // reason ids per process (stable across reloads)
inline constexpr uint16_t kReasonOther = kMaxReasons - 1;
static_assert(kMaxReasons <= cached::kUnenforced, "reason ids leave FlowEntry::reason's monitor bit free");
inline constexpr unsigned kMaxShapers = cached::kMaxShapers;  // the cached action byte's limit
inline constexpr unsigned kMaxWorkers = 128;

// What a marker does.
struct Marker {
    Action action = Action::Pass;
    uint8_t shaper = 0;     // for Action::Shape and Action::Police
    uint16_t reason = 0;    // reason id ("policy/kind/key")
};

// Kinds of first-match markers, in their precedence order inside one policy.
enum class MarkerKind : uint8_t { Hostnames, Ips, Protocols, Categories, Countries, Continents, Count };

// A rule position: level on the chain (0 = leaf) and kind. Lower sorts first.
inline constexpr uint32_t rule_pos(unsigned level, MarkerKind k) noexcept {
    return level * 8u + static_cast<uint32_t>(k);
}
inline constexpr uint32_t kNoPos = UINT32_MAX;

struct ShaperProfile {
    std::string name;
    // PolicySnapshot::shapers is indexed by the shaper's slot, stable per name for the life of
    // the process (ctl::ShaperSlots), so counters, queues and buckets follow the name across
    // reloads. A slot whose name this policy does not define is a hole: named, not defined;
    // its packets leave unshaped.
    bool defined = true;
    uint64_t rate_bps = 0;     // bits per second
    uint64_t burst_bytes = 0;
    uint32_t queue_packets = 512;
    uint32_t max_delay_us = 100000;
    bool per_host = false;
    // Derived by the compiler (shaper_derive()): workers take tokens from the shared bucket in
    // chunks of chunk_bytes, worth chunk_ns of the rate; tau_ns is the burst's worth.
    uint32_t chunk_bytes = 0;
    uint64_t chunk_ns = 0;
    uint64_t tau_ns = 0;
};

// Fills the derived fields of `p` from its rate and burst.
void shaper_derive(ShaperProfile& p) noexcept;

// A shaper's queue when the policy gives none: ceil(rate x max_delay / (8 x 1500)), the
// full-size frames the rate sends within max_delay, at least kShaperMinQueue, at most
// kShaperMaxQueue (the largest `queue` a policy may give).
inline constexpr uint32_t kShaperFrameBytes = 1500;
inline constexpr uint32_t kShaperMinQueue = 8;
inline constexpr uint32_t kShaperMaxQueue = 65536;
uint32_t shaper_default_queue(uint64_t rate_bps, uint32_t max_delay_us) noexcept;

// Risk exceptions: listed risks are ignored for flows matching the entry (every criterion it
// lists must match; inside one criterion any item may).
struct RiskException {
    uint64_t risks = 0;
    HostTable hosts;                 // empty: no hostname criterion
    bool has_hosts = false;
    PrefixTable4 ips4;
    PrefixTable6 ips6;
    bool has_ips = false;
    std::vector<uint16_t> protocols; // empty: no protocol criterion
};

// One policy, flattened over its chain.
struct CompiledPolicy {
    std::string name;
    uint16_t depth = 0;              // chain length
    bool enforce = true;             // false: monitor mode (`enforce: false` on the chain, or --mode monitor)
    Marker default_marker;
    // First-match tables; values are marker indexes, level in the priority / packed word.
    HostTable hosts;                 // priority = (255 - level) << 16 | specificity
    PrefixTable4 ips4;               // priority = (255 - level) << 8 | prefix length
    PrefixTable6 ips6;
    std::vector<uint32_t> protocols; // [nDPI id] = level << 24 | marker (kNoPos: none)
    std::vector<uint32_t> categories;
    std::vector<uint32_t> countries; // [snapshot country index]
    std::vector<uint32_t> continents;// [continent index]
    struct Regex {
        uint32_t pattern;            // index in the snapshot's Hyperscan database
        uint32_t priority;           // as hosts, specificity 0
        uint32_t marker;
    };
    std::vector<Regex> regexes;
    uint32_t first_l7_pos = kNoPos;  // earliest rule position of an L7-dependent marker
    // l7_floor[i]: the least strict L7-dependent marker (hostnames, protocols, categories)
    // whose rule position is below i (the earliest on a tie), or kNoPos; depth * 8 + 1
    // entries, the last standing for kNoPos (the default). What nDPI could still turn a
    // pending verdict into, as one lookup.
    std::vector<uint32_t> l7_floor;
    // Risk markers, strictest over the chain.
    uint32_t risk_marker[64];        // marker index or kNoPos
    uint32_t any_risk_marker = kNoPos;
    struct ScoreRule {
        uint32_t at_least;
        uint32_t marker;
    };
    std::vector<ScoreRule> score_rules;
    std::vector<const RiskException*> exceptions;  // owned by the snapshot
};

// Everything evaluation needs to know about a flow.
struct FlowFacts {
    uint8_t ip_version = 4;
    const uint8_t* client_ip = nullptr;   // 4 or 16 bytes
    const uint8_t* server_ip = nullptr;
    const uint8_t* client_mac = nullptr;  // 6 bytes, may be null
    const uint8_t* server_mac = nullptr;
    bool l7_known = false;                // application protocol known (or classification over)
    uint16_t master_proto = 0;
    uint16_t app_proto = 0;
    uint8_t category = 0;
    std::string_view host;                // lowercase; empty when none
    uint64_t risk = 0;
};

struct Verdict {
    Action action = Action::Pass;
    uint8_t shaper = 0;
    uint16_t reason = 0;
    bool pending = false;        // L7 markers could still change it (action: the least strict
                                 // verdict they could give; pass: reason `pending`)
    uint16_t policy = 0;         // leaf policy index
    uint64_t excepted_risks = 0; // risks ignored because of an exception
    uint16_t risk_score = 0;     // score of the risks that count
    bool local_is_server = false; // the endpoint a pool matched (per-host shapers' key)
    bool enforced = true;        // the leaf policy enforces (false: monitor mode, recorded only)
};

class PolicySnapshot {
public:
    PolicySnapshot() = default;
    PolicySnapshot(const PolicySnapshot&) = delete;
    PolicySnapshot& operator=(const PolicySnapshot&) = delete;
    ~PolicySnapshot();

    // worker: index of the calling worker (its Hyperscan scratch).
    Verdict evaluate(const FlowFacts& f, unsigned worker) const noexcept;

    // Which policy applies and which endpoint is local (true: the server).
    uint16_t pool_policy(const FlowFacts& f, bool& local_is_server) const noexcept;

    // The risks of f that an exception of its policy covers: evaluate()'s excepted_risks
    // without the rest of the verdict (a flow record asks it when the flow ends).
    uint64_t excepted_risks(const FlowFacts& f) const noexcept;

    uint64_t generation = 0;
    std::string source;                          // file it was compiled from
    std::vector<CompiledPolicy> policies;
    std::vector<Marker> markers;
    std::vector<ShaperProfile> shapers;
    std::vector<RiskException> risk_exceptions_storage;
    uint16_t default_policy = 0;
    uint16_t pending_reason = 0;                 // reason id "pending" (L7 not yet known)
    uint16_t unnamed_reason = 0;                 // reason id "first_flight/unnamed" (--on-unnamed-first-flight drop)
    bool any_monitor = false;                    // some policy does not enforce (CompiledPolicy::enforce)
    bool any_exceptions = false;                 // some policy has risk exceptions
    // Pools.
    PrefixTable4 pool_ips4;                      // value: policy index
    PrefixTable6 pool_ips6;
    struct MacEntry {
        uint64_t mac = 0;                        // 48 bits; UINT64_MAX = empty slot
        uint16_t policy = 0;
    };
    std::vector<MacEntry> pool_macs;             // open addressing, power-of-two size
    std::vector<std::string> pool_names;
    // GeoIP: peer address -> country index; continent of each country.
    PrefixTable4 geo4;
    PrefixTable6 geo6;
    std::vector<std::string> countries;          // ISO codes named by the policy
    std::vector<uint8_t> country_continent;      // continent index per country
    // Regex hostnames.
    hs_database* regex_db = nullptr;
    std::vector<hs_scratch*> regex_scratch;      // one per worker
    size_t regex_count = 0;
    // hosts.auto_block (applied by the control thread's HostScores).
    bool auto_block = false;
    uint32_t auto_block_score = 0;
    uint64_t auto_block_window_ns = 0;
    uint64_t auto_block_for_ns = 0;

    static constexpr const char* kContinents[7] = {"AF", "AN", "AS", "EU", "NA", "OC", "SA"};

    // The monitor bit (cached::kUnenforced) for verdicts that are not the policy's own (a
    // blocked host, an unnamed first flight): that of the policy the flow's local host maps to.
    uint16_t unenforced_bit(const FlowFacts& f) const noexcept {
        bool lis = false;
        return any_monitor && !policies[pool_policy(f, lis)].enforce ? cached::kUnenforced : 0;
    }

private:
    void apply_first_match(const CompiledPolicy& p, const FlowFacts& f, const uint8_t* peer,
                           unsigned worker, uint32_t& best_pos, uint32_t& best_marker) const noexcept;
    uint64_t excepted(const CompiledPolicy& p, const FlowFacts& f, const uint8_t* peer) const noexcept;
};

// Strictness order used to combine markers: reject > drop > shape > pass (a reject is a drop
// that also tells the endpoints).
inline int strictness(Action a) noexcept {
    return a == Action::Reject ? 4 : a == Action::Drop ? 3 : a == Action::Police ? 2 : a == Action::Shape ? 1 : 0;
}

} // namespace l7gate::dp
