#pragma once

// The SQLSTATE table (sqlstate_table.cpp), sorted by code.

#include <cstddef>

namespace flow::pg::detail {

/// One SQLSTATE and its condition name.
struct sqlstate_entry {
  const char* code;
  const char* name;
};

extern const sqlstate_entry sqlstate_table[];
extern const std::size_t sqlstate_table_size;

} // namespace flow::pg::detail
