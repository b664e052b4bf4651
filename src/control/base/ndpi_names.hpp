#pragma once
// The control thread's own nDPI module, used only to turn ids into names (protocols,
// categories) for the flow log, stats and metrics. Workers' modules are never touched from
// the control thread.

#include <string>
#include <vector>

struct ndpi_detection_module_struct;

namespace l7gate::ctl {

class NdpiNames {
public:
    NdpiNames() = default;
    NdpiNames(const NdpiNames&) = delete;
    NdpiNames& operator=(const NdpiNames&) = delete;
    ~NdpiNames();

    // Loads the same custom protocols/categories as the workers. Returns "" or an error.
    std::string init(const std::string& protos_file, const std::string& categories_file);
    ndpi_detection_module_struct* module() const { return mod_; }

    std::string protocol(unsigned id) const;       // e.g. "TLS"
    std::string category(unsigned id) const;       // e.g. "Web"
    static const char* risk(unsigned bit);         // nDPI's risk text
    // Policy keys for risks: nDPI 4.2's ndpi_risk_enum names in snake_case without the NDPI_
    // prefix (url_possible_xss, ...); index = risk bit.
    static const std::vector<std::string>& risk_keys();
    // Protocol id by name (any case) or decimal id; -1 when unknown.
    int protocol_id(const std::string& name) const;
    std::vector<std::string> protocol_names() const;
    int category_id(const std::string& name) const;
    std::vector<std::string> category_names() const;
    unsigned protocol_count() const;

private:
    ndpi_detection_module_struct* mod_ = nullptr;
};

} // namespace l7gate::ctl
