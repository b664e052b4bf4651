// libFuzzer target: the list-file reader (`lists: {NAME: {file: PATH}}`, one entry a line, #
// comments, kind inferred) and the compilation of what it read into the hostname and
// address tables. The input is written to a file that a fixed policy uses three times: kind
// inferred, forced hostnames, forced ips.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_policy_common.hpp"

namespace ctl = l7gate::ctl;

namespace {
const std::string& list_path() {
    static const std::string p = "/tmp/l7gate-fuzz-list-" + std::to_string(getpid()) + ".txt";
    return p;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 256 * 1024) {
        return 0;
    }
    FILE* f = std::fopen(list_path().c_str(), "wb");
    if (f == nullptr) {
        std::abort();
    }
    if (size != 0 && std::fwrite(data, 1, size, f) != size) {
        std::abort();
    }
    std::fclose(f);
    const std::string& p = list_path();
    const std::string policy =
        "version: 1\n"
        "default_policy: p\n"
        "lists:\n"
        "  any: {file: \"" + p + "\"}\n"
        "  hn: {file: \"" + p + "\", kind: hostnames}\n"
        "  ip: {file: \"" + p + "\", kind: ips}\n"
        "policies:\n"
        "  p: {default: pass, hostnames: {\"@hn\": drop}, ips: {\"@ip\": drop}}\n"
        "  q: {parent: p, hostnames: {\"@any\": drop}}\n";
    try {
        ctl::PolicyConfig cfg;
        std::vector<ctl::PolicyError> errors;
        if (!ctl::load_policy_text(policy, "/tmp/fuzz-lists.yaml", ctl::PolicyFormat::Yaml, cfg, errors)) {
            return 0;
        }
        l7gate::fuzz::compile_checked(cfg);
    } catch (...) {
        std::abort();
    }
    return 0;
}
