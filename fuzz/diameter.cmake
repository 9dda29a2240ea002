# Diameter decoder fuzzer: every byte a peer can send goes through framing,
# header checks, request validation, identity extraction and the answer
# builders. Corpus: fuzz/corpus/diameter_decode/.
imeilock_add_fuzzer(diameter_decode SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/diameter_decode.cpp
                    LIBS imeilock_diameter_codec)
# A short bounded run of the seed corpus in the test command of a fuzz build;
# new inputs go to a scratch dir in the build tree, never into the repository.
if(IMEILOCK_TESTS)
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/diameter_decode_scratch)
  add_test(NAME diameter.fuzz_decode
           COMMAND diameter_decode -max_total_time=20 -timeout=5 -rss_limit_mb=2048
                   ${CMAKE_CURRENT_BINARY_DIR}/diameter_decode_scratch
                   ${CMAKE_CURRENT_SOURCE_DIR}/corpus/diameter_decode)
  set_tests_properties(diameter.fuzz_decode PROPERTIES LABELS fuzz TIMEOUT 120)
endif()
