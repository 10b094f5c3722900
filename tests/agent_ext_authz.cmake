# The Envoy ext_authz interface (agent/ext_authz.{h,cc}) with the compiled
# healthcare bundle, a real Agent and an in-process gRPC server on loopback;
# the CIDR and gRPC-peer helpers (agent/net_util.{h,cc}).
if(TARGET vakt_agent_ext_authz)
  vakt_test(agent_ext_authz_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/agent_ext_authz_test.cc
            LIBS vakt::agent_ext_authz vakt::compiler)
endif()
