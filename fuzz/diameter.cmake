# Diameter decoder fuzzer: every byte a peer can send goes through framing,
# header checks, request validation, identity extraction and the answer
# builders. Corpus: fuzz/corpus/diameter_decode/.
imeilock_add_fuzzer(diameter_decode SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/diameter_decode.cpp
                    LIBS imeilock_diameter_codec)
