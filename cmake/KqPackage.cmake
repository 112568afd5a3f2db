# cpack -G DEB: one Debian package holding exactly what `cmake --install` installs, under /usr: the
# binaries (kqserver, kqbench, kqcat and the example servers kqproxy, kqmemcache, kqresp), their man pages,
# the systemd units in /lib/systemd/system, and the CMake package (headers, static libraries,
# kqserverConfig.cmake). One package, not a -dev split: the libraries are static and small, and a package
# that is the install tree cannot drift from what test_install checks.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME kqserver)
set(CPACK_PACKAGE_CONTACT "kqserver maintainers <maintainers@kqserver.invalid>" CACHE STRING
    "The package's Maintainer field: set it to whoever publishes the package")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "multi-threaded edge-triggered TCP server, its load generator and library")
set(CPACK_PACKAGE_DESCRIPTION [=[
One acceptor thread hands connections to N worker threads, each with its own
epoll (or kqueue) instance, edge-triggered, one registration per connection.
Ships kqserver (echo, upper and HTTP/1.1, Prometheus metrics, /health and
/ready, systemd readiness and socket activation), kqbench (a load generator for
TCP, HTTP, memcache and RESP servers), kqcat (an interactive client), the
example servers kqproxy, kqmemcache and kqresp, the systemd units
kqserver.service, kqserver.socket and kqserver-metrics.socket, and the static
library with its headers and CMake package (find_package(kqserver)).]=])
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)         # kqserver_VERSION_ARCH.deb
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Depends from the binaries' shared libraries (dpkg-shlibdeps, Debian package dpkg-dev).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The CMake package's own dependencies, for users who build against it; systemd for the units.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "systemd, libspdlog-dev, libcli11-dev, cmake")
# Without debug information, as a release artefact: executables by CPACK_STRIP_FILES, static libraries
# by cmake/KqPackageStrip.cmake (strip is binutils', found by CMake as CMAKE_STRIP).
set(CPACK_STRIP_FILES ON)
if(CMAKE_STRIP)
  set(CPACK_KQ_STRIP ${CMAKE_STRIP})  # CPackConfig.cmake keeps the CPACK_ variables: the script reads it
  set(CPACK_PRE_BUILD_SCRIPTS ${PROJECT_SOURCE_DIR}/cmake/KqPackageStrip.cmake)
endif()
# Maintainer scripts: daemon-reload, restart on upgrade, stop and disable on removal (deploy/debian).
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
    ${PROJECT_SOURCE_DIR}/deploy/debian/prerm ${PROJECT_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
