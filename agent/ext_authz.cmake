# Envoy external authorization (gRPC envoy.service.auth.v3.Authorization/
# Check) over the agent core, and the network helpers (CIDRs, gRPC peers)
# the decision interfaces share. Included by agent/CMakeLists.txt.
add_library(vakt_agent_net net_util.cc)
add_library(vakt::agent_net ALIAS vakt_agent_net)
vakt_target_defaults(vakt_agent_net)
target_link_libraries(vakt_agent_net PUBLIC vakt::bytecode)

add_library(vakt_agent_ext_authz ext_authz.cc)
add_library(vakt::agent_ext_authz ALIAS vakt_agent_ext_authz)
vakt_target_defaults(vakt_agent_ext_authz)
target_link_libraries(vakt_agent_ext_authz
  PUBLIC vakt::agent vakt::agent_net vakt::envoy_proto
  PRIVATE spdlog::spdlog)
