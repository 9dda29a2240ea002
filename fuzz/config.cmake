# Configuration loader fuzzer: YAML text -> daemon_config or config::error
# (imeilock_daemon_config, no Boost/CAF/prometheus). Corpus:
# fuzz/corpus/config_load/.
imeilock_add_fuzzer(config_load SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/config_load.cpp
                    LIBS imeilock_daemon_config)
