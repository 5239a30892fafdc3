# The README shows what examples/embed_sum prints; run it and check that the
# README quotes its output verbatim. -DSOURCE_DIR=<checkout> -DEXAMPLE=<exe>
execute_process(COMMAND "${EXAMPLE}" RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${EXAMPLE} failed (${rc}): ${out}")
endif()
file(READ "${SOURCE_DIR}/README.md" readme)
string(FIND "${readme}" "${out}" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "README.md does not show the output of embed_sum:\n${out}")
endif()
message(STATUS "README shows embed_sum's output at offset ${pos}")
