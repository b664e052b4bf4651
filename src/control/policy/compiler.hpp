#pragma once
// PolicyConfig -> dp::PolicySnapshot. Runs entirely on the control thread; the result is
// immutable once published to the workers.

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

// Reason ids ("policy/kind/key" -> id) are stable for the life of the process, so per-reason
// counters stay meaningful across reloads. The control thread adds names; the telemetry and
// metrics threads read them, hence the mutex (never taken by workers).
class ReasonRegistry {
public:
    ReasonRegistry();
    uint16_t id(const std::string& reason);
    std::string name(uint16_t id) const;
    size_t size() const;

private:
    mutable std::mutex mutex_;
    std::map<std::string, uint16_t> ids_;
    std::vector<std::string> names_;
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
