# JSON Schema: the exact numbers, the tables and their loader, the validator,
# the compiler (files, refs, OpenAPI), `vakt validate`, and the
# JSON-Schema-Test-Suite (read from VAKT_VECTORS_DIR at run time).
set(VAKT_SCHEMA_TEST_LIBS vakt::compiler nlohmann_json::nlohmann_json PkgConfig::RE2)
vakt_test(schema_suite_test
          SOURCES ${CMAKE_CURRENT_LIST_DIR}/schema_suite_test.cc
          LIBS ${VAKT_SCHEMA_TEST_LIBS})
vakt_test(schema_test
          SOURCES ${CMAKE_CURRENT_LIST_DIR}/schema_test.cc ${CMAKE_CURRENT_LIST_DIR}/schema_openapi_test.cc
          LIBS ${VAKT_SCHEMA_TEST_LIBS})
vakt_test(schema_cli_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/schema_cli_test.cc
          LIBS nlohmann_json::nlohmann_json)
target_compile_definitions(schema_cli_test PRIVATE VAKT_BINARY="$<TARGET_FILE:vakt>")
add_dependencies(schema_cli_test vakt)
