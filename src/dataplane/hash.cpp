#include "dataplane/hash.hpp"

#include <cerrno>

#include <sys/random.h>

namespace l7gate::dp {

bool random_hash_key(HashKey& out) noexcept {
    auto* p = reinterpret_cast<uint8_t*>(&out);
    size_t got = 0;
    while (got < sizeof(out)) {
        const ssize_t r = getrandom(p + got, sizeof(out) - got, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        got += static_cast<size_t>(r);
    }
    return true;
}

} // namespace l7gate::dp
