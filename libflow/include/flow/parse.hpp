#pragma once

/// @file
/// Parsing of integers in text input, shared by the text sources and the
/// programs' command lines.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace flow {

/// Parses a whole token as a decimal int64 (an optional sign, then digits).
/// On failure returns nothing and sets `why` to "is not an integer" or
/// "is outside the int64 range".
std::optional<std::int64_t> parse_int64(std::string_view token,
                                        std::string& why);

/// Quotes a token for an error message, shortening very long ones.
std::string quote_token(std::string_view token);

} // namespace flow
