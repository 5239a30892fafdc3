# One warning set for every target of the project (spdlog's
# spdlog_enable_warnings, applied to the whole tree instead of target by
# target, so that a new target cannot be forgotten).
#
#   flow_enable_warnings(TARGET)       one target
#   flow_enable_warnings_in(DIR)       every library and executable defined
#                                      in DIR and the directories below it
#
# FLOW_WARNINGS_AS_ERRORS (off by default; the release preset turns it on)
# makes them errors, so that the release build stays warning-free. The
# sanitizer, fuzz and debug presets leave it off: their compilers and flags
# warn differently and a new false positive there should not stop the suite.

option(FLOW_WARNINGS_AS_ERRORS "Treat compiler warnings as errors" OFF)

function(flow_enable_warnings target)
  get_target_property(type ${target} TYPE)
  get_target_property(imported ${target} IMPORTED)
  if(imported OR type STREQUAL "INTERFACE_LIBRARY" OR type STREQUAL "UTILITY")
    return()
  endif()
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra)
    if(FLOW_WARNINGS_AS_ERRORS)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
endfunction()

function(flow_enable_warnings_in dir)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  foreach(t IN LISTS targets)
    flow_enable_warnings(${t})
  endforeach()
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(d IN LISTS subdirs)
    flow_enable_warnings_in(${d})
  endforeach()
endfunction()
