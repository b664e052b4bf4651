#pragma once
// Flow log: drains the workers' finished-flow rings on the control thread and writes one
// JSON object per line per flow. Names (protocols, categories, risks) come from an nDPI
// module owned by the control thread, never from a worker's.

#include <cstdio>
#include <string>
#include <vector>

#include <atomic>

#include "dataplane/flow_record.hpp"
#include "dataplane/policy_snapshot.hpp"

struct rte_ring;
struct ndpi_detection_module_struct;

namespace l7gate::ctl {

class ReasonRegistry;

// "pass", "drop", "reject", "shape:NAME" or "police:NAME" for a cached verdict (shaper names
// from `policy`, their index when it is null or no longer has it).
std::string verdict_name(uint8_t verdict, const dp::PolicySnapshot* policy);

// Formats one record as a JSON line (with the trailing newline). reasons/policy may be null.
std::string format_flow_record(const dp::FlowRecord& r, ndpi_detection_module_struct* names,
                               const ReasonRegistry* reasons, const dp::PolicySnapshot* policy);

class FlowLog {
public:
    FlowLog() = default;
    FlowLog(const FlowLog&) = delete;
    FlowLog& operator=(const FlowLog&) = delete;
    ~FlowLog();

    // Opens the output ("-" = stdout). Returns "" or an error.
    std::string open(const std::string& path, ndpi_detection_module_struct* names);
    void add_ring(rte_ring* r) { rings_.push_back(r); }
    const std::vector<rte_ring*>& rings() const { return rings_; }
    // Verdict names: reason ids and the current snapshot's shapers.
    void set_names(const ReasonRegistry* reasons, const std::atomic<const dp::PolicySnapshot*>* policy) {
        reasons_ = reasons;
        policy_ = policy;
    }

    // Writes one pre-formatted line (events such as host blocks); no-op when closed.
    void write_line(const std::string& line);

    // Writes every queued record; returns how many.
    size_t drain();
    uint64_t written() const { return written_; }
    void close();

private:
    FILE* out_ = nullptr;
    bool own_ = false;
    ndpi_detection_module_struct* names_ = nullptr;
    std::vector<rte_ring*> rings_;
    const ReasonRegistry* reasons_ = nullptr;
    const std::atomic<const dp::PolicySnapshot*>* policy_ = nullptr;
    uint64_t written_ = 0;
};

} // namespace l7gate::ctl
