# The rollout state machine: buckets, selectors, stages, layering, progress,
# automatic actions and every transition.
vakt_test(cp_rollout_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/cp_rollout_test.cc
          LIBS vakt::controlplane)
