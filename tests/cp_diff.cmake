# Unified diffs of policy sources (controlplane/diff.cc), checked against
# GNU diff and patch(1) on generated inputs.
vakt_test(cp_diff_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cp_diff_test.cc LIBS vakt::controlplane)
