// libFuzzer target: the policy loader (YAML and nProbe JSON, format detected by content as
// --policy-format auto does) and, when the text loads, the compiler and the YAML printer
// (--convert-policy). Every problem must come back as a PolicyError, never as an exception
// or a crash.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_policy_common.hpp"

namespace ctl = l7gate::ctl;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 64 * 1024) {
        return 0;
    }
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        ctl::PolicyConfig cfg;
        std::vector<ctl::PolicyError> errors;
        const bool ok = ctl::load_policy_text(text, "fuzz.yaml", ctl::PolicyFormat::Auto, cfg, errors);
        if (ok != errors.empty()) {
            std::abort();  // success and "no errors" must agree
        }
        if (!ok) {
            return 0;
        }
        (void)ctl::policy_to_yaml(cfg);
        l7gate::fuzz::compile_checked(cfg);
    } catch (...) {
        std::abort();  // the loader promises never to throw
    }
    return 0;
}
