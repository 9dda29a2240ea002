# RADIUS decoder fuzzer: every datagram a peer can send goes through parse(),
# authenticator checks and extraction. Corpus: fuzz/corpus/radius_decode/.
imeilock_add_fuzzer(radius_decode SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/radius_decode.cpp
                    LIBS imeilock_radius_codec)
