# Network helpers the decision interfaces share (CIDR sets of trusted
# proxies, gRPC peer strings). Included by agent/CMakeLists.txt.
add_library(vakt_agent_net net_util.cc)
add_library(vakt::agent_net ALIAS vakt_agent_net)
vakt_target_defaults(vakt_agent_net)
target_link_libraries(vakt_agent_net PUBLIC vakt::bytecode)
