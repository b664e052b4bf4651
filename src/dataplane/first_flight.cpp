#include "dataplane/first_flight.hpp"

#include <cstring>
#include <new>

#include "dataplane/memory.hpp"

namespace l7gate::dp {

namespace {

constexpr std::string_view kMethods[] = {"GET ",    "POST ",    "HEAD ",  "PUT ",     "DELETE ", "OPTIONS ",
                                         "CONNECT ", "PATCH ", "TRACE ", "PROPFIND ", "REPORT "};

} // namespace

FirstMessage first_message(const uint8_t* d, uint32_t len, uint32_t& scan) noexcept {
    if (len == 0) {
        return FirstMessage::NeedMore;
    }
    if (d[0] == 0x16) {
        // TLS handshake record: 0x16, version 0x03 0x0X, 16-bit length.
        if (len >= 2 && d[1] != 0x03) {
            return FirstMessage::Other;
        }
        if (len < 5) {
            return FirstMessage::NeedMore;
        }
        const uint32_t rec = 5u + (uint32_t{d[3]} << 8 | d[4]);
        return len >= rec ? FirstMessage::Complete : FirstMessage::NeedMore;
    }
    if (scan == 0) {
        // Not yet known to be HTTP: one of the methods, or a prefix of one.
        bool prefix = false;
        bool method = false;
        for (const std::string_view m : kMethods) {
            const size_t n = len < m.size() ? len : m.size();
            if (std::memcmp(d, m.data(), n) == 0) {
                (n == m.size() ? method : prefix) = true;
            }
        }
        if (!method) {
            return prefix ? FirstMessage::NeedMore : FirstMessage::Other;
        }
        scan = 1;
    }
    // The end of the header block: an empty line (CRLF CRLF, or LF LF as lenient servers take).
    uint32_t i = scan > 3 ? scan - 3 : 0;
    for (; i + 1 < len; ++i) {
        if (d[i] == '\n' && (d[i + 1] == '\n' || (i + 2 < len && d[i + 1] == '\r' && d[i + 2] == '\n'))) {
            return FirstMessage::Complete;
        }
    }
    scan = len > 1 ? len : 1;
    return FirstMessage::NeedMore;
}

FirstFlightPool::~FirstFlightPool() {
    table_free(slots_);
    table_free(data_);
    table_free(scratch_);
    table_free(free_);
}

bool FirstFlightPool::init(const FirstFlightConfig& cfg, int socket) noexcept {
    cfg_ = cfg;
    if (cfg.bytes == 0) {
        return true;
    }
    if (cfg_.bytes > kFirstFlightMaxBytes) {
        cfg_.bytes = kFirstFlightMaxBytes;
    }
    if (cfg_.slots == 0) {
        cfg_.slots = 1;
    }
    slots_ = static_cast<FirstFlightSlot*>(table_alloc(sizeof(FirstFlightSlot) * cfg_.slots, socket));
    data_ = static_cast<uint8_t*>(table_alloc(size_t{cfg_.bytes} * cfg_.slots, socket));
    scratch_ = static_cast<uint8_t*>(table_alloc(kScratchHeaders + cfg_.bytes, socket));
    free_ = static_cast<uint32_t*>(table_alloc(sizeof(uint32_t) * cfg_.slots, socket));
    if (slots_ == nullptr || data_ == nullptr || scratch_ == nullptr || free_ == nullptr) {
        return false;
    }
    for (uint32_t i = 0; i < cfg_.slots; ++i) {
        new (&slots_[i]) FirstFlightSlot();
        free_[i] = cfg_.slots - 1 - i;
    }
    free_top_ = cfg_.slots;
    return true;
}

} // namespace l7gate::dp
