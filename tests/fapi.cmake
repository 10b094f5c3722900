# FAPI runtime state (issue 3): replay cache, revocation, token cache.
vakt_test(fapi_state_test SOURCES fapi_state_test.cc LIBS vakt::bytecode)
vakt_test(fapi_http_test SOURCES fapi_http_test.cc LIBS vakt::bytecode)
# The runtime authenticator (bytecode/fapi_auth.cc): negative matrix and positives
# with tokens, proofs and certificates minted by OpenSSL in the test.
vakt_test(fapi_auth_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/fapi_auth_test.cc
          LIBS vakt::bytecode OpenSSL::Crypto simdjson::simdjson)
