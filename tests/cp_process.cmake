# The `vakt-controlplane` binary as a real process on loopback: plain mode
# with agents, admin API, SIGTERM and restart; refusals at start; TLS and
# mutual TLS with certificates made by the openssl CLI at test time; and
# SIGKILL during publishing (crash consistency of the whole server).
vakt_test(cp_process_test SOURCES cp_process_test.cc LIBS vakt::controlplane)
target_compile_definitions(cp_process_test PRIVATE
  VAKT_CONTROLPLANE_BINARY="$<TARGET_FILE:vakt-controlplane>")
add_dependencies(cp_process_test vakt-controlplane)
