# bench/orders: the pure order scheduler's throughput (no actors, no I/O).
add_executable(bench_orders ${CMAKE_CURRENT_LIST_DIR}/orders_scheduler.cpp)
target_link_libraries(bench_orders PRIVATE imeilock_orders imeilock_warnings)
