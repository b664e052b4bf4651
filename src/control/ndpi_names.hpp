#pragma once
// The control thread's own nDPI module, used only to turn ids into names (protocols,
// categories) for the flow log, stats and metrics. Workers' modules are never touched from
// the control thread.

#include <string>

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

private:
    ndpi_detection_module_struct* mod_ = nullptr;
};

} // namespace l7gate::ctl
