# Builds and runs tests/package/consumer against libflow in one of two ways.
# Arguments (-D): MODE (find_package | add_subdirectory), SOURCE_DIR (the
# libflow checkout), BUILD_DIR (the libflow build tree, for the install),
# WORK_DIR (scratch directory), GENERATOR.

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(consumer_src "${SOURCE_DIR}/tests/package/consumer")

if(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
  if(NOT EXISTS "${WORK_DIR}/prefix/lib/cmake/flow/flowConfig.cmake")
    message(FATAL_ERROR "install did not produce flowConfig.cmake")
  endif()
  run(${CMAKE_COMMAND} -S "${consumer_src}" -B "${WORK_DIR}/build"
      -G "${GENERATOR}" -DCMAKE_BUILD_TYPE=Release
      "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
elseif(MODE STREQUAL "add_subdirectory")
  run(${CMAKE_COMMAND} -S "${consumer_src}" -B "${WORK_DIR}/build"
      -G "${GENERATOR}" -DCMAKE_BUILD_TYPE=Release
      "-DFLOW_SOURCE_DIR=${SOURCE_DIR}")
else()
  message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()

# Only the consumer and what it links: with add_subdirectory, the optional
# libraries (flow::pg, flow::net, flow::status) are configured but an
# application that does not link them should not have to compile them.
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build" --target consumer -j2)
run("${WORK_DIR}/build/consumer")
if(NOT last_output MATCHES "consumer sum 500500")
  message(FATAL_ERROR "unexpected consumer output: ${last_output}")
endif()
message(STATUS "consumer (${MODE}): ${last_output}")
file(REMOVE_RECURSE "${WORK_DIR}")
