# vakt::agent_http: the agent's HTTP/1.1 interfaces (http_server.h): health,
# readiness, Prometheus metrics, POST /v1/check and the reverse-proxy
# forward-auth endpoints (forward_auth.h). Boost.Beast/Asio are header-only
# (Debian libboost-dev); spdlog for logs.
find_package(Boost REQUIRED)

add_library(vakt_agent_http http_server.cc forward_auth.cc)
add_library(vakt::agent_http ALIAS vakt_agent_http)
vakt_target_defaults(vakt_agent_http)
target_link_libraries(vakt_agent_http
  PUBLIC vakt::agent vakt::agent_net
  PRIVATE Boost::headers spdlog::spdlog simdjson::simdjson Threads::Threads)
# Asio without the deprecated io_service names, and with its own error codes
# only (no exceptions thrown across our API: every call passes an error_code).
target_compile_definitions(vakt_agent_http PRIVATE BOOST_ASIO_NO_DEPRECATED)
