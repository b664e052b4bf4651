// The packets of a flow that got no entry in the flow table (README "What the data plane does
// with each packet", 4). Without an entry there is no nDPI state and no cached verdict, but
// everything a verdict needs apart from nDPI's results is in the packet: its addresses (the
// blocked-host set, pools, `ips`, `countries`, `continents`) and the default of the local
// host's policy. Those verdicts apply as they would to a flow; --on-flow-table-full decides
// only what L7 markers could still change. Off the per-packet path of flows with an entry.

#include "dataplane/worker.hpp"

#include <rte_mbuf.h>

namespace l7gate::dp {

bool Worker::flowless(rte_mbuf* m, const PacketMeta& pm, uint8_t slot, uint8_t client, unsigned pi, uint64_t now_ns,
                      bool table_full) noexcept {
    uint8_t action = cached::kPass;
    uint16_t reason = 0;
    bool blocked = false;
    bool enforced = true;  // monitor mode (README "Monitor mode"): decided, counted, forwarded
    bool certain = policy_ != nullptr;  // no policy: nothing to apply, the option decides
    // As decide() for a new flow: its sender is the client (its receiver for a SYN-ACK), and
    // nothing is known of its application yet.
    auto facts = [&] {
        FlowFacts f;
        f.ip_version = pm.key.ip_version;
        f.client_ip = pm.key.addr[client];
        f.server_ip = pm.key.addr[client ^ 1];
        if (m->data_len >= 12) {
            const uint8_t* eth = rte_pktmbuf_mtod(m, const uint8_t*);
            const bool from_client = slot == client;
            f.client_mac = from_client ? eth + 6 : eth;
            f.server_mac = from_client ? eth : eth + 6;
        }
        f.l7_known = false;
        return f;
    };
    if (blocked_ != nullptr && (blocked_->contains(pm.key.ip_version, pm.key.addr[0]) ||
                                blocked_->contains(pm.key.ip_version, pm.key.addr[1]))) {
        action = cached::kDrop;
        reason = blocked_->reason;
        certain = true;
        blocked = true;
    } else if (policy_ != nullptr) {
        const Verdict v = policy_->evaluate(facts(), cfg_.queue);
        counters_.policy_evaluations.inc();
        action = cached::encode(v.action, v.shaper, v.local_is_server);
        reason = v.reason;
        enforced = v.enforced;
        // Pending: the action is the least strict verdict L7 markers could still give; a drop
        // or reject is then certain all the same.
        certain = !v.pending || cached::drops(action);
    }
    Flowless outcome;
    if (certain) {
        outcome = action == cached::kPass     ? Flowless::Pass
                  : action == cached::kDrop   ? Flowless::Drop
                  : action == cached::kReject ? Flowless::Reject
                  : cached::police(action)    ? Flowless::Police
                                              : Flowless::Shape;
    } else if (cfg_.table_full_drop) {
        counters_.flowless[static_cast<size_t>(Flowless::UndecidedDrop)].inc();
        drop(m, table_full ? DropReason::TableFull : DropReason::BucketFull);
        return false;
    } else {
        outcome = Flowless::UndecidedPass;  // a shape or police floor still applies
    }
    counters_.flowless[static_cast<size_t>(outcome)].inc();
    if (action == cached::kPass) {
        return true;
    }
    counters_.reason_packets[reason & (kMaxReasons - 1)].inc();
    if (blocked && policy_ != nullptr && policy_->any_monitor) {
        enforced = policy_->unenforced_bit(facts()) == 0;
    }
    if (!enforced) {
        monitored(m, action, blocked);
        return true;
    }
    if (cached::drops(action)) {
        if (action == cached::kReject) {
            reject(m, pm, now_ns);
        }
        drop(m, DropReason::Policy);
        return false;
    }
    // Shape or police: the shaper reads the verdict, the key and the client slot of an entry.
    FlowEntry e{};
    e.key = pm.key;
    e.flags = static_cast<uint8_t>(1u | client << 1);
    e.action = action;
    e.reason = reason;
    // Sent now: the caller counts it as no_flow; queued: counted so when it leaves the queue.
    return shape(m, e, pi, now_ns, static_cast<uint8_t>(1 + static_cast<unsigned>(Uninspected::NoFlow)));
}

} // namespace l7gate::dp
