# Compiler: semantic checks, golden disassembly, differential VM-vs-reference,
# the CLI contract, the healthcare example and its demo.
vakt_test(compiler_test SOURCES compiler_test.cc LIBS vakt::compiler)
vakt_test(golden_test SOURCES golden_test.cc LIBS vakt::compiler)
vakt_test(differential_test SOURCES differential_test.cc LIBS vakt::compiler nlohmann_json::nlohmann_json)
vakt_test(cli_test SOURCES cli_test.cc LIBS vakt::compiler)
target_compile_definitions(cli_test PRIVATE VAKT_BINARY="$<TARGET_FILE:vakt>")
add_dependencies(cli_test vakt)

add_test(NAME healthcare_policy_tests
         COMMAND vakt test ${CMAKE_SOURCE_DIR}/examples/healthcare/policy)
# Written and generated (ownership) tests: every count line says 0 failed,
# and no test, written or generated, prints FAIL.
set_tests_properties(healthcare_policy_tests PROPERTIES
                     PASS_REGULAR_EXPRESSION " passed, 0 failed"
                     FAIL_REGULAR_EXPRESSION "FAIL")
add_test(NAME healthcare_demo
         COMMAND bash ${CMAKE_SOURCE_DIR}/examples/healthcare/demo.sh $<TARGET_FILE:vakt>)
set_tests_properties(healthcare_demo PROPERTIES TIMEOUT 300)
add_test(NAME healthcare_fmt_check
         COMMAND vakt fmt --check ${CMAKE_SOURCE_DIR}/examples/healthcare/policy)
vakt_test(docs_test SOURCES docs_test.cc LIBS vakt::compiler)
vakt_test(shape_test SOURCES shape_test.cc LIBS vakt::compiler PkgConfig::RE2)
