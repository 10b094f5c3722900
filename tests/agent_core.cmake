# The embeddable Agent: loading, signatures, swaps, FAPI runtime state,
# metrics and the decision sink. The control plane's signer and the
# compiler make the test's bundles; the agent itself links neither.
vakt_test(agent_core_test SOURCES agent_core_test.cc
  LIBS vakt::agent vakt::compiler vakt::controlplane)

# The in-process example (examples/embedded) against the healthcare bundle.
add_test(NAME embedded_example
  COMMAND bash -c "set -e; d=$(mktemp -d); trap 'rm -rf $d' EXIT; \
$<TARGET_FILE:vakt> build ${CMAKE_SOURCE_DIR}/examples/healthcare/policy -o $d/h.vkb; \
$<TARGET_FILE:embedded_service> $d/h.vkb")
