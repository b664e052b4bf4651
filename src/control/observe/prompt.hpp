#pragma once
// The testpmd-like interactive prompt (-i/--interactive). A reader thread reads lines (with
// libedit's line editing and history on a terminal, plain lines from a pipe) and queues
// them; the control thread runs each command at its next tick, so commands see the same
// state the control loop owns and nothing else touches it. End of input means quit.
// Commands that ask the workers ("show flows") never wait on the control thread: they send
// the question through WorkerQueries and the answer is printed from a later tick, when every
// worker answered or the timeout passed; lines typed meanwhile wait their turn.

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control/observe/stats_report.hpp"

namespace l7gate::dp {
class Worker;
}

namespace l7gate::ctl {

class PolicyManager;
class HostScores;
class NdpiNames;
class ReasonRegistry;
class WorkerQueries;
struct TopFlowsAnswer;
struct Options;

struct PromptContext {
    std::vector<uint16_t> ports;
    std::vector<dp::Worker*> workers;
    PolicyManager* policy = nullptr;
    const NdpiNames* names = nullptr;
    const ReasonRegistry* reasons = nullptr;
    Options* options = nullptr;          // set stats-interval changes it
    const HostScores* hosts = nullptr;
    std::function<std::string()> reopen_logs;  // reopen logs: the record stream's sinks
    WorkerQueries* queries = nullptr;    // show flows (null: it says the workers cannot be asked)
    // Where output goes (tests); empty: stdout.
    std::function<void(const std::string&)> output;
};

class Prompt {
public:
    explicit Prompt(PromptContext ctx);
    ~Prompt();
    Prompt(const Prompt&) = delete;
    Prompt& operator=(const Prompt&) = delete;

    void start();
    // Control thread: runs queued commands; returns false once the user asked to quit.
    bool poll();

    // Runs one command line and returns its output (also used by tests). A command that asks
    // the workers returns "" and prints its answer later (waiting() until then).
    std::string execute(const std::string& line);
    // A command's answer from the workers is still due.
    bool waiting() const { return waiting_; }

private:
    // What the reader thread shares with the control thread. The thread holds a reference:
    // it is detached (blocked in a read) when the Prompt goes at exit and may still queue a
    // line or the end of input after that.
    struct Inbox {
        std::mutex mutex;
        std::deque<std::string> lines;
        bool eof = false;
    };
    static void reader(std::shared_ptr<Inbox> inbox);
    std::string show_port_stats();
    void show_flows(unsigned n);
    std::string format_flows(const TopFlowsAnswer& a) const;
    void print(const std::string& text);
    std::string show_policy();
    std::string show_hosts();

    PromptContext ctx_;
    std::thread thread_;
    std::shared_ptr<Inbox> inbox_ = std::make_shared<Inbox>();
    bool quit_ = false;
    bool waiting_ = false;  // show flows sent, its answer not printed yet
    StatsSnapshot last_;
    bool have_last_ = false;
    double last_time_ = 0;
};

} // namespace l7gate::ctl
