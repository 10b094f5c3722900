# The DSL front end: parser (AST shape, precedence, every error branch,
# limits), formatter (canonical layout, comments, idempotence), and the
# parser fuzz target, replayed over its seed corpus as an ordinary test (a
# libFuzzer target when VAKT_FUZZ is on).
set(VAKT_DSL_TESTS ${CMAKE_CURRENT_LIST_DIR})
get_filename_component(VAKT_DSL_ROOT ${VAKT_DSL_TESTS} DIRECTORY)

vakt_test(parser_test SOURCES ${VAKT_DSL_TESTS}/parser_test.cc LIBS vakt::dsl)
vakt_test(formatter_test SOURCES ${VAKT_DSL_TESTS}/formatter_test.cc LIBS vakt::dsl)

# The fuzz entry point with a small main that runs it over every file of
# tests/fuzz/corpus/parser (and fails if there are none).
add_executable(parser_fuzz_replay ${VAKT_DSL_TESTS}/fuzz/parser_fuzzer.cc)
target_compile_options(parser_fuzz_replay PRIVATE ${VAKT_WARNINGS})
target_include_directories(parser_fuzz_replay PRIVATE ${VAKT_DSL_ROOT})
target_compile_definitions(parser_fuzz_replay PRIVATE
  VAKT_FUZZ_REPLAY_MAIN=1
  VAKT_SOURCE_DIR="${VAKT_DSL_ROOT}")
target_link_libraries(parser_fuzz_replay PRIVATE vakt::dsl)
add_test(NAME parser_fuzz_replay COMMAND parser_fuzz_replay)
set_tests_properties(parser_fuzz_replay PROPERTIES TIMEOUT 300)

if(VAKT_FUZZ)
  add_executable(parser_fuzzer ${VAKT_DSL_TESTS}/fuzz/parser_fuzzer.cc)
  target_compile_options(parser_fuzzer PRIVATE ${VAKT_WARNINGS} -fsanitize=fuzzer)
  target_link_options(parser_fuzzer PRIVATE -fsanitize=fuzzer)
  target_include_directories(parser_fuzzer PRIVATE ${VAKT_DSL_ROOT})
  target_link_libraries(parser_fuzzer PRIVATE vakt::dsl)
endif()
