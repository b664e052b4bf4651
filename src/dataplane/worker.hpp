#pragma once
// Worker: one per worker lcore, owning queue `queue` of every port. Run-to-completion loop:
// rx burst -> parse -> flow lookup/insert -> (classify, verdict: later stages) -> tx burst to
// the peer port of the bridge pair. Nothing in the loop allocates, locks, logs or throws.

#include <atomic>
#include <cstdint>

#include "dataplane/classifier_ndpi.hpp"
#include "dataplane/command_channel.hpp"
#include "dataplane/counters.hpp"
#include "dataplane/first_flight.hpp"
#include "dataplane/host_block.hpp"
#include "dataplane/memory.hpp"
#include "dataplane/flow_record.hpp"
#include "dataplane/flow_table.hpp"
#include "dataplane/frag_table.hpp"
#include "dataplane/packet_parser.hpp"
#include "dataplane/policy_snapshot.hpp"
#include "dataplane/reason_sweep.hpp"
#include "dataplane/shaper.hpp"

struct rte_mbuf;
struct rte_ring;
struct rte_rcu_qsbr;

namespace l7gate::dp {

inline constexpr unsigned kMaxBurst = 32;
static_assert(PoolSizing::kInFlightBursts * kMaxBurst >= 2 * kMaxBurst + 64 + 4 * kMaxBurst,
              "PoolSizing must cover a burst, its output, the drop batch and injected packets");
inline constexpr unsigned kHousekeepingEvery = 16;  // loop iterations (power of two)
inline constexpr unsigned kExpireBudget = 256;      // list heads examined per housekeeping, plus
                                                    // 2 per flow created since the last one
inline constexpr unsigned kActiveBudget = 256;      // entries report_active() looks at per step (paced)
inline constexpr unsigned kReclaimScan = 8;         // half-open flows looked at for a state

struct WorkerConfig {
    uint16_t queue = 0;
    unsigned lcore = 0;
    int socket = 0;
    uint16_t nb_ports = 0;
    uint16_t port[kMaxPorts] = {};  // ports this worker polls (queue `queue` of each)
    uint16_t peer[kMaxPorts] = {};  // where frames received on port[i] leave
    uint32_t flows = 0;
    uint32_t frags = 0;
    FlowTimeouts timeouts{};
    uint32_t frag_timeout_s = 5;
    bool malformed_drop = true;
    bool table_full_drop = false;
    uint8_t decap = kDecapAll;  // --decap: the encapsulations looked into (PacketMeta::decap)
    // Tests only: the flow table's hash secret (nullptr: drawn from getrandom(2)).
    const HashKey* flow_secret = nullptr;
    bool capture_clock = false;        // time from the mbuf RX timestamp (pcap replays)
    int timestamp_offset = -1;         // mbuf dynfield offset of the RX timestamp
    uint64_t timestamp_flag = 0;       // ol_flags bit saying the field is valid
    uint32_t timestamp_scale_ns = 1;   // ns per timestamp unit
    ClassifierConfig classifier{};
    FirstFlightConfig first_flight{};  // client first-flight reassembly (first_flight.hpp)
    rte_ring* flow_log = nullptr;      // dp -> cp finished flows; nullptr: no flow log
    // --ipfix-active-timeout: a live flow is reported (FlowEnd::Active) into flow_log this many
    // seconds after its start or its previous report (0: only when it ends).
    uint32_t active_timeout_s = 0;
    // The published policy (cp: rw, dp: ro). nullptr inside: no policy, everything passes.
    const std::atomic<const PolicySnapshot*>* policy = nullptr;
    // Quiescent-state variable (thread id = queue): the worker reports one per loop
    // iteration, so the control thread knows when an old snapshot is unreachable.
    rte_rcu_qsbr* qsbr = nullptr;
    uint32_t reject_rate = 1000;       // injected packets per second at most (0: never)
    rte_ring* scores = nullptr;        // dp -> cp ScoreEvents; nullptr: not kept
    // Blocked hosts (cp: rw, dp: ro), published like the policy.
    const std::atomic<const BlockedSet*>* blocked = nullptr;
    // Token buckets shared by every worker (shape:/police: markers); nullptr: the worker
    // allocates its own (tests driving one worker).
    ShaperBuckets* shaper_buckets = nullptr;
    // Packets this worker's shaper queues may hold together (PoolSizing::shaper_backlog_cap);
    // a packet beyond it is dropped (shaper_backlog), so shaping never empties the pool.
    uint32_t shaper_backlog = 4096;
    // --fail-open: before each RX burst the worker checks that it still owns its RX queues
    // (the control thread's watchdog may hand them to the standby path while it is stalled).
    bool fail_open = false;
    // Testing only (--test-stall-worker): stop for stall_ms once stall_after packets were
    // received, holding the burst, without a heartbeat.
    uint64_t test_stall_after = 0;
    uint32_t test_stall_ms = 0;
    // Benchmarks and tests only (--bench-stop-at-end): leave the loop at the first idle poll
    // after packets were received (the end of a capture replayed once), as if stopped.
    bool stop_at_end = false;
    // --mtu (without it kMtuDefault, what one default mbuf holds): an IP packet longer than this, or a frame longer than this + kL2Overhead, is
    // dropped (over_mtu). Frames up to that length may arrive as mbuf chains (scattered RX,
    // net_pcap): they are copied whole into a per-worker buffer before they are parsed.
    uint32_t mtu = kMtuDefault;
};

// Structure of arrays for one burst (house style: parse everything, then look up everything).
struct Burst {
    rte_mbuf* mbufs[kMaxBurst];
    PacketMeta meta[kMaxBurst];
    const FlowKey* keys[kMaxBurst];
    uint32_t hashes[kMaxBurst];
    uint64_t time_ns[kMaxBurst];
    FlowEntry* flows[kMaxBurst];
    uint8_t lookup_slot[kMaxBurst];  // index into keys/flows for packets that need a lookup
    // A packet that ends a first flight brings the segments held before it (first_flight.hpp).
    rte_mbuf* out[kMaxBurst * (kFirstFlightMaxHeld + 1)];
};

class alignas(64) Worker {
public:
    Worker() = default;
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // Returns nullptr or an error line.
    const char* init(const WorkerConfig& cfg) noexcept;

    // lcore entry point; returns when stop is requested (or, with stop_at_end, at the end of
    // the input), after the last tx and the flush of every flow.
    int run() noexcept;
    // cp: run() has returned (its flows flushed); acquire pairs with its release store.
    bool finished() const noexcept { return finished_.load(std::memory_order_acquire); }

    // cp -> dp: relaxed is enough, the worker only needs to see it eventually.
    void request_stop() noexcept { stop_.store(true, std::memory_order_relaxed); }

    // cp: the worker's command and reply rings (command_channel.hpp); the worker answers from
    // its housekeeping. The channel and its reply slots live as long as the Worker.
    CommandChannel& commands() noexcept { return commands_; }
    // cp: the reason ids its live flows hold, swept on request from the housekeeping
    // (reason_sweep.hpp). Lives as long as the Worker.
    ReasonSweep& reason_sweep() noexcept { return reason_sweep_; }

    const WorkerCounters& counters() const noexcept { return counters_; }

    // Fail-open handoff of the RX queues, between this worker and the control thread's
    // standby path (a Dekker-style exchange: each side writes its flag, then reads the
    // other's, both sequentially consistent, so they can never both poll):
    //   worker: in_rx = 1; if owner != worker { in_rx = 0; skip } rx_burst; in_rx = 0
    //   cp:     owner = standby; if in_rx { owner = worker; retry later }
    // cp: true when the queues are now the standby path's.
    bool standby_acquire() noexcept {
        rx_owner_.store(kOwnerStandby, std::memory_order_seq_cst);
        if (in_rx_.load(std::memory_order_seq_cst) != 0) {
            rx_owner_.store(kOwnerWorker, std::memory_order_seq_cst);
            return false;
        }
        return true;
    }
    // cp: hands the queues back (the standby path is not inside an rx burst then).
    void standby_release() noexcept { rx_owner_.store(kOwnerWorker, std::memory_order_seq_cst); }
    const WorkerConfig& config() const noexcept { return cfg_; }
    const FlowTable& flow_table() const noexcept { return flows_; }
    const AppClassifier& classifier() const noexcept { return classifier_; }
    // Tests drive process_burst() from their own thread: give it this worker's nDPI arena.
    void classifier_attach_for_test() noexcept { classifier_.attach_thread(); }

    // The whole per-packet path on burst().mbufs[0, n) received on port index `pi` at time
    // now_ns. Frames that must leave are put in burst().out[0, return value); the others are
    // freed and counted. Public for tests and fuzzers.
    unsigned process_burst(unsigned pi, unsigned n, uint64_t now_ns) noexcept;
    Burst& burst() noexcept { return burst_; }

    void housekeeping(uint64_t now_ns) noexcept;
    // One slice of a requested reason sweep (reason_sweep.hpp); housekeeping calls it.
    void sweep_reasons() noexcept;
    // Takes the published policy and blocked-host snapshots for the next bursts (run() does
    // it every iteration, outside any burst), and moves the verdict epoch when either is
    // another one. Public for tests.
    void load_snapshots() noexcept;
    uint16_t verdict_epoch() const noexcept { return epoch_; }

    // Sends what the shaper queues may release at now_ns (run() calls it every iteration
    // while they hold packets). Public for tests.
    void drain_shaper(uint64_t now_ns) noexcept;
    const Shaper& shaper() const noexcept { return shaper_; }

    // Ends every flow (flow log records with end = Shutdown). Called by run() on stop.
    void flush_flows() noexcept;
    // Drops (shaper_flush) whatever still waits in the shaper queues. Called by run() on stop.
    void flush_shaper() noexcept;

private:
    // Counts and frees (batched: free_dropped() runs at the end of every burst and drain).
    void drop(rte_mbuf* m, DropReason r) noexcept;
    void free_dropped() noexcept;
    // A packet of a verdict other than pass that is not enforced (monitor mode): counted by
    // that verdict (blocked: the blocked set's drop), then forwarded by the caller.
    void monitored(const rte_mbuf* m, uint8_t action, bool blocked) noexcept;
    // reject verdict: builds the RST / ICMP packets (rate-limited) for the dropped packet.
    void reject(const rte_mbuf* m, const PacketMeta& pm, uint64_t now_ns) noexcept;
    [[gnu::noinline, gnu::cold]] void tunnelled(PacketMeta& pm) noexcept;
    [[gnu::noinline, gnu::cold]] void remember_outer(const FlowEntry& e, const PacketMeta& pm) noexcept;
    inline void uninspected(Uninspected cause, const rte_mbuf* m) noexcept;
    // Sends what reject() built on the worker's own TX queues.
    void flush_injected(unsigned pi) noexcept;
    // A shape/police flow's packet: true when it leaves now (else queued or dropped).
    // `tag`: 1 + the Uninspected cause of a packet of an uninspected flow (0: inspected). The
    // caller counts a packet that leaves now; one the shaper queues carries the tag and is
    // counted when it leaves the queue (drain_shaper), never when it is dropped there.
    bool shape(rte_mbuf* m, const FlowEntry& e, unsigned pi, uint64_t now_ns, uint8_t tag = 0) noexcept;
    void flush_shaped(unsigned out) noexcept;
    // What the policy needs to know about a flow; the hostname is lowercased into `lower`.
    FlowFacts facts(const FlowEntry& e, char (&lower)[80]) const noexcept;
    // cached::kUnenforced when the policy the flow's local host maps to does not enforce (for
    // verdicts not the policy's own: a blocked host, an unnamed first flight); else 0.
    uint16_t unenforced_bit(const FlowEntry& e, const PolicySnapshot& pol, const rte_mbuf* m,
                            uint8_t slot) const noexcept;
    // Evaluates the policy for the flow at this packet (sticky drop honoured).
    // `changed`: the flow's classification moved (else a snapshot did, or the flow is new).
    void decide(FlowEntry& e, const PolicySnapshot& pol, const rte_mbuf* m, uint8_t slot, bool changed) noexcept;
    // A packet whose new flow got no entry (table_full, else bucket_full); `client`: the key
    // slot taken as the client. Applies what needs no flow state (blocked hosts, the policy
    // without L7 results), else --on-flow-table-full (worker_flowless.cpp). True: forward it
    // now (else dropped, rejected or queued by a shaper).
    bool flowless(rte_mbuf* m, const PacketMeta& pm, uint8_t slot, uint8_t client, unsigned pi, uint64_t now_ns,
                  bool table_full) noexcept;
    // A client packet of a TCP flow in classification whose first flight may need
    // reassembly: Normal (feed nDPI as usual), Forward (pass it on without nDPI: a pure ACK
    // while held), Consumed (held or dropped), Fed (nDPI had the reassembled bytes, the flow
    // is decided and its held segments are in burst_.out[.., nout) or dropped).
    enum class FfStep : uint8_t { Normal, Forward, Consumed, Fed };
    FfStep first_flight(FlowEntry& e, rte_mbuf* m, const uint8_t* frame, const PacketMeta& pm, uint8_t slot,
                        uint64_t t, bool& changed, unsigned& nout) noexcept;
    // Could the flow's verdict depend on its hostname: does the policy its pool maps it to
    // have a hostname, protocol or category marker? (Client packet `m`.)
    bool names_matter(const FlowEntry& e, const rte_mbuf* m) const noexcept;
    // Forwards (into burst_.out; r == DropReason::None) or drops with reason r the segments
    // held in first-flight slot `idx`, and frees the slot.
    void ff_release(uint32_t idx, DropReason r, unsigned& nout) noexcept;
    // Works on the command at the head of commands_ (a bounded chunk per housekeeping).
    void serve_command() noexcept;
    // process_burst's stages (defined in worker.cpp, force-inlined into it).
    inline unsigned parse_burst(QueueCounters& qc, unsigned n, uint64_t now_ns) noexcept;
    inline void lookup_burst(unsigned n, unsigned nlook) noexcept;
    inline void pass_unparsed(rte_mbuf* m, const PacketMeta& pm, unsigned& nout) noexcept;
    inline FlowEntry* flow_of(unsigned i, rte_mbuf* m, const PacketMeta& pm, unsigned pi, uint64_t now_ns,
                              uint8_t& slot, unsigned& nout) noexcept;
    inline void track(FlowEntry& e, const rte_mbuf* m, const PacketMeta& pm, uint8_t slot, uint64_t t) noexcept;
    inline bool classify(unsigned i, FlowEntry& e, rte_mbuf* m, const PacketMeta& pm, uint8_t slot, uint64_t t,
                         bool& changed, unsigned& nout, uint64_t& cycles) noexcept;
    inline void track_fragment(const FlowEntry& e, const uint8_t* frame, const PacketMeta& pm, uint8_t slot,
                               uint64_t t) noexcept;
    // Stage 1 for a frame that is not one mbuf, or is longer than --mtu + 14: over_mtu, or
    // copied whole (a chain) into linear_'s slot i and parsed there.
    void parse_long(const rte_mbuf* m, PacketMeta& pm) noexcept;  // pm: an element of burst_.meta
    // Packet i's (m's) bytes, whole: the mbuf's data when it is one segment, else the copy
    // parse_long() made.
    inline const uint8_t* frame_of(unsigned i, const rte_mbuf* m) const noexcept;
    inline bool act(FlowEntry& e, rte_mbuf* m, const PacketMeta& pm, uint8_t slot, uint64_t t, unsigned pi,
                    bool changed, uint16_t generation, uint64_t& cycles) noexcept;
    void emit_scores(const FlowEntry& e, uint64_t now_ns) noexcept;
    void reclaim_half_open(const FlowEntry& fresh, uint64_t now_ns) noexcept;
    // A later fragment's flow (e nullptr: none) and the key slot its first fragment recorded,
    // returned by value: nothing of process_burst's loop has its address taken.
    struct FragFlow {
        FlowEntry* e;
        uint8_t slot;
    };
    FragFlow flow_for_fragment(const uint8_t* frame, const PacketMeta& m, uint64_t now_ns, uint8_t slot) noexcept;
    // A TCP flow's FIN/RST bits and timeout class after a packet from `slot` with `flags`
    // (the caller has set the seen bit; called only on FIN or RST, or during the handshake).
    static void update_tcp(FlowTable& ft, FlowEntry& e, uint8_t flags, uint8_t slot, uint64_t now_ns) noexcept;
    uint64_t now_ns() const noexcept;
    // --clock capture: the frame's capture timestamp, never behind the latest one.
    uint64_t capture_time(const rte_mbuf* m) noexcept;
    void end_flow(FlowEntry& e, FlowEnd why) noexcept;
    FlowRecord* record_slot() noexcept;
    void fill_record(const FlowEntry& e, FlowEnd why, FlowRecord& r) noexcept;
    // Interim records of flows older than the active timeout: a bounded slice of the table
    // per housekeeping (kActiveBudget entries), never waiting for ring room.
    void report_active(uint64_t now_ns) noexcept;

    WorkerConfig cfg_{};
    WorkerCounters counters_{};
    FlowTable flows_;
    FragTable frags_;
    AppClassifier classifier_;
    Burst burst_{};
    uint64_t tsc_hz_ = 0;
    uint64_t tsc_start_ = 0;
    uint64_t epoch_start_ns_ = 0;    // wall clock at tsc_start_
    uint64_t last_time_ns_ = 0;      // capture clock: latest packet time (never goes back)
    const PolicySnapshot* policy_ = nullptr;  // snapshot in use for the current burst
    const BlockedSet* blocked_ = nullptr;      // blocked hosts in use for the current burst
    // Verdict epoch: a flow whose FlowEntry::generation differs is decided again. Bumped by
    // load_snapshots() whenever the policy or the blocked set it sees is another one (pointer
    // or generation), and never 0, the value a new flow starts with, so no combination of
    // generations can leave a new flow undecided. (A flow idle across exactly a multiple of
    // 65,535 epoch changes would keep its verdict: FlowEntry has no room for a wider field.)
    uint16_t epoch_ = 1;
    // Epoch changes since the policy snapshot last changed (saturating): a flow decided fewer
    // epochs ago than this has seen the policy in force, and only the blocked set moved since,
    // so only the blocked set is checked again (no policy evaluation).
    uint32_t epochs_since_policy_ = 0;
    bool saw_policy(uint16_t g) const noexcept;
    const PolicySnapshot* epoch_policy_ = nullptr;  // what the epoch was last bumped for
    const BlockedSet* epoch_blocked_ = nullptr;
    uint64_t epoch_policy_gen_ = 0;
    uint64_t epoch_blocked_gen_ = 0;
    rte_mbuf* inj_back_[2 * kMaxBurst] = {};  // to the senders (their own port)
    rte_mbuf* inj_fwd_[2 * kMaxBurst] = {};   // to the receivers (the peer port)
    unsigned inj_back_n_ = 0;
    unsigned inj_fwd_n_ = 0;
    uint64_t inj_credit_ns_ = 0;              // token bucket of the injection rate limit
    uint64_t inj_last_ns_ = 0;
    unsigned peer_idx_[kMaxPorts] = {};  // index of peer port in cfg_.port
    uint32_t* isn_ = nullptr;  // per flow entry: the client's initial sequence number (TCP)
    // Per flow entry: its slot in ff_pool_ while FlowEntry::ff_held() (read only then, so a
    // new flow needs no store here).
    uint32_t* ff_ = nullptr;
    FirstFlightPool ff_pool_;
    // Multi-segment frames: kMaxBurst slots of linear_stride_ bytes (--mtu + kL2Overhead,
    // rounded up to a cache line), slot i for burst index i, allocated at init. A chained
    // frame is copied into its slot by parse_long(); the chain itself is what leaves.
    uint8_t* linear_ = nullptr;
    uint32_t linear_stride_ = 0;
    uint32_t max_frame_ = 0;   // cfg_.mtu + kL2Overhead
    uint32_t short_frame_ = 0;  // cfg_.mtu + 14: a one-mbuf frame up to this long needs no check
    // Per flow entry, only with an active timeout (else nullptr): when it was last reported
    // (0: never) and its totals then. Cleared when the flow ends, so a reused entry starts at 0.
    struct Reported {
        uint64_t at_ns;
        uint64_t packets[2];
        uint64_t bytes[2];
    };
    Reported* reported_ = nullptr;
    // Per flow entry, only with a flow log and an IP-carried encapsulation in --decap (else
    // nullptr): a tunnelled flow's carrier addresses, as its first packet had them (source,
    // destination; version 0: no IP carrier, e.g. PPPoE or MPLS). Written when a flow with a
    // tunnel discriminator is created, read only for such a flow's record, so a plain flow's
    // entry is never touched.
    struct Outer {
        uint8_t src[16];
        uint8_t dst[16];
        uint8_t version;
    };
    Outer* outer_ = nullptr;
    uint32_t active_cursor_ = 0;  // next entry report_active() looks at
    uint64_t active_next_ns_ = 0;  // report_active() takes its next step then
    uint64_t active_pass_ns_ = 0;  // a whole pass takes this long: an eighth of the timeout
    uint64_t created_at_housekeeping_ = 0;  // flows_created at the last housekeeping
    CommandChannel commands_;  // dp: serves it; cp: sends and receives through it (see there)
    ReasonSweep reason_sweep_;  // dp: sweeps on request; cp: requests and reads (see there)
    static constexpr unsigned kDropBatch = 64;
    rte_mbuf* dropped_[kDropBatch] = {};
    unsigned ndropped_ = 0;
    Shaper shaper_;
    ShaperBuckets* own_buckets_ = nullptr;   // when cfg_.shaper_buckets is null
    rte_mbuf* shaped_tx_[kMaxPorts][kMaxBurst] = {};  // released by the shaper, per output index
    unsigned shaped_n_[kMaxPorts] = {};
    static constexpr uint32_t kOwnerWorker = 0;
    static constexpr uint32_t kOwnerStandby = 1;
    alignas(64) std::atomic<uint32_t> in_rx_{0};  // dp: rw, cp: ro
    std::atomic<uint32_t> rx_owner_{kOwnerWorker};  // cp: rw, dp: ro
    std::atomic<bool> stop_{false};  // cp: rw, dp: ro
    std::atomic<bool> finished_{false};  // dp: rw (once, at the end of run), cp: ro
};

} // namespace l7gate::dp
