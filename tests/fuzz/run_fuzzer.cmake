# Runs one fuzz target on its seed corpus for ctest:
#   cmake -DFUZZER=<exe> -DSEEDS=<dir> -DWORK_DIR=<dir> -DARGS=<a;b> -P run_fuzzer.cmake
# libFuzzer writes the inputs it finds into the first corpus directory it is
# given, so that is a fresh one under WORK_DIR and the seeds stay read-only;
# a crashing input lands in WORK_DIR/artifacts/.

foreach(var FUZZER SEEDS WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzzer.cmake: ${var} is not set")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/corpus" "${WORK_DIR}/artifacts")

execute_process(
  COMMAND "${FUZZER}" ${ARGS} "-artifact_prefix=${WORK_DIR}/artifacts/"
          "${WORK_DIR}/corpus" "${SEEDS}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB found "${WORK_DIR}/artifacts/*")
  message(FATAL_ERROR "${FUZZER} failed (${rc}); input kept: ${found}")
endif()
