# JSON Schema: the exact numbers, the tables and their loader, the validator,
# the compiler (files, refs, OpenAPI), `vakt validate`, and the
# JSON-Schema-Test-Suite (read from VAKT_VECTORS_DIR at run time).
# The schema compiler sources are compiled into the tests directly (they
# need nothing else of vakt::compiler), so these tests build on their own.
set(VAKT_SCHEMA_COMPILER_SOURCES
    ${CMAKE_SOURCE_DIR}/compiler/schema_compile.cc
    ${CMAKE_SOURCE_DIR}/compiler/openapi.cc)
set(VAKT_SCHEMA_TEST_LIBS vakt::bytecode nlohmann_json::nlohmann_json yaml-cpp PkgConfig::RE2)
vakt_test(schema_suite_test
          SOURCES ${CMAKE_CURRENT_LIST_DIR}/schema_suite_test.cc ${VAKT_SCHEMA_COMPILER_SOURCES}
          LIBS ${VAKT_SCHEMA_TEST_LIBS})
vakt_test(schema_test
          SOURCES ${CMAKE_CURRENT_LIST_DIR}/schema_test.cc ${CMAKE_CURRENT_LIST_DIR}/schema_openapi_test.cc
                  ${VAKT_SCHEMA_COMPILER_SOURCES}
          LIBS ${VAKT_SCHEMA_TEST_LIBS})
vakt_test(schema_cli_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/schema_cli_test.cc
          LIBS nlohmann_json::nlohmann_json)
target_compile_definitions(schema_cli_test PRIVATE VAKT_BINARY="$<TARGET_FILE:vakt>")
add_dependencies(schema_cli_test vakt)
