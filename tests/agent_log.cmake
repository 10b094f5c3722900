# Decision logs on the agent (agent/decision_log.h): masking, the bounded
# ring and its drop count, batches, concurrency, the protobuf conversion;
# real tokens and DPoP proofs from compiler/token_tool.h.
vakt_test(agent_log_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/agent_log_test.cc
          LIBS vakt::agent_log_proto vakt::compiler)
