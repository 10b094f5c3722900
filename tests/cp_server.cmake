# The control plane's agent protocol, rollouts and admin API in process over
# real gRPC on loopback (cp_harness.h).
vakt_test(cp_server_test SOURCES cp_server_test.cc LIBS vakt::controlplane)
