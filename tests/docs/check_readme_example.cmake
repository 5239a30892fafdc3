# The README quotes examples/embed_sum.cpp; CI compiles the example, and this
# check keeps the quote from rotting. -DSOURCE_DIR=<checkout>
file(READ "${SOURCE_DIR}/README.md" readme)
file(READ "${SOURCE_DIR}/examples/embed_sum.cpp" example)
string(FIND "${readme}" "${example}" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "README.md does not quote examples/embed_sum.cpp verbatim")
endif()
message(STATUS "README quotes examples/embed_sum.cpp at offset ${pos}")
