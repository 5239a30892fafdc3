// A user-defined aggregator: the longest book title per city, next to the
// number of books and the exact mean price of each city, in one job.
//
//   from_container(books) ──batches──▶ reducers ──partial rows──▶ manager
//                                       (3 columns per key: longest title,
//                                        price moments, int64 page sum)
//
// The state type describes the aggregate by its parts: create (a default
// state), add one element, merge two states, extract (the fields), plus a
// name and an inspect function so it can travel to worker nodes.
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include <flow/flow.hpp>

/// The longest title seen; ties go to the alphabetically smaller title, so
/// the result does not depend on the order the books arrive in.
struct longest_title {
  std::string title;

  static std::string state_name() {
    return "example.longest_title";
  }

  void add(const std::string& t) {
    if (t.size() > title.size() || (t.size() == title.size() && t < title))
      title = t;
  }

  // Merging is adding the other state's title: associative and commutative.
  void merge(const longest_title& other) {
    add(other.title);
  }

  friend bool operator==(const longest_title& x, const longest_title& y) {
    return x.title == y.title;
  }

  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f,
                                                 longest_title& x) {
    return f(caf::meta::type_name("example.longest_title"), x.title);
  }
};

struct book {
  std::string city;
  std::string title;
  double price = 0;
  std::int64_t pages = 0;
};

int main() {
  std::vector<book> books;
  const char* cities[] = {"Lisbon", "Oslo", "Kraków"};
  const char* titles[] = {"Dune", "Middlemarch", "The Name of the Rose",
                          "Solaris", "War and Peace", "Ficciones"};
  for (int i = 0; i < 300000; ++i)
    books.push_back({cities[i % 3], titles[(i * 7) % 6], 9.99 + (i % 11) * 0.1,
                     100 + i % 900});
  flow::aggregators aggs;
  auto longest = aggs.add("longest_title", longest_title{});
  auto price = aggs.add("price", flow::exact_moments{});
  auto result
    = flow::pipeline<book>{}
        .add(flow::from_container(std::move(books)))
        .aggregate_with(aggs)
        .reduce(flow::per_element<book>([=](const book& b, flow::partial& out) {
          out.add(b.city, longest, b.title);
          out.add(b.city, price, b.price);
          out.add(b.city, b.pages); // the built-in exact int64 aggregate
        }))
        .run();
  if (!result) {
    std::cerr << "error: " << flow::describe(result.error()) << '\n';
    return 2;
  }
  for (auto& k : result->keys)
    std::cout << flow::to_string(k.key) << ": " << k.agg.count
              << " books, longest title '" << longest.of(k).title
              << "', mean price " << price.of(k).mean() << ", pages "
              << flow::to_string(k.agg.sum) << '\n';
  std::cout << "emitted " << result->emitted << ", aggregated "
            << result->aggregated << ", rejected " << result->rejected
            << '\n';
  return result->balanced() ? 0 : 1;
}
