#include "etl/agg_spec.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <set>

#include "common/cli.hpp"

namespace flow::apps {

namespace {

// -- a small tokenizer ------------------------------------------------------

/// One token of an --agg or --group-by list.
struct token {
  enum kind_t { name, quoted, number, punct, star, end } kind = end;
  /// The name (quotes resolved), the number or the punctuation character.
  std::string text;
  /// Where it starts in the input.
  std::size_t pos = 0;
};

bool name_start(unsigned char c) {
  // Non-ASCII bytes are name characters, as in PostgreSQL (UTF-8 names).
  return std::isalpha(c) || c == '_' || c >= 0x80;
}

bool name_char(unsigned char c) {
  return name_start(c) || std::isdigit(c) || c == '$';
}

class lexer {
public:
  lexer(const std::string& text, std::string what)
    : text_(text), what_(std::move(what)) {
    // nop
  }

  token next() {
    while (pos_ < text_.size()
           && std::isspace(static_cast<unsigned char>(text_[pos_])))
      ++pos_;
    token t;
    t.pos = pos_;
    if (pos_ >= text_.size())
      return t;
    auto c = static_cast<unsigned char>(text_[pos_]);
    if (c == '"') {
      t.kind = token::quoted;
      ++pos_;
      for (;;) {
        if (pos_ >= text_.size())
          throw usage_error(what_ + ": unterminated quoted name at position "
                            + std::to_string(t.pos + 1));
        if (text_[pos_] == '"') {
          if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '"') {
            t.text += '"';
            pos_ += 2;
            continue;
          }
          ++pos_;
          break;
        }
        t.text += text_[pos_++];
      }
      if (t.text.empty())
        throw usage_error(what_ + ": empty quoted name at position "
                          + std::to_string(t.pos + 1));
      return t;
    }
    if (name_start(c)) {
      t.kind = token::name;
      while (pos_ < text_.size()
             && name_char(static_cast<unsigned char>(text_[pos_])))
        t.text += text_[pos_++];
      return t;
    }
    if (std::isdigit(c) || c == '.' || c == '-' || c == '+') {
      t.kind = token::number;
      while (pos_ < text_.size()
             && (std::isalnum(static_cast<unsigned char>(text_[pos_]))
                 || text_[pos_] == '.' || text_[pos_] == '-'
                 || text_[pos_] == '+'))
        t.text += text_[pos_++];
      return t;
    }
    if (c == '*') {
      t.kind = token::star;
      t.text = "*";
      ++pos_;
      return t;
    }
    if (c == '(' || c == ')' || c == ',') {
      t.kind = token::punct;
      t.text = std::string(1, static_cast<char>(c));
      ++pos_;
      return t;
    }
    throw usage_error(what_ + ": unexpected character '"
                      + std::string(1, static_cast<char>(c))
                      + "' at position " + std::to_string(pos_ + 1));
  }

  token peek() {
    auto saved = pos_;
    auto t = next();
    pos_ = saved;
    return t;
  }

  std::size_t pos() const noexcept {
    return pos_;
  }

private:
  const std::string& text_;
  std::string what_;
  std::size_t pos_ = 0;
};

std::string lower(std::string x) {
  for (auto& c : x)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return x;
}

bool is_word(const token& t, const char* word) {
  return t.kind == token::name && lower(t.text) == word;
}

bool is_punct(const token& t, char c) {
  return t.kind == token::punct && t.text.size() == 1 && t.text[0] == c;
}

std::string describe(const token& t) {
  switch (t.kind) {
    case token::end:
      return "the end";
    case token::quoted:
      return "\"" + t.text + "\"";
    default:
      return "'" + t.text + "'";
  }
}

/// Parses one aggregate starting at the lexer's position.
agg_expr parse_one(lexer& lex, const std::string& text,
                   const std::string& what) {
  auto start = lex.peek().pos;
  auto fail = [&](const std::string& why) -> usage_error {
    auto end = text.find(',', start);
    auto shown = text.substr(start, end == std::string::npos ? std::string::npos
                                                             : end - start);
    while (!shown.empty() && std::isspace(static_cast<unsigned char>(
                               shown.back())))
      shown.pop_back();
    return usage_error(what + ": " + why + " in '" + shown + "' (expected "
                       "e.g. sum(col), count(*), count(distinct col), "
                       "quantile(col, 0.95), optionally AS name)");
  };
  auto fn = lex.next();
  if (fn.kind != token::name)
    throw fail("expected a function name, found " + describe(fn));
  auto name = lower(fn.text);
  agg_expr e;
  if (name == "sum")
    e.func = agg_func::sum;
  else if (name == "count")
    e.func = agg_func::count;
  else if (name == "approx_count_distinct")
    e.func = agg_func::approx_count_distinct;
  else if (name == "avg")
    e.func = agg_func::avg;
  else if (name == "min")
    e.func = agg_func::min;
  else if (name == "max")
    e.func = agg_func::max;
  else if (name == "stddev")
    e.func = agg_func::stddev;
  else if (name == "quantile")
    e.func = agg_func::quantile;
  else
    throw fail("unknown function '" + fn.text
               + "' (sum, count, approx_count_distinct, avg, min, max, "
                 "stddev, quantile)");
  if (!is_punct(lex.next(), '('))
    throw fail("expected '(' after " + fn.text);
  auto arg = lex.next();
  if (arg.kind == token::star) {
    if (e.func != agg_func::count)
      throw fail("only count takes *");
    e.func = agg_func::count_rows;
  } else {
    if (e.func == agg_func::count && is_word(arg, "distinct")
        && (lex.peek().kind == token::name
            || lex.peek().kind == token::quoted)) {
      e.func = agg_func::count_distinct;
      arg = lex.next();
    }
    if (arg.kind != token::name && arg.kind != token::quoted)
      throw fail("expected a column name, found " + describe(arg));
    e.column = arg.text;
  }
  if (e.func == agg_func::quantile) {
    if (!is_punct(lex.next(), ','))
      throw fail("quantile needs two arguments: the column and q");
    auto q = lex.next();
    char* end = nullptr;
    double v = q.kind == token::number ? std::strtod(q.text.c_str(), &end)
                                       : -1;
    if (q.kind != token::number || end != q.text.c_str() + q.text.size()
        || !(v >= 0 && v <= 1))
      throw fail("q must be a number from 0 to 1, found " + describe(q));
    e.q = v;
    e.q_text = q.text;
  }
  if (!is_punct(lex.next(), ')'))
    throw fail("expected ')'");
  auto after = lex.peek();
  if (is_word(after, "as")) {
    lex.next();
    auto alias = lex.next();
    if (alias.kind != token::name && alias.kind != token::quoted)
      throw fail("expected a name after AS, found " + describe(alias));
    e.name = alias.text;
  } else {
    e.name = default_name(e);
  }
  auto end = lex.pos();
  e.text = text.substr(start, end - start);
  if (e.name.size() > 63)
    throw fail("output name '" + e.name
               + "' is longer than 63 bytes (PostgreSQL would truncate it; "
                 "give a shorter one with AS)");
  return e;
}

} // namespace

const char* func_name(agg_func f) {
  switch (f) {
    case agg_func::sum:
      return "sum";
    case agg_func::count_rows:
      return "count";
    case agg_func::count:
      return "count";
    case agg_func::count_distinct:
      return "count_distinct";
    case agg_func::approx_count_distinct:
      return "approx_count_distinct";
    case agg_func::avg:
      return "avg";
    case agg_func::min:
      return "min";
    case agg_func::max:
      return "max";
    case agg_func::stddev:
      return "stddev";
    case agg_func::quantile:
      return "quantile";
  }
  return "?";
}

std::string default_name(const agg_expr& e) {
  if (e.func == agg_func::count_rows)
    return "count";
  auto result = std::string{func_name(e.func)} + "_" + e.column;
  if (e.func == agg_func::quantile)
    result += "_" + e.q_text;
  return result;
}

std::vector<agg_expr> parse_agg_list(const std::string& text,
                                     const std::string& what) {
  lexer lex{text, what};
  std::vector<agg_expr> result;
  std::set<std::string> names;
  if (lex.peek().kind == token::end)
    throw usage_error(what + ": no aggregate given (e.g. 'sum(col), "
                             "count(*)')");
  for (;;) {
    auto e = parse_one(lex, text, what);
    if (!names.insert(e.name).second)
      throw usage_error(what + ": two aggregates are named '" + e.name
                        + "' (give one another name with AS)");
    result.push_back(std::move(e));
    auto t = lex.next();
    if (t.kind == token::end)
      break;
    if (!is_punct(t, ','))
      throw usage_error(what + ": expected ',' or the end after '"
                        + result.back().text + "', found " + describe(t));
  }
  return result;
}

std::vector<std::string> parse_name_list(const std::string& text,
                                         const std::string& what) {
  std::vector<std::string> result;
  // Bare names run to the next comma: anything but a comma or a quote may
  // be in them (spaces around are trimmed), so "list size" works unquoted.
  std::size_t i = 0;
  std::set<std::string> seen;
  auto trim = [](std::string x) {
    while (!x.empty() && std::isspace(static_cast<unsigned char>(x.back())))
      x.pop_back();
    std::size_t b = 0;
    while (b < x.size() && std::isspace(static_cast<unsigned char>(x[b])))
      ++b;
    return x.substr(b);
  };
  if (trim(text).empty())
    return result;
  for (;;) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])))
      ++i;
    std::string name;
    if (i < text.size() && text[i] == '"') {
      auto start = i++;
      for (;;) {
        if (i >= text.size())
          throw usage_error(what + ": unterminated quoted name at position "
                            + std::to_string(start + 1));
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            name += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        name += text[i++];
      }
      while (i < text.size()
             && std::isspace(static_cast<unsigned char>(text[i])))
        ++i;
      if (i < text.size() && text[i] != ',')
        throw usage_error(what + ": unexpected text after the quoted name \""
                          + name + "\"");
    } else {
      auto end = text.find(',', i);
      name = trim(text.substr(i, end == std::string::npos ? std::string::npos
                                                          : end - i));
      if (name.find('"') != std::string::npos)
        throw usage_error(what + ": a name with a quote must be quoted "
                                 "as a whole (\"a\"\"b\" for a\"b): "
                          + name);
      i = end == std::string::npos ? text.size() : end;
    }
    if (name.empty())
      throw usage_error(what + ": empty name in '" + text + "'");
    if (name.size() > 63)
      throw usage_error(what + ": name longer than 63 bytes: " + name);
    if (!seen.insert(name).second)
      throw usage_error(what + ": column '" + name + "' is given twice");
    result.push_back(std::move(name));
    if (i >= text.size())
      break;
    ++i; // the comma
  }
  return result;
}

col_class class_of_type(const std::string& t) {
  if (t == "int2" || t == "int4" || t == "int8")
    return col_class::integer;
  if (t == "numeric")
    return col_class::numeric;
  if (t == "float4" || t == "float8")
    return col_class::floating;
  if (t == "text" || t == "varchar" || t == "bpchar" || t == "name")
    return col_class::text;
  if (t == "bool")
    return col_class::boolean;
  if (t == "date")
    return col_class::date;
  if (t == "timestamp")
    return col_class::timestamp;
  if (t == "timestamptz")
    return col_class::timestamptz;
  return col_class::other;
}

namespace {

bool is_number(col_class c) {
  return c == col_class::integer || c == col_class::numeric
         || c == col_class::floating;
}

bool is_ordered(col_class c) {
  return is_number(c) || c == col_class::text || c == col_class::date
         || c == col_class::timestamp || c == col_class::timestamptz;
}

} // namespace

std::string check_applicable(const agg_expr& e, col_class cls,
                             const std::string& type) {
  auto not_for = [&](const char* needs) {
    return std::string{func_name(e.func)} + "() needs " + needs + "; \""
           + e.column + "\" is " + type;
  };
  switch (e.func) {
    case agg_func::count_rows:
    case agg_func::count:
      return {};
    case agg_func::count_distinct:
    case agg_func::approx_count_distinct:
      return {};
    case agg_func::sum:
    case agg_func::avg:
    case agg_func::stddev:
    case agg_func::quantile:
      return is_number(cls) ? std::string{}
                            : not_for("a numeric column (smallint, integer, "
                                      "bigint, numeric, real, double "
                                      "precision)");
    case agg_func::min:
    case agg_func::max:
      return is_ordered(cls) ? std::string{}
                             : not_for("a number, text, date or timestamp "
                                       "column");
  }
  return {};
}

std::string output_type(const agg_expr& e, col_class cls,
                        const std::string& type) {
  switch (e.func) {
    case agg_func::count_rows:
    case agg_func::count:
    case agg_func::count_distinct:
    case agg_func::approx_count_distinct:
      return "bigint";
    case agg_func::sum:
    case agg_func::avg:
      return cls == col_class::floating ? "double precision" : "numeric";
    case agg_func::stddev:
    case agg_func::quantile:
      return "double precision";
    case agg_func::min:
    case agg_func::max:
      return type;
  }
  return "text";
}

} // namespace flow::apps
