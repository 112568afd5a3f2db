# Run at install time (cmake --install, cpack), not at configure time: installs the systemd units with
# kqserver.service's ExecStart naming the kqserver of the prefix being installed to, which may differ from
# the configured one (`cmake --install --prefix DIR`, cpack's /usr).
# Set by KqInstall.cmake: KQ_UNIT_SOURCE_DIR, KQ_UNIT_STAGE_DIR, KQ_SYSTEMD_UNIT_DIR, KQ_INSTALL_BINDIR.

# Where the units go: KQ_SYSTEMD_UNIT_DIR when given (relative = under the prefix). Otherwise, for the
# prefix /usr (a distribution package), /lib/systemd/system: Debian 12's systemdsystemunitdir
# (`pkg-config --variable=systemdsystemunitdir systemd`), where debhelper puts units too; for any other
# prefix, PREFIX/lib/systemd/system (systemd reads /usr/local/lib/systemd/system; others need a link).
if(KQ_SYSTEMD_UNIT_DIR)
  set(kq_unit_dir "${KQ_SYSTEMD_UNIT_DIR}")
  if(NOT IS_ABSOLUTE "${kq_unit_dir}")
    set(kq_unit_dir "${CMAKE_INSTALL_PREFIX}/${kq_unit_dir}")
  endif()
elseif(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(kq_unit_dir /lib/systemd/system)
else()
  set(kq_unit_dir "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
endif()

if(IS_ABSOLUTE "${KQ_INSTALL_BINDIR}")
  set(KQ_UNIT_BINDIR "${KQ_INSTALL_BINDIR}")
else()
  set(KQ_UNIT_BINDIR "${CMAKE_INSTALL_PREFIX}/${KQ_INSTALL_BINDIR}")
endif()
# A staging directory per destination, removed once installed: cpack and a `cmake --install --prefix`
# may run at once (ctest -j).
string(MD5 kq_unit_key "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}")
set(kq_unit_stage "${KQ_UNIT_STAGE_DIR}/${kq_unit_key}")
configure_file("${KQ_UNIT_SOURCE_DIR}/kqserver.service.in" "${kq_unit_stage}/kqserver.service" @ONLY)
# file(INSTALL) adds DESTDIR and records the files in install_manifest.txt, as install(FILES) would.
file(INSTALL "${kq_unit_stage}/kqserver.service" "${KQ_UNIT_SOURCE_DIR}/kqserver.socket"
             "${KQ_UNIT_SOURCE_DIR}/kqserver-metrics.socket"
     DESTINATION "${kq_unit_dir}"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(REMOVE_RECURSE "${kq_unit_stage}")
