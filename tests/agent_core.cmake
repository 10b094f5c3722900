# The embeddable Agent: loading, signatures, swaps, FAPI runtime state,
# metrics and the decision sink. The control plane's signer and the
# compiler make the test's bundles; the agent itself links neither.
vakt_test(agent_core_test SOURCES agent_core_test.cc
  LIBS vakt::agent vakt::compiler vakt::controlplane)
