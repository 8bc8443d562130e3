/* Thin helpers over json-glib for building responses and reading requests. */
#pragma once

#include <json-glib/json-glib.h>

#include <string>

namespace xdn::json {

/* Serialises the builder's root and frees nothing: the caller owns @b. */
std::string toString (JsonBuilder *b, bool pretty = false);

inline void member (JsonBuilder *b, const char *name, const std::string &value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_string_value (b, value.c_str ());
}
inline void member (JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_string_value (b, value);
}
inline void member (JsonBuilder *b, const char *name, gint64 value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_int_value (b, value);
}
inline void member (JsonBuilder *b, const char *name, double value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_double_value (b, value);
}
inline void member (JsonBuilder *b, const char *name, bool value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_boolean_value (b, value);
}

}  // namespace xdn::json
