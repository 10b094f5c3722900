# The `vakt` admin subcommands (controlplane/admin_cli.cc) against a real
# `vakt-controlplane` process on loopback, plus the client library's own
# checks (token file, publish file walk, status mapping, JSON).
vakt_test(admin_cli_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/admin_cli_test.cc
          LIBS vakt::admin_client vakt::proto nlohmann_json::nlohmann_json)
target_compile_definitions(admin_cli_test PRIVATE
  VAKT_BINARY="$<TARGET_FILE:vakt>"
  VAKT_CONTROLPLANE_BINARY="$<TARGET_FILE:vakt-controlplane>")
add_dependencies(admin_cli_test vakt vakt-controlplane)
