# bench/sim_layer: observations/s through registry -> SIM actor, durable
# changes/s, resident bytes per passivated SIM and per live SIM actor.
add_executable(bench_sim_layer ${CMAKE_CURRENT_LIST_DIR}/sim_layer_bench.cpp)
target_link_libraries(bench_sim_layer PRIVATE imeilock_actors Boost::headers prometheus-cpp::core
                                              imeilock_warnings)
