# The `vakt-agent` daemon: the core plus every part (decision interfaces,
# control-plane client, bundle cache, decision logs). Built once all parts
# exist (they arrive as separate fragments).
if(TARGET vakt_agent_http AND TARGET vakt_agent_ext_authz AND TARGET vakt_agent_cp
   AND TARGET vakt_agent_log AND TARGET vakt_agent_log_proto AND TARGET vakt_agent_cache
   AND TARGET vakt_agent_proxy)
  add_executable(vakt-agent main.cc)
  target_compile_options(vakt-agent PRIVATE ${VAKT_WARNINGS})
  target_link_libraries(vakt-agent PRIVATE vakt::agent vakt_agent_http vakt_agent_ext_authz
    vakt_agent_cp vakt_agent_log vakt_agent_log_proto vakt_agent_cache vakt_agent_proxy
    spdlog::spdlog)
endif()
