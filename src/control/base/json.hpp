#pragma once
// Minimal JSON helpers for l7gate's own output (stats, flow log). Strings from packets
// (hostnames, SNI) are attacker-controlled bytes: every byte outside printable ASCII is
// escaped as \u00XX, so each line is valid JSON whatever the traffic holds.

#include <string>
#include <string_view>

namespace l7gate::ctl {

inline void json_escape_to(std::string& out, std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    out += '"';
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c >= 0x7f) {
            out += "\\u00";
            out += kHex[c >> 4];
            out += kHex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    out += '"';
}

inline std::string json_string(std::string_view s) {
    std::string out;
    json_escape_to(out, s);
    return out;
}

} // namespace l7gate::ctl
