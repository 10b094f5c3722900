# The control-plane client (cp_client.h): the AgentService.Stream gRPC
# client that applies pushed bundles and revocations and ACKs/NACKs them.
add_library(vakt_agent_cp cp_client.cc)
add_library(vakt::agent_cp ALIAS vakt_agent_cp)
vakt_target_defaults(vakt_agent_cp)
target_link_libraries(vakt_agent_cp PUBLIC vakt::agent vakt::agent_cache vakt::proto
                      PRIVATE spdlog::spdlog)
