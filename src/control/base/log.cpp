#include "control/base/log.hpp"

#include <cstdio>
#include <ctime>
#include <mutex>

namespace l7gate::ctl {

namespace {
LogLevel g_level = LogLevel::Info;
std::mutex g_mutex;  // the exporter's HTTP threads may log too
constexpr const char* kNames[] = {"error", "warning", "info", "debug"};
} // namespace

void log_set_level(LogLevel l) { g_level = l; }

bool log_parse_level(const std::string& s, LogLevel& out) {
    for (int i = 0; i < 4; ++i) {
        if (s == kNames[i]) {
            out = static_cast<LogLevel>(i);
            return true;
        }
    }
    return false;
}

void log(LogLevel l, const char* component, const std::string& msg) {
    if (l > g_level) {
        return;
    }
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    tm t{};
    gmtime_r(&ts.tv_sec, &t);
    char when[32];
    std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &t);
    std::lock_guard<std::mutex> g(g_mutex);
    std::fprintf(stderr, "%s.%03ldZ %s l7gate.%s: %s\n", when, ts.tv_nsec / 1000000, kNames[static_cast<int>(l)],
                 component, msg.c_str());
    std::fflush(stderr);
}

} // namespace l7gate::ctl
