#include "dataplane/memory.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <rte_malloc.h>

namespace l7gate::dp {

namespace {
bool g_use_eal = false;

// A 64-byte header in front of every block records where it came from, so table_free()
// needs no global registry.
struct alignas(64) BlockHeader {
    uint32_t from_eal;
};
} // namespace

void memory_use_eal(bool on) noexcept { g_use_eal = on; }

void* table_alloc(size_t size, int socket) noexcept {
    const size_t total = size + sizeof(BlockHeader);
    void* raw = nullptr;
    bool eal = false;
    if (g_use_eal) {
        raw = rte_zmalloc_socket("l7gate", total, 64, socket);
        eal = raw != nullptr;
    }
    if (raw == nullptr) {
        raw = std::aligned_alloc(64, (total + 63) & ~size_t{63});
        if (raw == nullptr) {
            return nullptr;
        }
        std::memset(raw, 0, total);
    }
    auto* h = static_cast<BlockHeader*>(raw);
    h->from_eal = eal ? 1 : 0;
    return h + 1;
}

void table_free(void* p) noexcept {
    if (p == nullptr) {
        return;
    }
    auto* h = static_cast<BlockHeader*>(p) - 1;
    if (h->from_eal != 0) {
        rte_free(h);
    } else {
        std::free(h);
    }
}

} // namespace l7gate::dp
