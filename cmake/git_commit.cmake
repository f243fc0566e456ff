# git_commit.cmake — run at every build (cmake -P) by the moerec_git_commit
# target: writes OUT (a C header) with MOEREC_GIT_COMMIT, the checkout's
# abbreviated commit plus "-modified" when tracked files differ, or
# "unknown" outside a git checkout. The header is rewritten only when the
# value changes, so an unchanged tree rebuilds nothing. No paths go in.
execute_process(COMMAND git -C "${SRC}" rev-parse --short=12 HEAD
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE
                RESULT_VARIABLE rc ERROR_QUIET)
if(NOT rc EQUAL 0 OR commit STREQUAL "")
  set(commit "unknown")
else()
  execute_process(COMMAND git -C "${SRC}" diff-index --quiet HEAD --
                  RESULT_VARIABLE dirty ERROR_QUIET)
  if(NOT dirty EQUAL 0)
    set(commit "${commit}-modified")
  endif()
endif()
set(text "#define MOEREC_GIT_COMMIT \"${commit}\"\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
