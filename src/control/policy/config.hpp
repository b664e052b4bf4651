#pragma once
// PolicyConfig: the policy file as plain, validated data (no compiled tables). The loaders
// (YAML, nProbe JSON) produce it; the compiler turns it into a dp::PolicySnapshot; the
// converter prints it back as YAML.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace l7gate::ctl {

// Where something was written, for error messages (1-based; 0 = unknown).
struct SourcePos {
    std::string file;
    int line = 0;
    int column = 0;
};

// A marker as written: "pass", "drop", "reject", "shape:NAME" or "police:NAME".
struct MarkerSpec {
    std::string text;
    SourcePos pos;
};

// One key -> marker entry of a marker table (protocols, hostnames, ...), in file order.
struct MarkerEntry {
    std::string key;
    MarkerSpec marker;
    SourcePos pos;
};

struct ShaperSpec {
    std::string name;
    uint64_t rate_bps = 0;
    uint64_t burst_bytes = 0;
    uint32_t queue_packets = 0;  // 0: dp::shaper_default_queue(rate, max_delay)
    uint32_t max_delay_us = 100000;
    bool per_host = false;
    SourcePos pos;
};

struct ListSpec {
    std::string name;
    enum class Kind { Hostnames, Ips } kind = Kind::Hostnames;
    std::vector<std::string> items;
    std::vector<SourcePos> item_pos;  // file:line of each item (list files included)
    std::string file;                 // when loaded from a file
    SourcePos pos;
};

struct PoolSpec {
    std::string name;
    std::vector<std::string> ips;     // CIDRs or addresses
    std::vector<std::string> macs;
    std::string policy;
    SourcePos pos;
    std::vector<SourcePos> ip_pos;
    std::vector<SourcePos> mac_pos;
};

struct RiskExceptionSpec {
    std::vector<std::string> risks;
    std::vector<std::string> hostnames;
    std::vector<std::string> ips;
    std::vector<std::string> protocols;
    SourcePos pos;
};

struct PolicySpec {
    std::string name;
    std::string parent;               // "" = a root
    std::optional<bool> enforce;      // unset: inherited (a root: true); false: monitor mode
    std::optional<MarkerSpec> default_marker;
    std::vector<MarkerEntry> risks;
    std::optional<uint32_t> score_at_least;
    std::optional<MarkerSpec> score_marker;
    std::vector<MarkerEntry> protocols;
    std::vector<MarkerEntry> categories;
    std::vector<MarkerEntry> countries;
    std::vector<MarkerEntry> continents;
    std::vector<MarkerEntry> hostnames;
    std::vector<MarkerEntry> ips;
    std::vector<RiskExceptionSpec> risk_exceptions;
    SourcePos pos;
    SourcePos parent_pos;
};

struct PolicyConfig {
    std::string file;                 // absolute or as given
    int version = 1;
    std::string default_policy;
    SourcePos default_policy_pos;
    std::vector<ShaperSpec> shapers;
    std::vector<ListSpec> lists;
    std::vector<PoolSpec> pools;
    std::vector<PolicySpec> policies; // file order
    // hosts: {auto_block: {score, window, block_for}}
    bool auto_block = false;
    uint32_t auto_block_score = 0;
    uint64_t auto_block_window_us = 60000000;
    uint64_t auto_block_for_us = 600000000;
};

// One problem found while loading or compiling: "FILE:LINE:COLUMN: message".
struct PolicyError {
    SourcePos pos;
    std::string message;
    std::string str() const;
};

} // namespace l7gate::ctl
