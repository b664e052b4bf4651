#pragma once
// Policy texts and edits shared by test_policy.cpp and test_policy_nprobe.cpp.

#include <cstddef>
#include <random>
#include <string>

namespace l7gate::test {

// nProbe IPS's documented example (one JSON object a line), unchanged.
inline const std::string kNprobeExample =
    R"NP({ "pool": { "id":1, "name": "my pool 1", "ip":  [ "192.168.0.1/24", "10.0.0.0/8", "2a03:b0c0:2:d0::360:4001/48"], "mac": [] }, "policy": { "id":1 }}
{ "pool": { "id":2, "name": "my pool 2", "mac": ["e8:06:88:ff:fe:e4", "02:81:27:b5:f9:f3", "00:01:01:e4:ba:2c"],  "ip":  ["172.16.0.0/16"] }, "policy": { "id":2 }}
{ "pool": { "id":3, "name": "my pool 3", "ip":  [ "131.114.0.0/16" ], "mac": [] }, "policy": { "id": 3 }}
{ "policy": { "id": 0, "name": "root rule", "default_marker": "pass", "flow_risk": { "risks": [ 12 ], "marker": "drop" }, "markers": { "categories": { "Video": "drop" }, "protocols": { "TLS": "pass" }}}}
{ "policy": { "id": 1, "root": 0, "name": "my rule 1", "default_marker": "pass", "markers": { "protocols": { "HTTP": "pass" }, "countries": { "IT": "pass", "CN": "drop" }, "continents" : { "Asia" : "drop"}}}}
{ "policy": { "id": 3, "root": 0, "name": "my rule 3", "default_marker": "pass", "markers": { "protocols": { "HTTP": "drop" }}}}
{ "policy": { "id": 2, "root":1, "name": "my subrule 2 (son of rule 1)", "default_marker": "drop", "markers": { "protocols": { "53": "pass" }}, "hostnames": { "fundingchoicesmessages.google.com": "pass", "www.gstatic.com": "drop", "www.youtube.com": "pass" }}}
)NP";

// text after 1 to 4 random edits, each inserting, erasing or replacing one character (a
// character of alphabet) at a random place: the mutation the "never crashes" tests apply.
inline std::string mutated(std::string text, std::mt19937& rng, const std::string& alphabet) {
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
        const size_t at = rng() % (text.size() + 1);
        const char ch = alphabet[rng() % alphabet.size()];
        switch (rng() % 3) {
        case 0:
            text.insert(at, 1, ch);
            break;
        case 1:
            if (at < text.size()) {
                text.erase(at, 1);
            }
            break;
        default:
            if (at < text.size()) {
                text[at] = ch;
            }
            break;
        }
    }
    return text;
}

} // namespace l7gate::test
