# Tests of the JOSE primitives (bytecode/jose.cc): unit tests and the
# Wycheproof vectors in ${VAKT_VECTORS_DIR}/wycheproof.
vakt_test(jose_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/jose_test.cc
          LIBS vakt::bytecode OpenSSL::Crypto simdjson::simdjson)
vakt_test(wycheproof_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/wycheproof_test.cc
          LIBS vakt::bytecode OpenSSL::Crypto simdjson::simdjson)

# The JOSE fuzz target (tests/fuzz/jose_fuzzer.cc): replayed over
# tests/fuzz/corpus/jose plus seeded random mutations as an ordinary test,
# and a libFuzzer target when VAKT_FUZZ is on.
add_executable(jose_fuzz_replay ${CMAKE_CURRENT_LIST_DIR}/fuzz/jose_fuzzer.cc)
target_compile_options(jose_fuzz_replay PRIVATE ${VAKT_WARNINGS})
target_compile_definitions(jose_fuzz_replay PRIVATE
  VAKT_FUZZ_REPLAY_MAIN=1
  VAKT_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
target_link_libraries(jose_fuzz_replay PRIVATE vakt::bytecode simdjson::simdjson)
add_test(NAME jose_fuzz_replay
         COMMAND jose_fuzz_replay ${CMAKE_CURRENT_LIST_DIR}/fuzz/corpus/jose 20000)
set_tests_properties(jose_fuzz_replay PROPERTIES TIMEOUT 300)

if(VAKT_FUZZ)
  add_executable(jose_fuzzer ${CMAKE_CURRENT_LIST_DIR}/fuzz/jose_fuzzer.cc)
  target_compile_options(jose_fuzzer PRIVATE ${VAKT_WARNINGS} -fsanitize=fuzzer)
  target_link_options(jose_fuzzer PRIVATE -fsanitize=fuzzer)
  target_link_libraries(jose_fuzzer PRIVATE vakt::bytecode simdjson::simdjson)
endif()
