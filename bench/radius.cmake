# RADIUS benchmarks: a load generator and the server with an acking sink,
# compared with FreeRADIUS by bench/radius_vs_freeradius.sh.
add_executable(radius_load ${CMAKE_CURRENT_SOURCE_DIR}/radius_load.cpp)
target_link_libraries(radius_load PRIVATE imeilock_radius_codec)
add_executable(radius_bench_server ${CMAKE_CURRENT_SOURCE_DIR}/radius_bench_server.cpp)
target_link_libraries(radius_bench_server PRIVATE imeilock_radius prometheus-cpp::core)
# The ceiling row of bench/radius_vs_freeradius.sh: a plain Asio UDP echo.
add_executable(udp_echo_server ${CMAKE_CURRENT_SOURCE_DIR}/udp_echo_server.cpp)
target_link_libraries(udp_echo_server PRIVATE Boost::headers Threads::Threads imeilock_warnings)
