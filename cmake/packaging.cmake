# Installation of what no component owns (the documentation) and the Debian
# package:
#   cmake -S . -B build -DCMAKE_INSTALL_PREFIX=/usr && cmake --build build
#   cmake --install build            # or: (cd build && cpack -G DEB)
# With any other prefix the configuration lands in <prefix>/etc and the unit
# names <prefix>/bin/imeilockd; the package then mirrors that layout.

if(IMEILOCK_UNIT_ONLY OR NOT TARGET imeilockd)
  return()
endif()

# The configuration (systemd/CMakeLists.txt installs it, with the unit) and
# the documentation.
foreach(_doc IN ITEMS README.md LICENSE)
  if(EXISTS "${PROJECT_SOURCE_DIR}/${_doc}")
    install(FILES "${PROJECT_SOURCE_DIR}/${_doc}" DESTINATION "${CMAKE_INSTALL_DOCDIR}")
  endif()
endforeach()
install(FILES "${PROJECT_SOURCE_DIR}/config/imeilockd.yaml" DESTINATION "${CMAKE_INSTALL_DOCDIR}/examples")

# --- Debian package ------------------------------------------------------------
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "imeilockd")
set(CPACK_PACKAGE_VENDOR "imeilockd developers")
set(CPACK_PACKAGE_CONTACT "imeilockd developers <imeilockd@localhost>")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "IMEI locking daemon for mobile operators")
set(CPACK_PACKAGE_DESCRIPTION
    "imeilockd listens to the network's RADIUS and Diameter accounting, learns which\n"
    "device (IMEI) each SIM is in, and raises a bar order when a SIM that is locked\n"
    "to one device appears in another.")
string(JOIN "" CPACK_PACKAGE_DESCRIPTION ${CPACK_PACKAGE_DESCRIPTION})
# The package lays files out exactly as `cmake --install` does, so the paths
# compiled into the unit (ExecStart=, --config) are the ones in the package.
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  message(STATUS "Packaging: CMAKE_INSTALL_PREFIX is ${CMAKE_INSTALL_PREFIX}; "
                 "configure with -DCMAKE_INSTALL_PREFIX=/usr for a Debian-layout .deb")
endif()
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
# Runtime libraries (libcaf, yaml-cpp, prometheus-cpp, sqlite, systemd, ...)
# are computed from the binary by dpkg-shlibdeps.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Debug information stays in the build tree: the package ships stripped binaries.
set(CPACK_STRIP_FILES ON)
set(_imeilock_pkg "${PROJECT_BINARY_DIR}/packaging")
set(IMEILOCK_UNIT_NAME "imeilockd.service")
foreach(_script IN ITEMS postinst prerm postrm)
  configure_file("${PROJECT_SOURCE_DIR}/systemd/debian/${_script}.in" "${_imeilock_pkg}/${_script}"
                 @ONLY FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                 GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
endforeach()
# Everything under /etc is configuration the administrator owns: dpkg keeps
# their changes on upgrade and asks before replacing them.
file(CONFIGURE OUTPUT "${_imeilock_pkg}/conffiles"
     CONTENT "${IMEILOCK_CONFIG_FILE}\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${_imeilock_pkg}/conffiles;${_imeilock_pkg}/postinst;${_imeilock_pkg}/prerm;${_imeilock_pkg}/postrm")

include(CPack)
