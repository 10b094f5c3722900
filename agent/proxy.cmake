# The enforcing proxy (proxy.h): requests and responses decided in the
# request path, with a bounded HTTP client to the upstream (upstream.h).
if(TARGET vakt_agent_http)
  add_library(vakt_agent_proxy upstream.cc proxy.cc)
  add_library(vakt::agent_proxy ALIAS vakt_agent_proxy)
  vakt_target_defaults(vakt_agent_proxy)
  target_link_libraries(vakt_agent_proxy PUBLIC vakt::agent vakt::agent_http)
endif()
