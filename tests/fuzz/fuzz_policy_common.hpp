#pragma once
// What the policy fuzz targets share: the nDPI names the compiler resolves against, and the
// compiler's own oracle.

#include <cstdlib>
#include <vector>

#include "control/base/ndpi_names.hpp"
#include "control/policy/compiler.hpp"
#include "control/policy/loader.hpp"

namespace l7gate::fuzz {

// Initialised once per process (never freed: libFuzzer runs the target until it exits).
inline const ctl::NdpiNames& ndpi_names() {
    static ctl::NdpiNames* n = [] {
        auto* p = new ctl::NdpiNames();
        if (!p->init("", "").empty()) {
            std::abort();
        }
        return p;
    }();
    return *n;
}

// Compiles a loaded policy: the compiler must return a snapshot exactly when it reports no
// error; aborts otherwise.
inline void compile_checked(const ctl::PolicyConfig& cfg) {
    ctl::ReasonRegistry reasons;
    ctl::CompileContext ctx{&ndpi_names(), nullptr, &reasons, 1};
    std::vector<ctl::PolicyError> cerrors;
    auto snap = ctl::compile_policy(cfg, ctx, cerrors);
    if ((snap == nullptr) == cerrors.empty()) {
        std::abort();
    }
}

} // namespace l7gate::fuzz
