#include "control/policy/manager.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <rte_rcu_qsbr.h>

#include "control/base/log.hpp"
#include "control/policy/loader.hpp"

namespace l7gate::ctl {

namespace {

std::string absolute(const std::string& p) {
    char buf[PATH_MAX];
    if (realpath(p.c_str(), buf) != nullptr) {
        return buf;
    }
    if (!p.empty() && p[0] == '/') {
        return p;
    }
    char cwd[PATH_MAX];
    return getcwd(cwd, sizeof(cwd)) != nullptr ? std::string(cwd) + "/" + p : p;
}

std::string dir_of(const std::string& p) {
    const size_t s = p.rfind('/');
    return s == std::string::npos ? "." : (s == 0 ? "/" : p.substr(0, s));
}

double unix_now() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

} // namespace

PolicyManager::PolicyManager(std::string path, std::string format, CompileContext ctx, rte_rcu_qsbr* qsbr)
    : path_(std::move(path)), format_(std::move(format)), ctx_(ctx), qsbr_(qsbr), reclaimer_(ctx.reasons) {
    inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_fd_ < 0) {
        log_warning("ctl.policy", std::string("inotify unavailable, reload on SIGHUP only: ") + std::strerror(errno));
    }
}

PolicyManager::~PolicyManager() {
    if (inotify_fd_ >= 0) {
        close(inotify_fd_);
    }
    slot_.store(nullptr, std::memory_order_release);
}

bool PolicyManager::load_initial(std::vector<PolicyError>& errors) {
    ctx_.generation = 1;
    current_ = compile_policy_file(path_, format_, ctx_, errors);
    if (current_ == nullptr) {
        return false;
    }
    slot_.store(current_.get(), std::memory_order_release);
    status_.generation = current_->generation;
    status_.applied_generation = ack_ ? 0 : status_.generation;
    status_.last_reload_unix = unix_now();
    watch_files();
    return true;
}

void PolicyManager::set_acks(size_t workers, AckSource ack) {
    ack_workers_ = workers;
    ack_ = std::move(ack);
    if (!ack_) {
        status_.applied_generation = status_.generation;
    }
}

void PolicyManager::check_acks(Clock::time_point now) {
    if (!ack_) {
        return;
    }
    uint64_t lowest = UINT64_MAX;
    std::string behind;
    for (size_t w = 0; w < ack_workers_; ++w) {
        const uint64_t g = ack_(w);
        lowest = g < lowest ? g : lowest;
        if (g < status_.generation) {
            behind += (behind.empty() ? "" : ", ") + std::to_string(w) + " (generation " + std::to_string(g) + ")";
        }
    }
    status_.applied_generation = lowest == UINT64_MAX ? status_.generation : lowest;
    if (!status_.awaiting_ack) {
        return;
    }
    const auto waited_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - ack_since_).count();
    if (behind.empty()) {
        status_.awaiting_ack = false;
        log_info("ctl.policy", "generation " + std::to_string(status_.generation) + " applied by every worker" +
                                   (ack_reported_ ? ", late" : "") + " (" + std::to_string(waited_ms) +
                                   " ms after the reload)");
        ack_reported_ = false;
        return;
    }
    if (!ack_reported_ && now - ack_since_ >= kAckTimeout) {
        ack_reported_ = true;
        status_.reloads_unacknowledged += 1;
        log_error("ctl.policy", "generation " + std::to_string(status_.generation) + " NOT applied: worker(s) " + behind +
                                    " did not take it within " + std::to_string(waited_ms) +
                                    " ms (stalled?); it applies when they resume");
    }
}

void PolicyManager::watch_files() {
    if (inotify_fd_ < 0) {
        return;
    }
    for (int wd : watches_) {
        inotify_rm_watch(inotify_fd_, wd);
    }
    watches_.clear();
    files_.clear();
    files_.insert(absolute(path_));
    // List files referenced by the policy: read the config again cheaply (no compile).
    PolicyConfig cfg;
    std::vector<PolicyError> ignored;
    const PolicyFormat f = format_ == "yaml" ? PolicyFormat::Yaml : format_ == "nprobe" ? PolicyFormat::Nprobe : PolicyFormat::Auto;
    load_policy_file(path_, f, cfg, ignored);
    for (const ListSpec& l : cfg.lists) {
        if (!l.file.empty()) {
            files_.insert(absolute(l.file));
        }
    }
    std::set<std::string> dirs;
    for (const std::string& file : files_) {
        dirs.insert(dir_of(file));
    }
    for (const std::string& d : dirs) {
        const int wd = inotify_add_watch(inotify_fd_, d.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE);
        if (wd >= 0) {
            watches_.push_back(wd);
        }
    }
}

void PolicyManager::request_reload(const std::string& why) {
    // An explicit request loads at the next tick, also when a file event was debouncing.
    pending_ = true;
    pending_explicit_ = true;
    pending_why_ = why;
    due_ = Clock::now();
}

bool PolicyManager::reload(const std::string& why) {
    std::vector<PolicyError> errors;
    CompileContext ctx = ctx_;
    uint64_t gen = status_.generation + 1;
    if ((gen & 0xffff) == 0) {
        ++gen;  // flows cache 16 bits of it and 0 means "never evaluated"
    }
    ctx.generation = gen;
    std::unique_ptr<dp::PolicySnapshot> next = compile_policy_file(path_, format_, ctx, errors);
    status_.last_reload_unix = unix_now();
    if (next == nullptr) {
        status_.reloads_failed += 1;
        status_.last_reload_success = false;
        status_.last_error = errors.empty() ? "unknown error" : errors.front().str();
        log_error("ctl.policy", "reload (" + why + ") failed with " + std::to_string(errors.size()) +
                                    " error(s); generation " + std::to_string(status_.generation) + " stays in force");
        for (const PolicyError& e : errors) {
            log_error("ctl.policy", e.str());
        }
        watch_files();  // a list file may have been added: watch it for the fix
        return false;
    }
    // release: the snapshot is fully built before a worker can load its pointer.
    slot_.store(next.get(), std::memory_order_release);
    if (current_ != nullptr) {
        retired_.push_back({qsbr_ != nullptr ? rte_rcu_qsbr_start(qsbr_) : 0, std::move(current_)});
    }
    current_ = std::move(next);
    status_.generation = gen;
    status_.reloads_ok += 1;
    status_.last_reload_success = true;
    status_.last_error.clear();
    if (ack_) {
        // Applied once every worker acknowledged it (check_acks). A reload that replaces one
        // still not applied keeps its start: a stalled worker is reported after kAckTimeout
        // however often the policy changes meanwhile.
        if (!status_.awaiting_ack || ack_reported_) {
            ack_since_ = Clock::now();
            ack_reported_ = false;
        }
        status_.awaiting_ack = true;
        log_info("ctl.policy", "loaded " + path_ + " (" + why + "): generation " + std::to_string(gen) +
                                   " published, waiting for the workers to apply it");
    } else {
        status_.applied_generation = gen;
        log_info("ctl.policy", "reloaded " + path_ + " (" + why + "): generation " + std::to_string(gen));
    }
    watch_files();
    return true;
}

void PolicyManager::poll(Clock::time_point now) {
    if (inotify_fd_ >= 0) {
        alignas(inotify_event) char buf[4096];
        for (;;) {
            const ssize_t n = read(inotify_fd_, buf, sizeof(buf));
            if (n <= 0) {
                break;
            }
            for (ssize_t off = 0; off < n;) {
                const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
                off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
                if (ev->len == 0) {
                    continue;
                }
                // Which directory? Compare by name against every watched file.
                for (const std::string& f : files_) {
                    const size_t slash = f.rfind('/');
                    if (f.compare(slash + 1, std::string::npos, ev->name) == 0 && !pending_explicit_) {
                        // Each event pushes the load back: an editor's write + rename loads once.
                        pending_ = true;
                        pending_why_ = "file change";
                        due_ = now + kDebounce;
                    }
                }
            }
        }
    }
    if (pending_ && now >= due_) {
        pending_ = false;
        pending_explicit_ = false;
        reload(pending_why_);
    }
    check_acks(now);
    // Free what no worker can still see.
    while (!retired_.empty() && (qsbr_ == nullptr || rte_rcu_qsbr_check(qsbr_, retired_.front().token, false) == 1)) {
        retired_.pop_front();
    }
    if (current_ != nullptr) {
        // The oldest generation a worker may still run: the oldest retired snapshot's, else
        // the current one's.
        const dp::PolicySnapshot* oldest = current_.get();
        if (!retired_.empty() && retired_.front().snapshot != nullptr) {
            oldest = retired_.front().snapshot.get();
        }
        reclaimer_.step(oldest->generation, now);
    }
}

} // namespace l7gate::ctl
