#include "json.h"

namespace xdn::json {

std::string
toString (JsonBuilder *b, bool pretty)
{
  JsonNode *root = json_builder_get_root (b);
  gchar *text = json_to_string (root, pretty);
  std::string out = text;
  g_free (text);
  json_node_unref (root);
  return out;
}

}  // namespace xdn::json
