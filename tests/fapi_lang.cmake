# FAPI 2.0 in the language (issue 3): issuers, `use fapi2 { ... }`, has_scope,
# the new test items and their runner, parse errors and formatting.
vakt_test(fapi_lang_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/fapi_lang_test.cc
          LIBS vakt::compiler vakt::bytecode nlohmann_json::nlohmann_json)
