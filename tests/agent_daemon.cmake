# The vakt-agent binary as a process: --help, config file, refused starts,
# SIGTERM, and starting with the control plane away (cached or corrupt).
if(TARGET vakt-agent)
  vakt_test(agent_daemon_test SOURCES agent_daemon_test.cc
    LIBS vakt::agent_cache vakt::compiler vakt::controlplane nlohmann_json::nlohmann_json)
  target_compile_definitions(agent_daemon_test PRIVATE
    VAKT_AGENT_BINARY="$<TARGET_FILE:vakt-agent>")
  add_dependencies(agent_daemon_test vakt-agent)
endif()
