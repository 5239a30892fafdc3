# FindCAF.cmake -- locate the C++ Actor Framework (CAF) 0.17 as packaged by
# Debian (libcaf-dev), which ships neither a CMake config nor a .pc file.
#
# Imported targets (each links the previous one):
#   CAF::core      libcaf_core + Threads
#   CAF::io        libcaf_io   (the middleman: CAF's network layer)
#   CAF::openssl   libcaf_openssl + OpenSSL (TLS for the middleman)
#
# Result variables: CAF_FOUND, CAF_VERSION, CAF_INCLUDE_DIR,
# CAF_<comp>_FOUND and CAF_<comp>_LIBRARY for comp in core, io, openssl.
# Components may be requested with find_package(CAF COMPONENTS core io).

include(FindPackageHandleStandardArgs)
find_package(Threads QUIET)

find_path(CAF_INCLUDE_DIR NAMES caf/config.hpp)

if(CAF_INCLUDE_DIR AND EXISTS "${CAF_INCLUDE_DIR}/caf/config.hpp")
  file(STRINGS "${CAF_INCLUDE_DIR}/caf/config.hpp" _caf_version_line
       REGEX "^#define CAF_VERSION [0-9]+")
  string(REGEX REPLACE "^#define CAF_VERSION ([0-9]+).*" "\\1"
         _caf_version_num "${_caf_version_line}")
  if(_caf_version_num)
    # CAF encodes its version as MMmmpp (major * 10000 + minor * 100 + patch).
    math(EXPR _caf_major "${_caf_version_num} / 10000")
    math(EXPR _caf_minor "(${_caf_version_num} / 100) % 100")
    math(EXPR _caf_patch "${_caf_version_num} % 100")
    set(CAF_VERSION "${_caf_major}.${_caf_minor}.${_caf_patch}")
  endif()
endif()

if(NOT CAF_FIND_COMPONENTS)
  set(CAF_FIND_COMPONENTS core)
endif()
# io needs core, openssl needs io: look for the prerequisites too.
set(_caf_all_components core io openssl)
set(_caf_wanted core)
foreach(_comp IN LISTS CAF_FIND_COMPONENTS)
  if(_comp STREQUAL "openssl")
    list(APPEND _caf_wanted io openssl)
  elseif(_comp STREQUAL "io")
    list(APPEND _caf_wanted io)
  elseif(NOT _comp STREQUAL "core")
    message(FATAL_ERROR "FindCAF: unknown component '${_comp}'")
  endif()
endforeach()
list(REMOVE_DUPLICATES _caf_wanted)

foreach(_comp IN LISTS _caf_all_components)
  find_library(CAF_${_comp}_LIBRARY NAMES caf_${_comp})
  if(CAF_${_comp}_LIBRARY AND CAF_INCLUDE_DIR)
    set(CAF_${_comp}_FOUND TRUE)
  else()
    set(CAF_${_comp}_FOUND FALSE)
  endif()
endforeach()

if(CAF_openssl_FOUND AND "openssl" IN_LIST _caf_wanted)
  find_package(OpenSSL QUIET)
  if(NOT OpenSSL_FOUND)
    set(CAF_openssl_FOUND FALSE)
  endif()
endif()

find_package_handle_standard_args(CAF
  REQUIRED_VARS CAF_INCLUDE_DIR CAF_core_LIBRARY
  VERSION_VAR CAF_VERSION
  HANDLE_COMPONENTS)

if(CAF_FOUND)
  if(CAF_core_FOUND AND NOT TARGET CAF::core)
    add_library(CAF::core UNKNOWN IMPORTED)
    set_target_properties(CAF::core PROPERTIES
      IMPORTED_LOCATION "${CAF_core_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
      INTERFACE_LINK_LIBRARIES Threads::Threads)
  endif()
  if(CAF_io_FOUND AND "io" IN_LIST _caf_wanted AND NOT TARGET CAF::io)
    add_library(CAF::io UNKNOWN IMPORTED)
    set_target_properties(CAF::io PROPERTIES
      IMPORTED_LOCATION "${CAF_io_LIBRARY}"
      INTERFACE_LINK_LIBRARIES CAF::core)
  endif()
  if(CAF_openssl_FOUND AND "openssl" IN_LIST _caf_wanted
     AND NOT TARGET CAF::openssl)
    add_library(CAF::openssl UNKNOWN IMPORTED)
    set_target_properties(CAF::openssl PROPERTIES
      IMPORTED_LOCATION "${CAF_openssl_LIBRARY}"
      INTERFACE_LINK_LIBRARIES "CAF::io;OpenSSL::SSL;OpenSSL::Crypto")
  endif()
endif()

mark_as_advanced(CAF_INCLUDE_DIR CAF_core_LIBRARY CAF_io_LIBRARY
                 CAF_openssl_LIBRARY)
