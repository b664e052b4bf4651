#pragma once
// PolicyConfig -> dp::PolicySnapshot. Runs entirely on the control thread; the result is
// immutable once published to the workers.

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "control/policy_config.hpp"
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

struct CompileContext {
    const NdpiNames* names = nullptr;   // required: protocol, category and risk names
    const GeoIpDb* geoip = nullptr;     // optional: countries and continents need it
    ReasonRegistry* reasons = nullptr;  // required
    unsigned workers = 1;               // Hyperscan scratch spaces to prepare
    uint64_t generation = 1;
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
