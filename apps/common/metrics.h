/* Prometheus text exposition: families with HELP/TYPE, samples with
 * escaped labels. The app renders its current state through it on each
 * scrape of /metrics. */
#pragma once

#include <initializer_list>
#include <string>
#include <utility>

namespace xdn {

class MetricsWriter {
public:
  using Label = std::pair<const char *, std::string>;

  /* Starts a family; @type is "counter" or "gauge". */
  void family (const char *name, const char *type, const char *help);
  void sample (const char *name, double value, std::initializer_list<Label> labels = {});
  const std::string &text () const { return text_; }

private:
  std::string text_;
};

}  // namespace xdn
