#include "control/base/ndpi_names.hpp"

#include <cctype>
#include <cstring>

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

const std::vector<std::string>& NdpiNames::risk_keys() {
    // ndpi_risk_enum of nDPI 4.2 in order (test_policy checks the count against NDPI_MAX_RISK).
    static const std::vector<std::string> keys = {
    "no_risk",
    "url_possible_xss",
    "url_possible_sql_injection",
    "url_possible_rce_injection",
    "binary_application_transfer",
    "known_protocol_on_non_standard_port",
    "tls_selfsigned_certificate",
    "tls_obsolete_version",
    "tls_weak_cipher",
    "tls_certificate_expired",
    "tls_certificate_mismatch",
    "http_suspicious_user_agent",
    "http_numeric_ip_host",
    "http_suspicious_url",
    "http_suspicious_header",
    "tls_not_carrying_https",
    "suspicious_dga_domain",
    "malformed_packet",
    "ssh_obsolete_client_version_or_cipher",
    "ssh_obsolete_server_version_or_cipher",
    "smb_insecure_version",
    "tls_suspicious_esni_usage",
    "unsafe_protocol",
    "dns_suspicious_traffic",
    "tls_missing_sni",
    "http_suspicious_content",
    "risky_asn",
    "risky_domain",
    "malicious_ja3",
    "malicious_sha1_certificate",
    "desktop_or_file_sharing_session",
    "tls_uncommon_alpn",
    "tls_cert_validity_too_long",
    "tls_suspicious_extension",
    "tls_fatal_alert",
    "suspicious_entropy",
    "clear_text_credentials",
    "dns_large_packet",
    "dns_fragmented",
    "invalid_characters",
    "possible_exploit",
    "tls_certificate_about_to_expire",    };
    return keys;
}

namespace {
bool iequal(const char* a, const std::string& b) {
    if (a == nullptr || std::strlen(a) != b.size()) {
        return false;
    }
    for (size_t i = 0; i < b.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
            return false;
        }
    }
    return true;
}
bool all_digits(const std::string& s) {
    return !s.empty() && s.size() < 6 && s.find_first_not_of("0123456789") == std::string::npos;
}
} // namespace

unsigned NdpiNames::protocol_count() const { return ndpi_get_num_supported_protocols(mod_); }

int NdpiNames::protocol_id(const std::string& name) const {
    const unsigned n = protocol_count();
    if (all_digits(name)) {
        const unsigned long v = std::stoul(name);
        return v < n ? static_cast<int>(v) : -1;
    }
    for (unsigned i = 0; i < n; ++i) {
        if (iequal(ndpi_get_proto_name(mod_, static_cast<u_int16_t>(i)), name)) {
            return static_cast<int>(i);
        }
    }
    return -1;
}

std::vector<std::string> NdpiNames::protocol_names() const {
    std::vector<std::string> v;
    for (unsigned i = 0; i < protocol_count(); ++i) {
        if (const char* n = ndpi_get_proto_name(mod_, static_cast<u_int16_t>(i)); n != nullptr) {
            v.emplace_back(n);
        }
    }
    return v;
}

int NdpiNames::category_id(const std::string& name) const {
    if (all_digits(name)) {
        const unsigned long v = std::stoul(name);
        return v < NDPI_PROTOCOL_NUM_CATEGORIES ? static_cast<int>(v) : -1;
    }
    for (unsigned i = 0; i < NDPI_PROTOCOL_NUM_CATEGORIES; ++i) {
        const char* n = ndpi_category_get_name(mod_, static_cast<ndpi_protocol_category_t>(i));
        if (n != nullptr && n[0] != '\0' && iequal(n, name)) {
            return static_cast<int>(i);
        }
    }
    return -1;
}

std::vector<std::string> NdpiNames::category_names() const {
    std::vector<std::string> v;
    for (unsigned i = 0; i < NDPI_PROTOCOL_NUM_CATEGORIES; ++i) {
        const char* n = ndpi_category_get_name(mod_, static_cast<ndpi_protocol_category_t>(i));
        if (n != nullptr && n[0] != '\0') {
            v.emplace_back(n);
        }
    }
    return v;
}

const char* NdpiNames::risk(unsigned bit) { return ndpi_risk2str(static_cast<ndpi_risk_enum>(bit)); }

} // namespace l7gate::ctl
