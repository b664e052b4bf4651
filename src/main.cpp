// l7gate launcher: l7gate [EAL options] -- [l7gate options]
//
// Start-up order: parse l7gate's options (bad ones exit 2 before EAL touches anything),
// initialise EAL, check every port against what is asked (exit 2 before any traffic moves),
// create mempools, start ports, load the policy, build one Worker per queue on the worker
// lcores, start the control services, then run the control loop on the main lcore until a
// stop condition. Shutdown drains the workers, prints the summary, writes --stats-json and
// closes the ports (which flushes pcap outputs). Each phase is a Gateway member
// (control/runtime/gateway.hpp); docs/architecture.md draws the result.

#include <atomic>
#include <csignal>

#include "control/runtime/gateway.hpp"

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
std::atomic<bool> g_reopen{false};  // SIGUSR1: reopen the logs (logrotate); SIGHUP is the policy

void on_signal(int) { g_stop.store(true, std::memory_order_relaxed); }
void on_sighup(int) { g_reload.store(true, std::memory_order_relaxed); }
void on_sigusr1(int) { g_reopen.store(true, std::memory_order_relaxed); }

} // namespace

int main(int argc, char** argv) {
    using namespace l7gate::ctl;
    Options opt;
    int eal_argc = 0;
    if (auto rc = handle_command_line(argc, argv, opt, eal_argc)) {
        return *rc;  // help, version, an offline policy tool or a pre-flight stop
    }
    Gateway gw(opt);
    gw.start_eal(eal_argc, argv);
    gw.open_ports();
    gw.load_policy();
    gw.open_records(g_reopen);
    gw.make_workers();
    gw.make_services();

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGHUP, on_sighup);    // policy reload
    std::signal(SIGUSR1, on_sigusr1);  // reopen the logs
    std::signal(SIGPIPE, SIG_IGN);     // a FIFO's reader leaving is a write error (EPIPE), not death
    const std::string why = gw.run(g_stop, g_reload);
    return gw.stop(why);
}
