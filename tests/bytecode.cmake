# Bytecode container and verifier: round trips, every corruption branch of
# Parse(), every verifier rule, and the bundle fuzzer (replayed over its
# corpus plus a bounded random-mutation loop as an ordinary test; a libFuzzer
# target when VAKT_FUZZ is on).
set(VAKT_BC_TESTS ${CMAKE_CURRENT_LIST_DIR})

vakt_test(bundle_test SOURCES ${VAKT_BC_TESTS}/bundle_test.cc LIBS vakt::bytecode)
vakt_test(verifier_test SOURCES ${VAKT_BC_TESTS}/verifier_test.cc LIBS vakt::bytecode)

# The fuzz entry point with a small main that replays a corpus directory and
# then mutates its valid bundles (tests/fuzz/bundle_fuzzer.cc).
add_executable(bundle_fuzz_replay ${VAKT_BC_TESTS}/fuzz/bundle_fuzzer.cc)
target_compile_options(bundle_fuzz_replay PRIVATE ${VAKT_WARNINGS})
target_compile_definitions(bundle_fuzz_replay PRIVATE VAKT_FUZZ_REPLAY_MAIN=1)
target_link_libraries(bundle_fuzz_replay PRIVATE vakt::bytecode)
add_test(NAME bundle_fuzz_replay
         COMMAND bundle_fuzz_replay ${VAKT_BC_TESTS}/fuzz/corpus/bundle 100000)
set_tests_properties(bundle_fuzz_replay PROPERTIES TIMEOUT 600)

if(VAKT_FUZZ)
  add_executable(bundle_fuzzer ${VAKT_BC_TESTS}/fuzz/bundle_fuzzer.cc)
  target_compile_options(bundle_fuzzer PRIVATE ${VAKT_WARNINGS} -fsanitize=fuzzer)
  target_link_options(bundle_fuzzer PRIVATE -fsanitize=fuzzer)
  target_link_libraries(bundle_fuzzer PRIVATE vakt::bytecode)
endif()
