# Server tests (real sockets on loopback) and interop with real peers.
add_executable(diameter_harness harness.cpp)
target_link_libraries(diameter_harness PRIVATE imeilock_diameter imeilock_config prometheus-cpp::core)

add_executable(test_diameter_server server_test.cpp)
target_link_libraries(test_diameter_server PRIVATE imeilock_diameter imeilock_diameter_requests
                                                   prometheus-cpp::core Catch2::Catch2WithMain)
# "server": also run under ASan+UBSan (scripts/test.sh).
catch_discover_tests(test_diameter_server EXTRA_ARGS --warn NoTests PROPERTIES LABELS server)

add_test(NAME diameter.erlang_interop
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/erlang_interop.sh $<TARGET_FILE:diameter_harness>
                 ${CMAKE_CURRENT_SOURCE_DIR})
set_tests_properties(diameter.erlang_interop PROPERTIES LABELS integration TIMEOUT 180)

add_executable(diameter_answer_samples answer_samples.cpp)
target_link_libraries(diameter_answer_samples PRIVATE imeilock_diameter_requests)
add_test(NAME diameter.tshark_answers
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/tshark_answers.sh $<TARGET_FILE:diameter_answer_samples>)
set_tests_properties(diameter.tshark_answers PROPERTIES LABELS integration TIMEOUT 60)
