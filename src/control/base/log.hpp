#pragma once
// One logger for the control plane: structured lines "TIME LEVEL component: message" on
// stderr. DPDK's own log stream goes to the same place (main.cpp). Never used by workers.

#include <string>

namespace l7gate::ctl {

enum class LogLevel { Error = 0, Warning = 1, Info = 2, Debug = 3 };

void log_set_level(LogLevel l);
bool log_parse_level(const std::string& s, LogLevel& out);
void log(LogLevel l, const char* component, const std::string& msg);

inline void log_error(const char* c, const std::string& m) { log(LogLevel::Error, c, m); }
inline void log_warning(const char* c, const std::string& m) { log(LogLevel::Warning, c, m); }
inline void log_info(const char* c, const std::string& m) { log(LogLevel::Info, c, m); }

} // namespace l7gate::ctl
