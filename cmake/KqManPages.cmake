# Man pages for the installed binaries, made from their --help by help2man (Debian package help2man) so
# that they never disagree with the flags; gzip -9n as Debian policy asks (-n: no name or time stamp).
# help2man reads the version line from each binary's --version.
# Off by default under a sanitizer: such builds are not packaged, and a TSan binary may not even start
# outside setarch -R (scripts/test.sh), which would fail the build here.
find_program(KQ_HELP2MAN help2man)
if(KQ_HELP2MAN AND NOT KQ_SANITIZE)
  set(kq_man_default ON)
else()
  set(kq_man_default OFF)
endif()
option(KQ_MAN_PAGES "Generate man pages from --help with help2man and install them" ${kq_man_default})
if(KQ_MAN_PAGES AND NOT KQ_HELP2MAN)
  message(FATAL_ERROR "KQ_MAN_PAGES needs help2man (Debian package help2man)")
endif()

# kq_man_page(TARGET "one line for the NAME section")
function(kq_man_page target summary)
  if(NOT KQ_MAN_PAGES)
    return()
  endif()
  set(page ${PROJECT_BINARY_DIR}/man/${target}.1)
  add_custom_command(OUTPUT ${page}.gz
    COMMAND ${KQ_HELP2MAN} --no-info --section=1
            "--name=${summary}" "--manual=kqserver ${PROJECT_VERSION}" --output=${page} $<TARGET_FILE:${target}>
    COMMAND gzip -9nf ${page}
    DEPENDS ${target}
    COMMENT "help2man ${target}"
    VERBATIM)
  add_custom_target(${target}_man ALL DEPENDS ${page}.gz)
  install(FILES ${page}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
endfunction()
