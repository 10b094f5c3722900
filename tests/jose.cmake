# Tests of the JOSE primitives (bytecode/jose.cc): unit tests and the
# Wycheproof vectors in ${VAKT_VECTORS_DIR}/wycheproof.
vakt_test(jose_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/jose_test.cc
          LIBS vakt::bytecode OpenSSL::Crypto simdjson::simdjson)
vakt_test(wycheproof_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/wycheproof_test.cc
          LIBS vakt::bytecode OpenSSL::Crypto simdjson::simdjson)
