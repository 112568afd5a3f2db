# cpack pre-build script (CPACK_PRE_BUILD_SCRIPTS): strips the debug information from the static libraries
# in the staging tree, as Debian's dh_strip does (strip --strip-debug keeps their symbols, so they still
# link). CPACK_STRIP_FILES strips only executables and shared libraries; in a RelWithDebInfo build the
# archives' debug sections would otherwise be nine tenths of the package.
file(GLOB_RECURSE kq_archives "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*.a")
foreach(archive IN LISTS kq_archives)
  execute_process(COMMAND "${CPACK_KQ_STRIP}" --strip-debug "${archive}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${CPACK_KQ_STRIP} --strip-debug ${archive}: ${rc}")
  endif()
endforeach()
