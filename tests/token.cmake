# Test-token tooling (compiler/token_tool.cc) and the `vakt token` CLI,
# including examples/healthcare/keys/generate.sh run into a scratch folder.
vakt_test(token_tool_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/token_tool_test.cc
          LIBS vakt::compiler vakt::bytecode OpenSSL::Crypto simdjson::simdjson)
vakt_test(token_cli_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/token_cli_test.cc
          LIBS vakt::compiler vakt::bytecode OpenSSL::Crypto simdjson::simdjson)
target_compile_definitions(token_cli_test PRIVATE VAKT_BINARY="$<TARGET_FILE:vakt>")
add_dependencies(token_cli_test vakt)
