// Prints the man page l7gate(8) on stdout; meson runs it at build time (see meson.build).
#include <cstdio>

#include "control/ops/options.hpp"

int main() {
    std::fputs(l7gate::ctl::man_page().c_str(), stdout);
    return 0;
}
