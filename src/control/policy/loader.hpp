#pragma once
// Loading a policy file into a PolicyConfig: the YAML format (README "Policy file") and
// nProbe IPS's JSON format (one JSON object per line, # comments), detected by content.

#include <string>
#include <vector>

#include "control/policy/config.hpp"

namespace l7gate::ctl {

enum class PolicyFormat { Auto, Yaml, Nprobe };

// Parses `path`. Never throws: every problem becomes a PolicyError (FILE:LINE:COLUMN).
// Returns true when there were no errors.
bool load_policy_file(const std::string& path, PolicyFormat format, PolicyConfig& out,
                      std::vector<PolicyError>& errors);

// The same from a string (tests, fuzzers); `name` is used in positions.
bool load_policy_text(const std::string& text, const std::string& name, PolicyFormat format,
                      PolicyConfig& out, std::vector<PolicyError>& errors);

// nProbe IPS's JSON lines (policy_nprobe.cpp); used by load_policy_text.
bool load_nprobe_text(const std::string& text, const std::string& name, PolicyConfig& out,
                      std::vector<PolicyError>& errors);

// Prints a PolicyConfig as YAML in l7gate's format (--convert-policy).
std::string policy_to_yaml(const PolicyConfig& cfg);

// Parsers shared with the compiler and tests.
bool parse_rate_bps(const std::string& s, uint64_t& out);     // "20mbit", "5m", "100kbit", "1g"
bool parse_size_bytes(const std::string& s, uint64_t& out);   // "256kb", "1mb", "1500", "64k"
bool parse_duration_us(const std::string& s, uint64_t& out);  // "100ms", "2s", "500us", "10m"

// Closest candidate by edit distance ("" when nothing is close).
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

} // namespace l7gate::ctl
