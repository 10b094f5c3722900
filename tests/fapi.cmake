# FAPI runtime state (issue 3): replay cache, revocation, token cache.
vakt_test(fapi_state_test SOURCES fapi_state_test.cc LIBS vakt::bytecode)
vakt_test(fapi_http_test SOURCES fapi_http_test.cc LIBS vakt::bytecode)
