# API fuzzers: the bytes a client sends, through the functions the router
# calls (imeilock_api_parse, no Boost/CAF). Corpora: fuzz/corpus/<target>/.
#  api_sim_csv         POST /v1/sims:import bodies (api::parse_sim_csv)
#  api_request_body    PUT /v1/sims/{iccid} and POST .../orders JSON bodies
#  api_request_target  request target: path, percent-decoding, query, limit
foreach(_t api_sim_csv api_request_body api_request_target)
  imeilock_add_fuzzer(${_t} SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/${_t}.cpp LIBS imeilock_api_parse)
endforeach()
