# Writes OUT, a header defining LLMRT_GIT_REV: `git describe --always --dirty` of the tree at SRC
# ("unknown" outside a git checkout, e.g. a build from the sdist). Run at every build (the
# llmrt_git_rev target) and rewritten only when the text changes, so a build after a commit or an
# edit names the revision it was built from, and an unchanged one recompiles nothing.
execute_process(COMMAND git -C ${SRC} describe --always --dirty --abbrev=7
  OUTPUT_VARIABLE rev OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(rev STREQUAL "")
  set(rev "unknown")
endif()
set(text "#define LLMRT_GIT_REV \"${rev}\"\n")
set(old "")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT old STREQUAL text)
  file(WRITE ${OUT} "${text}")
endif()
