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

/// Parses a whole token as a double: an optional sign, then decimal or
/// exponent notation ("1.5", "-2e-3", ".5", "7."), or `inf`, `infinity` or
/// `nan` in any case. The nearest double is taken (ties to even). On failure
/// returns nothing and sets `why` to "is not a number" or "is outside the
/// double range" (a finite token whose value rounds to an infinity or, below
/// the smallest subnormal, to zero: refused rather than changed).
std::optional<double> parse_double(std::string_view token, std::string& why);

/// Quotes a token for an error message, shortening very long ones (at a
/// character boundary). Bytes that are not valid UTF-8 and control characters
/// (C0, DEL, C1) are shown as `\xNN`, so the message is one printable line
/// whatever the input holds.
std::string quote_token(std::string_view token);

/// Checks that `text` is valid UTF-8 without control characters (C0, DEL or
/// C1): text that prints as itself. On failure returns false and sets `why`
/// to "is not valid UTF-8" or "contains a control character".
bool check_printable(std::string_view text, std::string& why);

} // namespace flow
