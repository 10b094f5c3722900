# Decision logs (agent/decision_log.h): vakt::agent_log buffers masked
# decision events (vakt::agent only); vakt::agent_log_proto converts them to
# the control-plane message (vakt::proto), for the control-plane client.
add_library(vakt_agent_log decision_log.cc)
add_library(vakt::agent_log ALIAS vakt_agent_log)
vakt_target_defaults(vakt_agent_log)
target_link_libraries(vakt_agent_log PUBLIC vakt::agent)

add_library(vakt_agent_log_proto decision_log_proto.cc)
add_library(vakt::agent_log_proto ALIAS vakt_agent_log_proto)
vakt_target_defaults(vakt_agent_log_proto)
target_link_libraries(vakt_agent_log_proto PUBLIC vakt::agent_log vakt::proto)
