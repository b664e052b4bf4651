// first_message(): when a first flight's TLS record or HTTP header block is complete.
#include <gtest/gtest.h>

#include <string>

#include "dataplane/first_flight.hpp"

namespace {

using l7gate::dp::first_message;
using l7gate::dp::FirstMessage;

FirstMessage fm(const std::string& s) {
    uint32_t scan = 0;
    return first_message(reinterpret_cast<const uint8_t*>(s.data()), static_cast<uint32_t>(s.size()), scan);
}

// Feeds `s` one byte more at a time, as a reassembly does; the state after the whole of it.
FirstMessage grow(const std::string& s) {
    uint32_t scan = 0;
    FirstMessage r = FirstMessage::NeedMore;
    for (size_t n = 1; n <= s.size(); ++n) {
        r = first_message(reinterpret_cast<const uint8_t*>(s.data()), static_cast<uint32_t>(n), scan);
        if (r != FirstMessage::NeedMore) {
            EXPECT_EQ(n, s.size()) << "decided early on " << s.substr(0, n);
            return r;
        }
    }
    return r;
}

TEST(FirstMessage, TlsRecordCompleteAtItsLength) {
    std::string rec("\x16\x03\x01\x00\x04" "abcd", 9);
    EXPECT_EQ(fm(rec.substr(0, 1)), FirstMessage::NeedMore);
    EXPECT_EQ(fm(rec.substr(0, 5)), FirstMessage::NeedMore);
    EXPECT_EQ(fm(rec.substr(0, 8)), FirstMessage::NeedMore);
    EXPECT_EQ(fm(rec), FirstMessage::Complete);
    EXPECT_EQ(grow(rec), FirstMessage::Complete);
    EXPECT_EQ(fm(std::string("\x16\x01", 2)), FirstMessage::Other);
}

TEST(FirstMessage, HttpCompleteAtTheEmptyLine) {
    const std::string req = "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n";
    EXPECT_EQ(fm("G"), FirstMessage::NeedMore);
    EXPECT_EQ(fm("GE"), FirstMessage::NeedMore);
    EXPECT_EQ(fm(req.substr(0, req.size() - 1)), FirstMessage::NeedMore);
    EXPECT_EQ(fm(req), FirstMessage::Complete);
    EXPECT_EQ(grow(req), FirstMessage::Complete);
    EXPECT_EQ(grow("POST /x HTTP/1.0\n\n"), FirstMessage::Complete);
}

TEST(FirstMessage, OtherProtocolsAreNotHeld) {
    EXPECT_EQ(fm("SSH-2.0-OpenSSH_9.2\r\n"), FirstMessage::Other);
    EXPECT_EQ(fm("GETX / HTTP/1.1"), FirstMessage::Other);
    EXPECT_EQ(fm("\x17\x03\x03"), FirstMessage::Other);
    EXPECT_EQ(fm("get / HTTP/1.1"), FirstMessage::Other);
}

} // namespace
