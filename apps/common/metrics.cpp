#include "metrics.h"

#include <glib.h>

namespace xdn {

void
MetricsWriter::family (const char *name, const char *type, const char *help)
{
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  text_ += help;
  text_ += "\n# TYPE ";
  text_ += name;
  text_ += ' ';
  text_ += type;
  text_ += '\n';
}

void
MetricsWriter::sample (const char *name, double value, std::initializer_list<Label> labels)
{
  text_ += name;
  if (labels.size () > 0) {
    text_ += '{';
    bool first = true;
    for (const auto &label : labels) {
      if (!first)
        text_ += ',';
      first = false;
      text_ += label.first;
      text_ += "=\"";
      for (char c : label.second) {
        if (c == '\\' || c == '"')
          text_ += '\\';
        if (c == '\n') {
          text_ += "\\n";
          continue;
        }
        text_ += c;
      }
      text_ += '"';
    }
    text_ += '}';
  }
  char number[G_ASCII_DTOSTR_BUF_SIZE];
  text_ += ' ';
  text_ += g_ascii_dtostr (number, sizeof number, value);
  text_ += '\n';
}

}  // namespace xdn
