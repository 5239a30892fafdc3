// The worker-node side of flow-keyed's --agg: the reducer's name spells out
// its columns, so a node builds the same reducer from the name alone.

#include "common/keyed_aggs.hpp"

#include "flow/net/registry.hpp"

namespace flow::apps {

void register_keyed_agg_factory() {
  net::register_reducer_factory(
    "flow-keyed/",
    [](const std::string& name) -> std::optional<net::registered_reducer> {
      bool labelled = false;
      auto aggs = keyed_aggs::from_reducer_name(name, labelled);
      if (!aggs)
        return std::nullopt;
      if (labelled)
        return net::make_registered<std::int64_t>(aggs->label_reducer());
      switch (aggs->values()) {
        case value_type::int64:
          return net::make_registered<keyed_value>(aggs->int_reducer());
        case value_type::f64:
          return net::make_registered<keyed<double>>(aggs->double_reducer());
        default:
          return net::make_registered<keyed<decimal>>(aggs->decimal_reducer());
      }
    });
}

} // namespace flow::apps
