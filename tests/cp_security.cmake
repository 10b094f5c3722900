# The control plane's security pieces: bundle signatures (sign and verify,
# key files, the Wycheproof Ed25519 vectors), secret files, API tokens,
# roles and bearer parsing.
vakt_test(cp_security_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cp_security_test.cc
          LIBS vakt::controlplane OpenSSL::Crypto simdjson::simdjson)
