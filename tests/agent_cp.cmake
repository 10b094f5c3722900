# The agent's last-good bundle cache (format, atomic writes, corruption) and
# its control-plane client against the real control plane in process and a
# hostile fake AgentService, both over gRPC on loopback.
vakt_test(agent_cache_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/agent_cache_test.cc
          LIBS vakt::agent_cache)
vakt_test(agent_cp_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/agent_cp_test.cc
          LIBS vakt::agent_cp vakt::controlplane vakt::compiler)
