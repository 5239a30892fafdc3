# A page that shows a file must quote it verbatim: the file is what CI
# builds or runs, and the quote must not drift from it.
# -DSOURCE_DIR=<checkout> -DDOC=<page> -DQUOTED=<file>, both relative.
file(READ "${SOURCE_DIR}/${DOC}" doc)
file(READ "${SOURCE_DIR}/${QUOTED}" quoted)
string(FIND "${doc}" "${quoted}" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "${DOC} does not quote ${QUOTED} verbatim")
endif()
message(STATUS "${DOC} quotes ${QUOTED} at offset ${pos}")
