#include "control/runtime/service.hpp"

namespace l7gate::ctl {

void ServiceRuntime::add(Service& s, Clock::duration budget) {
    services_.push_back({&s, budget});
    ServiceStats st;
    st.name = s.name();
    st.budget_s = std::chrono::duration<double>(budget).count();
    stats_.push_back(st);
}

bool ServiceRuntime::tick() {
    bool again = false;
    for (size_t i = 0; i < services_.size(); ++i) {
        const Entry& e = services_[i];
        ServiceStats& st = stats_[i];
        const Clock::time_point t0 = Clock::now();
        again = e.service->run(t0, t0 + e.budget) || again;
        const Clock::duration took = Clock::now() - t0;
        const double s = std::chrono::duration<double>(took).count();
        st.seconds_total += s;
        st.runs += 1;
        st.max_s = s > st.max_s ? s : st.max_s;
        if (took > e.budget) {
            st.overruns += 1;
        }
        st.backlog = e.service->backlog();
    }
    return again;
}

} // namespace l7gate::ctl
