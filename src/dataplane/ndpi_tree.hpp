#pragma once
// nDPI's IPv4 host-protocol Patricia tree (its address lists and --ndpi-protos ip: rules),
// for walking it once at start-up. nullptr when it cannot be had.

#include <ndpi_typedefs.h>

namespace l7gate::dp {

ndpi_patricia_tree_t* ndpi_host_protocol_tree(ndpi_detection_module_struct* m) noexcept;

} // namespace l7gate::dp
