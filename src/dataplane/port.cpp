#include "dataplane/port.hpp"

#include <cstring>
#include <vector>

#include <rte_ethdev.h>
#include <rte_mempool.h>

namespace l7gate::dp {

namespace {
// The addresses only (issue 18, point 10): a NIC hashes a fragment on its addresses (its later
// pieces have no ports), so with the ports in the hash of unfragmented TCP/UDP packets the
// fragments of a flow reached another worker than its other packets: another flow entry,
// another verdict. On the addresses alone every packet of a host pair, fragments included,
// reaches one worker; a single host pair is never spread over workers.
constexpr uint64_t kWantedRss = RTE_ETH_RSS_IP;

std::string fmt_port(uint16_t port) { return "port " + std::to_string(port) + " (" + port_driver(port) + ")"; }
} // namespace

uint64_t rss_hash_functions() noexcept { return kWantedRss; }

void make_symmetric_rss_key(uint8_t* key, unsigned len) noexcept {
    for (unsigned i = 0; i < len; ++i) {
        key[i] = (i % 2 == 0) ? kSymmetricRssKeyByte0 : kSymmetricRssKeyByte1;
    }
}

std::string port_driver(uint16_t port) {
    rte_eth_dev_info info{};
    if (rte_eth_dev_info_get(port, &info) != 0 || info.driver_name == nullptr) {
        return "unknown";
    }
    return info.driver_name;
}

bool port_scatters(uint16_t port) {
    rte_eth_dev_info info{};
    if (!rte_eth_dev_is_valid_port(port) || rte_eth_dev_info_get(port, &info) != 0) {
        return false;
    }
    return (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER) != 0 ||
           (info.driver_name != nullptr && std::strcmp(info.driver_name, "net_pcap") == 0);
}

std::string port_check(uint16_t port, const PortSetup& s) {
    if (!rte_eth_dev_is_valid_port(port)) {
        return "port " + std::to_string(port) + " does not exist (" +
               std::to_string(rte_eth_dev_count_avail()) + " port(s) available)";
    }
    rte_eth_dev_info info{};
    if (int rc = rte_eth_dev_info_get(port, &info); rc != 0) {
        return fmt_port(port) + ": cannot read device info: " + std::strerror(-rc);
    }
    if (s.extra_tx != 0 && s.queues + s.extra_tx > info.max_tx_queues) {
        return fmt_port(port) + ": --fail-open needs " + std::to_string(s.queues + s.extra_tx) +
               " TX queues (one per worker and one for the fail-open path), the port supports " +
               std::to_string(info.max_tx_queues) + " (net_pcap: give one more tx_pcap)";
    }
    if (s.queues > info.max_rx_queues || s.queues > info.max_tx_queues) {
        return fmt_port(port) + ": --rxq " + std::to_string(s.queues) + " asks for " +
               std::to_string(s.queues) + " RX/TX queue(s), the port supports at most " +
               std::to_string(info.max_rx_queues) + " RX and " +
               std::to_string(info.max_tx_queues) + " TX queue(s)";
    }
    if (s.mtu != 0 && (s.mtu > info.max_mtu || s.mtu < info.min_mtu)) {
        return fmt_port(port) + ": --mtu " + std::to_string(s.mtu) + " is beyond what the port takes (" +
               std::to_string(info.min_mtu) + " to " + std::to_string(info.max_mtu) + ")";
    }
    if (s.scatter && !port_scatters(port)) {
        return fmt_port(port) + ": --mtu " + std::to_string(s.mtu) +
               " makes frames longer than one mbuf and the port cannot scatter them";
    }
    if (s.queues > 1 && s.require_rss) {
        const uint64_t hf = info.flow_type_rss_offloads & kWantedRss;
        if (hf == 0) {
            return fmt_port(port) + ": --rxq " + std::to_string(s.queues) +
                   " needs symmetric RSS to spread flows, the port offers no RSS hash "
                   "(use --rss driver only if the driver spreads flows itself)";
        }
        if (info.hash_key_size != 0 && info.hash_key_size % 2 != 0) {
            return fmt_port(port) + ": RSS key of " + std::to_string(info.hash_key_size) +
                   " bytes cannot hold the symmetric 0x6d5a pattern";
        }
    }
    return {};
}

std::string port_start(uint16_t port, const PortSetup& s) {
    if (std::string err = port_check(port, s); !err.empty()) {
        return err;
    }
    rte_eth_dev_info info{};
    rte_eth_dev_info_get(port, &info);

    rte_eth_conf conf{};
    // net_pcap stamps every packet with its capture time without advertising the offload;
    // ports that advertise it are asked for it.
    if (s.rx_timestamp && (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TIMESTAMP) != 0) {
        conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TIMESTAMP;
    }
    conf.rxmode.mtu = s.mtu;
    if (s.scatter && (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER) != 0) {
        conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
    }
    std::vector<uint8_t> key;
    if (s.queues > 1 && s.require_rss) {
        key.resize(info.hash_key_size != 0 ? info.hash_key_size : 40);
        make_symmetric_rss_key(key.data(), static_cast<unsigned>(key.size()));
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_key = key.data();
        conf.rx_adv_conf.rss_conf.rss_key_len = static_cast<uint8_t>(key.size());
        conf.rx_adv_conf.rss_conf.rss_hf = info.flow_type_rss_offloads & kWantedRss;
    }
    const uint16_t ntxq = static_cast<uint16_t>(s.queues + s.extra_tx);
    if (int rc = rte_eth_dev_configure(port, s.queues, ntxq, &conf); rc != 0) {
        return fmt_port(port) + ": configure failed: " + std::strerror(-rc);
    }
    uint16_t nrx = s.rx_desc;
    uint16_t ntx = s.tx_desc;
    if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nrx, &ntx); rc != 0) {
        return fmt_port(port) + ": descriptor counts rejected: " + std::strerror(-rc);
    }
    const int socket = rte_eth_dev_socket_id(port);
    const unsigned sock = socket < 0 ? SOCKET_ID_ANY : static_cast<unsigned>(socket);
    for (uint16_t q = 0; q < s.queues; ++q) {
        if (int rc = rte_eth_rx_queue_setup(port, q, nrx, sock, nullptr, s.pool); rc != 0) {
            return fmt_port(port) + ": RX queue " + std::to_string(q) + " setup failed: " +
                   std::strerror(-rc) + " (a pcap vdev with infinite_rx preloads the whole "
                   "capture into mbufs: raise --mbufs)";
        }
    }
    for (uint16_t q = 0; q < ntxq; ++q) {
        if (int rc = rte_eth_tx_queue_setup(port, q, ntx, sock, nullptr); rc != 0) {
            return fmt_port(port) + ": TX queue " + std::to_string(q) + " setup failed: " +
                   std::strerror(-rc);
        }
    }
    if (int rc = rte_eth_dev_start(port); rc != 0) {
        return fmt_port(port) + ": start failed: " + std::strerror(-rc);
    }
    // A bridge must see every frame, whatever its destination MAC. Virtual devices that
    // have no notion of it refuse; that is harmless for them.
    (void)rte_eth_promiscuous_enable(port);
    return {};
}

void port_stop(uint16_t port) noexcept {
    (void)rte_eth_dev_stop(port);
    (void)rte_eth_dev_close(port);
}

} // namespace l7gate::dp
