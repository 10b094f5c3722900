# The enforcing proxy and its upstream client against a scripted upstream,
# directly and through an HttpServer in proxy mode (the daemon's wiring).
if(TARGET vakt_agent_proxy)
  vakt_test(agent_proxy_test SOURCES agent_proxy_test.cc LIBS vakt::agent_proxy vakt::compiler)
endif()
