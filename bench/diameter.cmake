# Diameter benchmark: the load generator and the front-end with an
# immediately-acking sink (the interop harness of tests/protocols/diameter). The
# side-by-side run with freeDiameter is bench/diameter_vs_freediameter.sh.
add_executable(diameter_load ${CMAKE_CURRENT_SOURCE_DIR}/diameter_load.cpp)
target_link_libraries(diameter_load PRIVATE imeilock_diameter_requests)
add_executable(diameter_bench_server ${PROJECT_SOURCE_DIR}/tests/protocols/diameter/harness.cpp)
target_link_libraries(diameter_bench_server PRIVATE imeilock_diameter imeilock_config prometheus-cpp::core)
