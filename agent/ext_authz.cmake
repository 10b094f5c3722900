# Envoy external authorization (gRPC envoy.service.auth.v3.Authorization/
# Check) over the agent core. Included by agent/CMakeLists.txt.
add_library(vakt_agent_ext_authz ext_authz.cc)
add_library(vakt::agent_ext_authz ALIAS vakt_agent_ext_authz)
vakt_target_defaults(vakt_agent_ext_authz)
target_link_libraries(vakt_agent_ext_authz
  PUBLIC vakt::agent vakt::agent_net vakt::envoy_proto
  PRIVATE spdlog::spdlog)
