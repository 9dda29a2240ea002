# imeilock_warnings: the warning set every target of ours links; errors in CI.
add_library(imeilock_warnings INTERFACE)
target_compile_options(imeilock_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
  -Wcast-align -Wunused -Woverloaded-virtual -Wimplicit-fallthrough)
if(IMEILOCK_WERROR)
  target_compile_options(imeilock_warnings INTERFACE -Werror)
endif()
