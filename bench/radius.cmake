# RADIUS benchmarks: a load generator and the server with an acking sink,
# compared with FreeRADIUS by bench/radius_vs_freeradius.sh.
add_executable(radius_load ${CMAKE_CURRENT_SOURCE_DIR}/radius_load.cpp)
target_link_libraries(radius_load PRIVATE imeilock_radius_codec)
add_executable(radius_bench_server ${CMAKE_CURRENT_SOURCE_DIR}/radius_bench_server.cpp)
target_link_libraries(radius_bench_server PRIVATE imeilock_radius prometheus-cpp::core)
