#pragma once
// PolicyConfig -> dp::PolicySnapshot. Runs entirely on the control thread; the result is
// immutable once published to the workers.

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "control/policy/config.hpp"
#include "dataplane/policy_snapshot.hpp"

namespace l7gate::ctl {

class NdpiNames;
class GeoIpDb;

// Reason ids ("policy/kind/key" -> id, at most dp::kReasonOther - 1 names at a time; beyond,
// a new name gets dp::kReasonOther, "other"). An id stays its name's as long as anything may
// hold it: the policy snapshots (tagged with the last generation that uses each id), the
// workers' flows and the flow records in flight. ReasonReclaimer (reason_reclaim.hpp) proves
// that nothing does any more and release()s the id, which a later new name reuses; its
// per-reason counters then start from the baseline captured at release (baseline()). Ids
// taken outside a policy compile (generation kPinned: "none", "hosts/auto_block", tests) are
// never released. The control thread adds and releases names; the telemetry and metrics
// threads read them, hence the mutex (never taken by workers).
class ReasonRegistry {
public:
    static constexpr uint64_t kPinned = UINT64_MAX;

    struct Candidate {
        uint16_t id;
        uint64_t tag;  // its last generation when it was found unused
    };

    ReasonRegistry();
    // The name's id (a new or reused one for a new name), tagged as used by the snapshot of
    // `generation` (kPinned: for good).
    uint16_t id(const std::string& reason, uint64_t generation = kPinned);
    std::string name(uint16_t id) const;
    // Names in use.
    size_t size() const;
    // Ids released since start.
    uint64_t reclaimed() const;
    // Ids in use whose last generation is below `oldest_live`: no live snapshot uses them.
    std::vector<Candidate> candidates(uint64_t oldest_live) const;
    // Frees c.id unless a compile used it again since candidates() (its tag moved); flows and
    // packets are the id's counters now, subtracted from them from now on. true: released.
    bool release(const Candidate& c, uint64_t flows, uint64_t packets);
    // What to subtract from the id's cumulative counters (what its previous names counted).
    void baseline(uint16_t id, uint64_t& flows, uint64_t& packets) const;

private:
    mutable std::mutex mutex_;
    std::map<std::string, uint16_t> ids_;
    std::vector<std::string> names_;    // by id; empty: free
    std::vector<uint64_t> tags_;        // by id: last generation that uses it (kPinned)
    std::vector<uint64_t> base_flows_;  // by id
    std::vector<uint64_t> base_packets_;
    std::deque<uint16_t> free_;         // released ids, reused oldest first
    uint64_t reclaimed_ = 0;
};

// Shaper slots (name -> index into PolicySnapshot::shapers, the cached verdict and the
// per-shaper counters, queues and buckets) are stable for the life of the process, so
// reordering or removing shapers in a reload relabels nothing. At most dp::kMaxShapers names
// since start. Control thread only (the compiler).
class ShaperSlots {
public:
    // The name's slot, a new one for a new name; -1 when every slot is taken.
    int slot(const std::string& name);
    size_t size() const { return names_.size(); }
    const std::string& name(size_t slot) const { return names_[slot]; }

private:
    std::map<std::string, uint8_t> slots_;
    std::vector<std::string> names_;
};

struct CompileContext {
    const NdpiNames* names = nullptr;   // required: protocol, category and risk names
    const GeoIpDb* geoip = nullptr;     // optional: countries and continents need it
    ReasonRegistry* reasons = nullptr;  // required
    unsigned workers = 1;               // Hyperscan scratch spaces to prepare
    uint64_t generation = 1;
    // Stable shaper slots across reloads; null: slots in file order for this compile only.
    ShaperSlots* shaper_slots = nullptr;
    // --mode monitor: no policy enforces, whatever its `enforce` says (README "Monitor mode").
    bool monitor = false;
};

// Returns the snapshot, or nullptr with every problem in `errors`.
std::unique_ptr<dp::PolicySnapshot> compile_policy(const PolicyConfig& cfg, CompileContext& ctx,
                                                   std::vector<PolicyError>& errors);

// Loads and compiles a policy file (format "auto", "yaml" or "nprobe").
std::unique_ptr<dp::PolicySnapshot> compile_policy_file(const std::string& path, const std::string& format,
                                                        CompileContext& ctx, std::vector<PolicyError>& errors);

// Address helpers (also used by tests): "198.18.0.0/15", "2001:db8::1", ...
bool parse_cidr(const std::string& s, uint8_t& version, uint8_t addr[16], uint8_t& len);
bool parse_mac(const std::string& s, uint64_t& mac);

} // namespace l7gate::ctl
