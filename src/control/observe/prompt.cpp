#include "control/observe/prompt.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include <arpa/inet.h>
#include <editline/readline.h>

#include "control/records/flow_log.hpp"
#include "control/hosts/host_scores.hpp"
#include "control/base/ndpi_names.hpp"
#include "control/ops/options.hpp"
#include "control/policy/compiler.hpp"
#include "control/policy/manager.hpp"
#include "control/observe/worker_queries.hpp"
#include "dataplane/worker.hpp"

namespace l7gate::ctl {

namespace {

constexpr const char* kHelp =
    "commands:\n"
    "  show port stats      packets and bytes per port, with rates since the last show\n"
    "  show flows [N]       the N (default 10, at most 100) active flows with most bytes\n"
    "                       (a worker that does not answer within 2 s is named and left out)\n"
    "  show policy          policy source, generation, size, reload counters\n"
    "  show hosts           hosts by risk score over the auto_block window, blocked first\n"
    "  reload               reload the policy file now\n"
    "  reopen logs          reopen the flow and event logs (after logrotate; as SIGUSR1)\n"
    "  set stats-interval S print a one-line summary every S seconds (0: off)\n"
    "  help                 this list\n"
    "  quit                 stop l7gate (as SIGTERM)\n";

std::vector<std::string> words(const std::string& line) {
    std::istringstream in(line);
    std::vector<std::string> w;
    std::string s;
    while (in >> s) {
        w.push_back(s);
    }
    return w;
}

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string addr(const uint8_t* a, uint8_t v, uint16_t port) {
    char b[INET6_ADDRSTRLEN];
    inet_ntop(v == 4 ? AF_INET : AF_INET6, a, b, sizeof(b));
    return (v == 6 ? "[" + std::string(b) + "]" : std::string(b)) + ":" + std::to_string(port);
}

} // namespace

Prompt::Prompt(PromptContext ctx) : ctx_(std::move(ctx)) {}

Prompt::~Prompt() {
    if (thread_.joinable()) {
        thread_.detach();  // blocked in a read; the process is exiting (it keeps inbox_)
    }
}

void Prompt::start() { thread_ = std::thread(reader, inbox_); }

void Prompt::reader(std::shared_ptr<Inbox> inbox) {
    const bool tty = isatty(STDIN_FILENO) != 0;
    for (;;) {
        std::string line;
        if (tty) {
            char* l = readline("l7gate> ");
            if (l == nullptr) {
                break;
            }
            line = l;
            if (!line.empty()) {
                add_history(l);
            }
            std::free(l);
        } else {
            char buf[1024];
            if (std::fgets(buf, sizeof(buf), stdin) == nullptr) {
                break;
            }
            line = buf;
            while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
                line.pop_back();
            }
        }
        std::lock_guard<std::mutex> g(inbox->mutex);
        inbox->lines.push_back(line);
    }
    std::lock_guard<std::mutex> g(inbox->mutex);
    inbox->eof = true;
}

void Prompt::print(const std::string& text) {
    if (text.empty()) {
        return;
    }
    if (ctx_.output) {
        ctx_.output(text);
        return;
    }
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
}

bool Prompt::poll() {
    for (;;) {
        if (waiting_) {
            return true;  // the workers' answer comes first (WorkerQueries::poll prints it)
        }
        std::string line;
        {
            std::lock_guard<std::mutex> g(inbox_->mutex);
            if (inbox_->lines.empty()) {
                return !(quit_ || inbox_->eof);
            }
            line = std::move(inbox_->lines.front());
            inbox_->lines.pop_front();
        }
        print(execute(line));
        if (quit_) {
            return false;
        }
    }
}

std::string Prompt::execute(const std::string& line) {
    const std::vector<std::string> w = words(line);
    if (w.empty() || w[0][0] == '#') {
        return {};
    }
    if (w[0] == "help" || w[0] == "?") {
        return kHelp;
    }
    if (w[0] == "quit" || w[0] == "exit") {
        quit_ = true;
        return "bye\n";
    }
    if (w[0] == "show" && w.size() >= 2) {
        if (w[1] == "port" && w.size() == 3 && w[2] == "stats") {
            return show_port_stats();
        }
        if (w[1] == "flows" && w.size() <= 3) {
            unsigned n = 10;
            if (w.size() == 3) {
                char* end = nullptr;
                const unsigned long v = std::strtoul(w[2].c_str(), &end, 10);
                if (*end != '\0' || v == 0 || v > dp::kTopFlowsMax) {
                    return "show flows: N must be from 1 to 100\n";
                }
                n = static_cast<unsigned>(v);
            }
            show_flows(n);
            return {};
        }
        if (w[1] == "policy" && w.size() == 2) {
            return show_policy();
        }
        if (w[1] == "hosts" && w.size() == 2) {
            return show_hosts();
        }
    }
    if (w[0] == "reload" && w.size() == 1) {
        if (ctx_.policy == nullptr) {
            return "reload: l7gate runs without --policy\n";
        }
        const bool ok = ctx_.policy->reload("prompt");
        return ok ? "reloaded: generation " + std::to_string(ctx_.policy->status().generation) + "\n"
                  : "reload failed, generation " + std::to_string(ctx_.policy->status().generation) +
                        " stays in force: " + ctx_.policy->status().last_error + "\n";
    }
    if (w[0] == "reopen" && w.size() == 2 && w[1] == "logs") {
        return ctx_.reopen_logs ? ctx_.reopen_logs() : "reopen logs: no log to reopen\n";
    }
    if (w[0] == "set" && w.size() == 3 && w[1] == "stats-interval") {
        char* end = nullptr;
        const double v = std::strtod(w[2].c_str(), &end);
        if (*end != '\0' || !(v >= 0) || v > 86400) {
            return "set stats-interval: S must be seconds from 0 to 86400\n";
        }
        ctx_.options->stats_interval_s = v;
        return "stats-interval " + w[2] + " s\n";
    }
    return "unknown command '" + line + "' (help lists them)\n";
}

std::string Prompt::show_port_stats() {
    std::vector<const dp::Worker*> ws(ctx_.workers.begin(), ctx_.workers.end());
    StatsSnapshot s = collect_stats(ctx_.ports, ws, true);
    const double t = now_s();
    const double dt = have_last_ ? t - last_time_ : 0;
    std::string out;
    char buf[256];
    for (const PortStats& p : s.ports) {
        std::snprintf(buf, sizeof(buf),
                      "port %u (%s)\n  rx %" PRIu64 " packets %" PRIu64 " bytes  tx %" PRIu64 " packets %" PRIu64
                      " bytes  missed %" PRIu64 "\n",
                      p.port, p.driver.c_str(), p.total.rx_packets, p.total.rx_bytes, p.total.tx_packets,
                      p.total.tx_bytes, p.imissed);
        out += buf;
        if (dt > 0) {
            for (const PortStats& q : last_.ports) {
                if (q.port == p.port) {
                    std::snprintf(buf, sizeof(buf), "  rx %.0f pps %.2f Mbit/s  tx %.0f pps %.2f Mbit/s\n",
                                  static_cast<double>(p.total.rx_packets - q.total.rx_packets) / dt,
                                  static_cast<double>(p.total.rx_bytes - q.total.rx_bytes) * 8 / dt / 1e6,
                                  static_cast<double>(p.total.tx_packets - q.total.tx_packets) / dt,
                                  static_cast<double>(p.total.tx_bytes - q.total.tx_bytes) * 8 / dt / 1e6);
                    out += buf;
                }
            }
        }
    }
    std::snprintf(buf, sizeof(buf), "dropped %" PRIu64 ", flows active %" PRIu64 "\n", s.dropped, s.flows_active);
    out += buf;
    last_ = std::move(s);
    have_last_ = true;
    last_time_ = t;
    return out;
}

void Prompt::show_flows(unsigned n) {
    if (ctx_.queries == nullptr) {
        print("show flows: the workers cannot be asked here\n");
        return;
    }
    waiting_ = true;
    ctx_.queries->top_flows(n, [this](TopFlowsAnswer&& a) {
        waiting_ = false;
        print(format_flows(a));
    });
}

std::string Prompt::format_flows(const TopFlowsAnswer& a) const {
    if (a.stopping) {
        return "show flows: l7gate is stopping\n";
    }
    const std::vector<dp::FlowSummary>& all = a.flows;
    std::string out = "flow                                             protocol        host                     "
                      "   packets        bytes verdict        reason / risks\n";
    char buf[512];
    for (const dp::FlowSummary& f : all) {
        const unsigned c = f.client_slot & 1u;
        const std::string flow = std::string(f.key.proto == 6 ? "TCP " : f.key.proto == 17 ? "UDP " : "IP  ") +
                                 addr(f.key.addr[c], f.key.ip_version, f.key.port[c]) + " > " +
                                 addr(f.key.addr[c ^ 1], f.key.ip_version, f.key.port[c ^ 1]);
        const unsigned id = f.app_proto != 0 ? f.app_proto : f.master_proto;
        const std::string verdict =
            verdict_name(f.action, ctx_.policy != nullptr ? ctx_.policy->current() : nullptr);
        std::string why = f.reason != 0 && ctx_.reasons != nullptr ? ctx_.reasons->name(f.reason) : "";
        for (unsigned r = 0; r < 64; ++r) {
            if ((f.risk >> r) & 1u) {
                why += std::string(why.empty() ? "" : "; ") + NdpiNames::risk(r);
            }
        }
        std::snprintf(buf, sizeof(buf), "%-48s %-15s %-24.24s %10" PRIu64 " %12" PRIu64 " %-14s %s\n",
                      flow.c_str(), ctx_.names->protocol(id).c_str(), f.host, f.packets, f.bytes, verdict.c_str(),
                      why.c_str());
        out += buf;
    }
    if (all.empty()) {
        out += "(no active flows)\n";
    }
    const auto list = [](const std::vector<unsigned>& ws) {
        std::string l;
        for (unsigned w : ws) {
            l += (l.empty() ? "" : ", ") + std::to_string(w);
        }
        return l;
    };
    if (!a.timed_out.empty()) {
        out += "partial: no answer within " + std::to_string(ctx_.queries->timeout().count()) +
               " ms from worker(s) " + list(a.timed_out) + " (their flows are not listed)\n";
    }
    if (!a.busy.empty()) {
        out += "partial: worker(s) " + list(a.busy) +
               " still owe answers to earlier queries and were not asked (their flows are not listed)\n";
    }
    return out;
}

std::string Prompt::show_hosts() {
    if (ctx_.hosts == nullptr) {
        return "no host scores\n";
    }
    std::string out = "host                                      score   as client   as server  blocked\n";
    char buf[256];
    const auto top = ctx_.hosts->top(20);
    for (const HostInfo& h : top) {
        std::snprintf(buf, sizeof(buf), "%-40s %7" PRIu64 " %11" PRIu64 " %11" PRIu64 "  %s\n", h.host.c_str(), h.score,
                      h.client_score, h.server_score,
                      h.blocked ? ("yes, " + std::to_string(static_cast<int>(h.blocked_for_s + 0.5)) + " s left").c_str()
                                : "no");
        out += buf;
    }
    if (top.empty()) {
        out += "(no host has a risk score in the window)\n";
    }
    std::snprintf(buf, sizeof(buf), "blocked now %zu, blocks since start %" PRIu64 "\n", ctx_.hosts->blocked_count(),
                  ctx_.hosts->blocks_total());
    return out + buf;
}

std::string Prompt::show_policy() {
    if (ctx_.policy == nullptr || ctx_.policy->current() == nullptr) {
        return "no policy: every flow passes (start with --policy FILE)\n";
    }
    const dp::PolicySnapshot* p = ctx_.policy->current();
    const ReloadStatus& s = ctx_.policy->status();
    std::ostringstream o;
    o << "source " << p->source << "\ngeneration " << s.generation << "\npolicies " << p->policies.size()
      << ", pools " << p->pool_names.size() << ", markers " << p->markers.size() << ", shapers "
      << std::count_if(p->shapers.begin(), p->shapers.end(), [](const dp::ShaperProfile& s) { return s.defined; })
      << ", hostname regexes " << p->regex_count << ", countries " << p->countries.size()
      << "\nreloads ok " << s.reloads_ok << ", failed " << s.reloads_failed << ", last "
      << (s.last_reload_success ? "succeeded" : "failed: " + s.last_error) << "\n";
    return o.str();
}

} // namespace l7gate::ctl
