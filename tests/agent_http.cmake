# The agent's HTTP interfaces: forward-auth translation and answers
# (agent/forward_auth.cc) as pure functions, and agent/http_server.cc in
# process over real loopback sockets (every endpoint, limits, timeouts).
vakt_test(agent_http_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/agent_http_test.cc
          LIBS vakt::agent_http vakt::agent vakt::compiler vakt::bytecode)

# The real-proxy integration test: Debian's nginx (TLS 1.2/1.3, optional
# client certificates, auth_request) in front of the `vakt-agent` binary
# and an upstream inside the test; curl as the client. Without the daemon
# target an in-process HttpServer stands in. Skips loudly without nginx/curl.
vakt_test(agent_nginx_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/agent_nginx_test.cc
          LIBS vakt::compiler vakt::agent_http vakt::agent vakt::bytecode)
if(TARGET vakt-agent)
  target_compile_definitions(agent_nginx_test PRIVATE
    VAKT_AGENT_BINARY="$<TARGET_FILE:vakt-agent>")
  add_dependencies(agent_nginx_test vakt-agent)
endif()
