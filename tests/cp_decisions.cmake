# Decision logs end to end in process (tests/cp_harness.h): DecisionLog ->
# FillBatch -> AgentService stream -> the control plane's bounded store ->
# AdminService.ListDecisions and `vakt decisions`; stream bounds and roles.
vakt_test(cp_decisions_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cp_decisions_test.cc
          LIBS vakt::controlplane vakt::agent_log_proto)
target_compile_definitions(cp_decisions_test PRIVATE VAKT_BINARY="$<TARGET_FILE:vakt>")
add_dependencies(cp_decisions_test vakt)
