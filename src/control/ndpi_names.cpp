#include "control/ndpi_names.hpp"

#include <ndpi_api.h>

namespace l7gate::ctl {

NdpiNames::~NdpiNames() {
    if (mod_ != nullptr) {
        ndpi_exit_detection_module(mod_);
    }
}

std::string NdpiNames::init(const std::string& protos_file, const std::string& categories_file) {
    mod_ = ndpi_init_detection_module(ndpi_no_prefs);
    if (mod_ == nullptr) {
        return "nDPI module for names could not be created";
    }
    NDPI_PROTOCOL_BITMASK all;
    NDPI_BITMASK_SET_ALL(all);
    ndpi_set_protocol_detection_bitmask2(mod_, &all);
    if (!protos_file.empty() && ndpi_load_protocols_file(mod_, protos_file.c_str()) < 0) {
        return "cannot load the nDPI protocols file " + protos_file;
    }
    if (!categories_file.empty() && ndpi_load_categories_file(mod_, categories_file.c_str()) < 0) {
        return "cannot load the nDPI categories file " + categories_file;
    }
    ndpi_finalize_initialization(mod_);
    return {};
}

std::string NdpiNames::protocol(unsigned id) const {
    const char* n = ndpi_get_proto_name(mod_, static_cast<u_int16_t>(id));
    return n != nullptr ? n : std::to_string(id);
}

std::string NdpiNames::category(unsigned id) const {
    const char* n = ndpi_category_get_name(mod_, static_cast<ndpi_protocol_category_t>(id));
    return n != nullptr ? n : std::to_string(id);
}

const char* NdpiNames::risk(unsigned bit) { return ndpi_risk2str(static_cast<ndpi_risk_enum>(bit)); }

} // namespace l7gate::ctl
