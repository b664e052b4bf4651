// nDPI 4.2 has no accessor for its IPv4 host-protocol tree; its module struct is visible only
// with NDPI_LIB_COMPILATION. This one function is the only code that sees it, so the rest of
// l7gate keeps to the public API. The installed headers (and their ndpi_config.h) come from
// the same package as the library, and the caller checks what it gets (a 32-bit tree).
#define NDPI_LIB_COMPILATION
#include <ndpi_api.h>

#include "dataplane/ndpi_tree.hpp"

namespace l7gate::dp {

ndpi_patricia_tree_t* ndpi_host_protocol_tree(ndpi_detection_module_struct* m) noexcept {
    auto* tree = static_cast<ndpi_patricia_tree_t*>(m->protocols_ptree);
    return tree != nullptr && ndpi_patricia_get_maxbits(tree) == 32 ? tree : nullptr;
}

} // namespace l7gate::dp
