# cmake --install: the binaries, the public headers, the static libraries and a CMake package config, so
# that an application does find_package(kqserver) + target_link_libraries(app PRIVATE kqserver::kqserver).
include(CMakePackageConfigHelpers)

# Exported names: kqserver::common, kqserver::acceptor, kqserver::worker, kqserver::protocols,
# kqserver::server, and kqserver::kqserver linking all five. The same names exist as aliases in this build, so a project that adds kqserver as a subdirectory
# writes the same target_link_libraries line as one that uses the installed package.
add_library(kq_package INTERFACE)
target_link_libraries(kq_package INTERFACE kq_server kq_protocols kq_worker kq_acceptor kq_common)
set_target_properties(kq_common PROPERTIES EXPORT_NAME common)
set_target_properties(kq_acceptor PROPERTIES EXPORT_NAME acceptor)
set_target_properties(kq_worker PROPERTIES EXPORT_NAME worker)
set_target_properties(kq_protocols PROPERTIES EXPORT_NAME protocols)
set_target_properties(kq_server PROPERTIES EXPORT_NAME server)
set_target_properties(kq_package PROPERTIES EXPORT_NAME kqserver)
# kqserver::app (kq/app.hpp: the shared flags and serve()) is apart: it needs CLI11.
set_target_properties(kq_app PROPERTIES EXPORT_NAME app)
set_target_properties(kq_cli PROPERTIES EXPORT_NAME cli_checks)
add_library(kqserver::app ALIAS kq_app)
add_library(kqserver::kqserver ALIAS kq_package)
add_library(kqserver::common ALIAS kq_common)
add_library(kqserver::acceptor ALIAS kq_acceptor)
add_library(kqserver::worker ALIAS kq_worker)
add_library(kqserver::protocols ALIAS kq_protocols)
add_library(kqserver::server ALIAS kq_server)

# The public headers are C++20: a consumer gets the standard with the target.
target_compile_features(kq_common PUBLIC cxx_std_20)
# Libraries instrumented by a sanitizer need its runtime in whatever links them.
if(KQ_SANITIZE)
  target_link_options(kq_common INTERFACE $<INSTALL_INTERFACE:-fsanitize=${KQ_SANITIZE}>)
endif()

set(KQ_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/kqserver)
install(TARGETS kq_common kq_acceptor kq_worker kq_protocols kq_server kq_package kq_app kq_cli EXPORT kqserverTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})  # include dirs: the targets' $<INSTALL_INTERFACE:...>
# Only the headers a user needs: a protocol (handler, offload, the test stub), the server and its
# configuration and counters, the metrics endpoint, the built-in protocols, and the socket helpers they
# name. The worker, acceptor, mailbox and poller internals stay private; tests/examples/test_install.sh
# checks that no installed header reaches a header outside this list, Boost or nlohmann-json.
set(KQ_PUBLIC_HEADERS
  common/include/kq/counter.hpp common/include/kq/fd.hpp common/include/kq/log.hpp
  common/include/kq/log_rate_limit.hpp common/include/kq/net.hpp common/include/kq/poller.hpp
  acceptor/include/kq/accept_stats.hpp acceptor/include/kq/dispatch.hpp
  worker/include/kq/handler.hpp worker/include/kq/offload.hpp worker/include/kq/conn_stub.hpp
  worker/include/kq/worker_config.hpp
  protocols/include/kq/protocols.hpp protocols/include/kq/http.hpp
  server/include/kq/server.hpp server/include/kq/metrics.hpp server/include/kq/app.hpp)
install(FILES ${KQ_PUBLIC_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kq)
# Installed binaries keep an RPATH to the non-system directories they link from (libkqueue under its
# own prefix): CMake drops the build tree's RPATH at install.
foreach(tool kqserver kqcat kqbench)
  if(TARGET ${tool})
    set_target_properties(${tool} PROPERTIES INSTALL_RPATH_USE_LINK_PATH TRUE)
    install(TARGETS ${tool} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()
install(EXPORT kqserverTargets NAMESPACE kqserver:: DESTINATION ${KQ_CMAKE_DIR})

# What the config must find again: the static libraries carry their private dependencies (libkqueue when
# the kqueue backend was built on it) as link-only entries of their interface.
if(LIBKQUEUE_FOUND AND NOT KQ_HAVE_NATIVE_KQUEUE)
  set(KQ_PACKAGE_LIBKQUEUE ON)
else()
  set(KQ_PACKAGE_LIBKQUEUE OFF)
endif()
set(KQ_PACKAGE_LIBURING ${KQ_HAVE_URING})
if(NOT KQ_PACKAGE_LIBURING)
  set(KQ_PACKAGE_LIBURING OFF)
endif()
configure_package_config_file(cmake/kqserverConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/kqserverConfig.cmake
  INSTALL_DESTINATION ${KQ_CMAKE_DIR})
# 0.x: minor versions may change the API, patch versions do not.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/kqserverConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/kqserverConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/kqserverConfigVersion.cmake
  DESTINATION ${KQ_CMAKE_DIR})

# The handler API guide and the example protocol, for users of the installed package.
install(FILES docs/handler-api.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
# The configuration example (--config): documentation, under share/doc and not etc/. No binary reads a
# configuration file unless --config names it, so a file under etc/ would look in force and not be;
# and a package must not overwrite an administrator's edited file there at each upgrade. Debian puts
# such examples under /usr/share/doc/PACKAGE; the administrator copies it to /etc/kqserver/.
install(FILES deploy/kqserver.toml DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY examples/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples REGEX "/build[^/]*$" EXCLUDE)

# The systemd units (deploy/systemd). The build tree keeps a copy configured for the configured prefix
# (test_systemd_units checks it); the installed one is configured at install time, for the prefix
# installed to (cmake/KqInstallUnits.cmake). Empty KQ_SYSTEMD_UNIT_DIR: /lib/systemd/system for the
# prefix /usr (Debian's place), PREFIX/lib/systemd/system otherwise.
set(kq_unit_dir_doc "Where cmake --install puts the systemd units (relative: under the prefix; empty: decided at install)")
set(KQ_SYSTEMD_UNIT_DIR "" CACHE STRING "${kq_unit_dir_doc}")
# Build trees configured before install time decided hold the old default; under /usr the two name one
# directory on a merged-/usr Debian, and elsewhere they are the same rule, so the old default becomes the new.
if(KQ_SYSTEMD_UNIT_DIR STREQUAL "lib/systemd/system")
  set(KQ_SYSTEMD_UNIT_DIR "" CACHE STRING "${kq_unit_dir_doc}" FORCE)
endif()
set(KQ_UNIT_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
configure_file(deploy/systemd/kqserver.service.in ${PROJECT_BINARY_DIR}/deploy/systemd/kqserver.service @ONLY)
install(CODE "
  set(KQ_UNIT_SOURCE_DIR \"${PROJECT_SOURCE_DIR}/deploy/systemd\")
  set(KQ_UNIT_STAGE_DIR \"${PROJECT_BINARY_DIR}/deploy/systemd/install\")
  set(KQ_SYSTEMD_UNIT_DIR \"${KQ_SYSTEMD_UNIT_DIR}\")
  set(KQ_INSTALL_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  include(\"${PROJECT_SOURCE_DIR}/cmake/KqInstallUnits.cmake\")")
