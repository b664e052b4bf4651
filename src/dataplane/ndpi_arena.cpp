#include "dataplane/ndpi_arena.hpp"

#include <cstdlib>
#include <cstring>

#include <gcrypt.h>
#include <ndpi_api.h>

#include "dataplane/memory.hpp"

namespace l7gate::dp {

namespace {

constexpr uint32_t kMagicArena = 0x4c374152;  // "L7AR"
constexpr uint32_t kMagicHeap = 0x4c374850;   // "L7HP"

struct alignas(16) Header {
    uint32_t magic;
    uint32_t cls;
    NdpiArena* owner;
};
static_assert(sizeof(Header) == 16);

thread_local NdpiArena* t_arena = nullptr;

void* heap_alloc(size_t size) noexcept {
    auto* h = static_cast<Header*>(std::malloc(sizeof(Header) + size));
    if (h == nullptr) {
        return nullptr;
    }
    h->magic = kMagicHeap;
    h->cls = 0;
    h->owner = reinterpret_cast<NdpiArena*>(size);  // heap blocks keep their size here
    return h + 1;
}

size_t block_size(const void* p) noexcept {
    const Header* h = static_cast<const Header*>(p) - 1;
    if (h->magic == kMagicArena) {
        return (size_t{1} << (h->cls + NdpiArena::kMinShift)) - sizeof(Header);
    }
    return reinterpret_cast<size_t>(h->owner);
}

void* hook_malloc(size_t size) {
    if (t_arena != nullptr) {
        return t_arena->alloc(size);
    }
    return heap_alloc(size);
}

void hook_free(void* p) {
    if (p == nullptr) {
        return;
    }
    Header* h = static_cast<Header*>(p) - 1;
    if (h->magic == kMagicArena) {
        h->owner->release(h, h->cls);
    } else {
        std::free(h);
    }
}

// libgcrypt (QUIC Initial decryption inside nDPI) allocates on its own; its handlers route
// to the same place as nDPI's.
void* gcry_hook_alloc(size_t n) { return hook_malloc(n); }
int gcry_hook_is_secure(const void*) { return 0; }
void gcry_hook_free(void* p) { hook_free(p); }
void* gcry_hook_realloc(void* p, size_t n) {
    if (p == nullptr) {
        return hook_malloc(n);
    }
    if (n == 0) {
        hook_free(p);
        return nullptr;
    }
    const size_t old = block_size(p);
    if (n <= old) {
        return p;
    }
    void* q = hook_malloc(n);
    if (q != nullptr) {
        std::memcpy(q, p, old);
        hook_free(p);
    }
    return q;
}

unsigned class_of(size_t total) noexcept {
    unsigned shift = NdpiArena::kMinShift;
    while ((size_t{1} << shift) < total) {
        ++shift;
    }
    return shift - NdpiArena::kMinShift;
}

} // namespace

NdpiArena::~NdpiArena() { table_free(region_); }

bool NdpiArena::init(size_t bytes, int socket, Counter* refused) noexcept {
    refused_ = refused;
    region_ = static_cast<uint8_t*>(table_alloc(bytes, socket));
    if (region_ == nullptr) {
        return false;
    }
    bump_ = region_;
    end_ = region_ + bytes;
    return true;
}

void NdpiArena::attach(NdpiArena* arena) noexcept { t_arena = arena; }

void NdpiArena::install_hooks() noexcept {
    set_ndpi_malloc(hook_malloc);
    set_ndpi_free(hook_free);
    // Flow structs are allocated by l7gate itself (DpiPool); these cover any other use.
    set_ndpi_flow_malloc(hook_malloc);
    set_ndpi_flow_free(hook_free);
    // Must precede gcry_check_version(), which nDPI calls when a module is created.
    gcry_set_allocation_handler(gcry_hook_alloc, gcry_hook_alloc, gcry_hook_is_secure,
                                gcry_hook_realloc, gcry_hook_free);
}

void* NdpiArena::alloc(size_t size) noexcept {
    const size_t total = size + sizeof(Header);
    if (total <= (size_t{1} << kMaxShift)) {
        const unsigned cls = class_of(total);
        const size_t bsize = size_t{1} << (cls + kMinShift);
        void* blk = free_[cls];
        if (blk != nullptr) {
            std::memcpy(&free_[cls], blk, sizeof(void*));
            free_bytes_ -= bsize;
        } else if (static_cast<size_t>(end_ - bump_) >= bsize) {
            blk = bump_;
            bump_ += bsize;
        }
        if (blk != nullptr) {
            auto* h = static_cast<Header*>(blk);
            h->magic = kMagicArena;
            h->cls = cls;
            h->owner = this;
            in_use_ += 1;
            in_use_bytes_ += bsize;
            if (in_use_bytes_ > peak_bytes_) {
                peak_bytes_ = in_use_bytes_;
            }
            return h + 1;
        }
    }
    // Never the C heap on a worker: nDPI and libgcrypt treat NULL as out of memory, and the
    // classifier gives the flow up (AppClassifier::packet).
    ++refused_local_;
    if (refused_ != nullptr) {
        refused_->inc();
    }
    return nullptr;
}

void NdpiArena::release(void* block, unsigned cls) noexcept {
    static_cast<Header*>(block)->magic = 0;
    std::memcpy(block, &free_[cls], sizeof(void*));
    free_[cls] = block;
    const size_t bsize = size_t{1} << (cls + kMinShift);
    free_bytes_ += bsize;
    in_use_ -= 1;
    in_use_bytes_ -= bsize;
}

} // namespace l7gate::dp
