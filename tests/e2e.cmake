# The end-to-end demo (scripts/e2e_demo.sh) as a test: control plane, two
# agents in proxy mode, nginx with TLS and client certificates, the records
# service, real tokens and DPoP proofs; every answer checked. Exit 77 (a
# tool missing) is a skip.
if(TARGET vakt-agent)
  add_test(NAME e2e_demo
    COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/e2e_demo.sh ${CMAKE_BINARY_DIR})
  set_tests_properties(e2e_demo PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()
