# The last-good bundle cache on disk (bundle_cache.h): lets the daemon start
# from its last verified bundle when the control plane is unreachable.
add_library(vakt_agent_cache bundle_cache.cc)
add_library(vakt::agent_cache ALIAS vakt_agent_cache)
vakt_target_defaults(vakt_agent_cache)
target_link_libraries(vakt_agent_cache PUBLIC vakt::agent PRIVATE spdlog::spdlog)
