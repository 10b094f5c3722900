// DecisionLog -> vakt.v1.DecisionLogBatch (proto/vakt/v1/agent.proto). Kept
// apart from decision_log.cc so the core library vakt::agent_log needs no
// protobuf: only the daemon's control-plane client links this
// (vakt::agent_log_proto). Tested by tests/agent_log_test.cc.
#include <algorithm>

#include "agent/decision_log.h"
#include "vakt/v1/agent.pb.h"

namespace vakt::agent {

bool FillBatch(DecisionLog& log, size_t max, vakt::v1::AgentMessage* out) {
  // Each event costs a tag and a length (<= 5 bytes) inside the batch.
  std::vector<DecisionEvent> events = log.TakeBatch(max, kMaxBatchWireBytes - 64);
  if (events.empty()) return false;
  vakt::v1::DecisionLogBatch* batch = out->mutable_decisions();
  batch->Clear();
  batch->set_dropped_total(log.dropped());
  for (DecisionEvent& e : events) {
    vakt::v1::DecisionEvent* p = batch->add_events();
    p->set_time_unix_ms(e.time_unix_ms);
    p->set_interface(std::move(e.interface));
    p->set_method(std::move(e.method));
    p->set_path(std::move(e.path));
    p->set_query(std::move(e.query));
    p->set_route(std::move(e.route));
    p->set_allow(e.allow);
    p->set_status(e.status);
    p->set_rule(std::move(e.rule));
    p->set_error(std::move(e.error));
    p->set_bundle_version(e.bundle_version);
    p->set_latency_nanos(e.latency_nanos);
    p->set_sub(std::move(e.sub));
    p->set_client_id(std::move(e.client_id));
    p->set_jti(std::move(e.jti));
    p->set_response(e.response);
    p->set_upstream_status(e.upstream_status);
    for (auto& [name, value] : e.headers) {
      vakt::v1::LoggedHeader* h = p->add_headers();
      h->set_name(std::move(name));
      h->set_value(std::move(value));
    }
  }
  return true;
}

}  // namespace vakt::agent
