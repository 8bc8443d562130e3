#include "validate.h"

#include "xdn-stream-name.h"

#include <glib.h>
#include <json-glib/json-glib.h>

#include <cmath>
#include <memory>
#include <set>

namespace xdn::manager {

bool
isValidNodeId (const std::string &id)
{
  if (id.empty () || id.size () > kMaxNodeIdLength)
    return false;
  for (char c : id)
    if (!g_ascii_isalnum (c) && c != '.' && c != '_' && c != '-')
      return false;
  return true;
}

bool
isValidRegion (const std::string &region)
{
  return region.empty () || isValidNodeId (region);
}

bool
isValidRole (const std::string &role)
{
  return role == "origin" || role == "relay" || role == "edge" || role == "all";
}

namespace {

bool
printableAscii (const std::string &s)
{
  for (unsigned char c : s)
    if (c <= 0x20 || c >= 0x7f)
      return false;
  return true;
}

/* Parses @url strictly; "" and the parsed URI, or the reason. */
std::string
parseUrl (const std::string &url, const char *const *schemes, GUri **out)
{
  *out = nullptr;
  if (url.empty ())
    return "is empty";
  if (url.size () > kMaxUrlLength)
    return "is longer than " + std::to_string (kMaxUrlLength) + " characters";
  if (!printableAscii (url))
    return "contains spaces or characters that are not printable ASCII";
  GError *err = nullptr;
  GUri *uri = g_uri_parse (url.c_str (), G_URI_FLAGS_NONE, &err);
  if (!uri) {
    std::string reason = std::string ("is not a URL (") + err->message + ")";
    g_error_free (err);
    return reason;
  }
  bool scheme_ok = false;
  for (const char *const *s = schemes; *s; s++)
    scheme_ok |= g_ascii_strcasecmp (g_uri_get_scheme (uri), *s) == 0;
  std::string reason;
  if (!scheme_ok)
    reason = std::string ("has scheme '") + g_uri_get_scheme (uri) + "'";
  else if (!g_uri_get_host (uri) || !*g_uri_get_host (uri))
    reason = "has no host";
  else if (g_uri_get_userinfo (uri))
    reason = "must not carry a user or password";
  else if (g_uri_get_query (uri) || g_uri_get_fragment (uri))
    reason = "must not have a query or fragment";
  if (!reason.empty ()) {
    g_uri_unref (uri);
    return reason;
  }
  *out = uri;
  return "";
}

}  // namespace

std::string
httpUrlError (const std::string &url)
{
  static const char *const schemes[] = {"http", "https", nullptr};
  GUri *uri = nullptr;
  std::string reason = parseUrl (url, schemes, &uri);
  if (!reason.empty ())
    return reason + " (expected http://host:port or https://...)";
  g_uri_unref (uri);
  /* Checked on the text: parsing removes dot segments. */
  if (url.find ("..") != std::string::npos)
    return "has '..' in it";
  return "";
}

std::string
srtUrlError (const std::string &url)
{
  static const char *const schemes[] = {"srt", nullptr};
  GUri *uri = nullptr;
  std::string reason = parseUrl (url, schemes, &uri);
  if (!reason.empty ())
    return reason + " (expected srt://host:port)";
  int port = g_uri_get_port (uri);
  std::string path = g_uri_get_path (uri);
  g_uri_unref (uri);
  if (port <= 0 || port > 65535)
    return "has no port (expected srt://host:port)";
  if (!path.empty () && path != "/")
    return "must not have a path (expected srt://host:port)";
  return "";
}

bool
tokensEqual (const std::string &a, const std::string &b)
{
  /* Compare digests: the work is the same whatever the lengths. */
  auto digest = [] (const std::string &s, guint8 *out) {
    GChecksum *c = g_checksum_new (G_CHECKSUM_SHA256);
    g_checksum_update (c, reinterpret_cast<const guchar *> (s.data ()), s.size ());
    gsize len = 32;
    g_checksum_get_digest (c, out, &len);
    g_checksum_free (c);
  };
  guint8 da[32], db[32];
  digest (a, da);
  digest (b, db);
  guint8 diff = 0;
  for (int i = 0; i < 32; i++)
    diff |= da[i] ^ db[i];
  return diff == 0;
}

int
jsonDepth (const std::string &text)
{
  int depth = 0, max = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '[' || c == '{')
      max = std::max (max, ++depth);
    else if (c == ']' || c == '}')
      depth--;
  }
  return max;
}

namespace {

/* Typed reads of the members of one JSON object; the first problem is kept
 * in @error with the member's path. Absent and null members keep the
 * default. */
class Reader {
public:
  Reader (JsonObject *object, std::string path, std::string *error)
      : object_ (object), path_ (std::move (path)), error_ (error) {}

  bool ok () const { return error_->empty (); }

  JsonNode *member (const char *key, bool required)
  {
    if (!ok ())
      return nullptr;
    JsonNode *n = json_object_get_member (object_, key);
    if (!n || JSON_NODE_HOLDS_NULL (n)) {
      if (required)
        fail (key, "is required");
      return nullptr;
    }
    return n;
  }

  void string (const char *key, bool required, std::string *out)
  {
    JsonNode *n = member (key, required);
    if (!n)
      return;
    if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING) {
      fail (key, "must be a string");
      return;
    }
    *out = json_node_get_string (n);
  }

  void integer (const char *key, int64_t lo, int64_t hi, int64_t *out)
  {
    JsonNode *n = member (key, false);
    if (!n)
      return;
    double v = 0;
    if (!number (n, &v) || v != std::floor (v)) {
      fail (key, "must be an integer");
      return;
    }
    if (v < static_cast<double> (lo) || v > static_cast<double> (hi)) {
      fail (key, "must be between " + std::to_string (lo) + " and " + std::to_string (hi));
      return;
    }
    *out = static_cast<int64_t> (v);
  }

  void real (const char *key, double lo, double hi, double *out)
  {
    JsonNode *n = member (key, false);
    if (!n)
      return;
    double v = 0;
    if (!number (n, &v)) {
      fail (key, "must be a number");
      return;
    }
    if (!(v >= lo && v <= hi)) {
      fail (key, "must be between " + std::to_string (lo) + " and " + std::to_string (hi));
      return;
    }
    *out = v;
  }

  void boolean (const char *key, bool *out)
  {
    JsonNode *n = member (key, false);
    if (!n)
      return;
    if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN) {
      fail (key, "must be true or false");
      return;
    }
    *out = json_node_get_boolean (n);
  }

  JsonObject *object (const char *key)
  {
    JsonNode *n = member (key, false);
    if (!n)
      return nullptr;
    if (!JSON_NODE_HOLDS_OBJECT (n)) {
      fail (key, "must be an object");
      return nullptr;
    }
    return json_node_get_object (n);
  }

  JsonArray *array (const char *key)
  {
    JsonNode *n = member (key, false);
    if (!n)
      return nullptr;
    if (!JSON_NODE_HOLDS_ARRAY (n)) {
      fail (key, "must be an array");
      return nullptr;
    }
    return json_node_get_array (n);
  }

  void fail (const char *key, const std::string &what)
  {
    if (ok ())
      *error_ = "'" + path_ + key + "' " + what;
  }

  const std::string &path () const { return path_; }

private:
  static bool number (JsonNode *n, double *v)
  {
    if (!JSON_NODE_HOLDS_VALUE (n))
      return false;
    GType t = json_node_get_value_type (n);
    if (t == G_TYPE_INT64)
      *v = static_cast<double> (json_node_get_int (n));
    else if (t == G_TYPE_DOUBLE)
      *v = json_node_get_double (n);
    else
      return false;
    return std::isfinite (*v);
  }

  JsonObject *object_;
  std::string path_;
  std::string *error_;
};

using ParserPtr = std::unique_ptr<JsonParser, decltype (&g_object_unref)>;

/* The root object of @body, or nullptr with @error. */
JsonObject *
parseObject (const std::string &body, ParserPtr *parser, std::string *error)
{
  if (body.empty ()) {
    *error = "empty body: a JSON object is expected";
    return nullptr;
  }
  if (jsonDepth (body) > kMaxJsonDepth) {
    *error = "JSON nested deeper than " + std::to_string (kMaxJsonDepth) + " levels";
    return nullptr;
  }
  parser->reset (json_parser_new ());
  GError *err = nullptr;
  if (!json_parser_load_from_data (parser->get (), body.data (), static_cast<gssize> (body.size ()), &err)) {
    *error = std::string ("invalid JSON: ") + (err ? err->message : "cannot parse");
    g_clear_error (&err);
    return nullptr;
  }
  JsonNode *root = json_parser_get_root (parser->get ());
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    *error = "the body must be a JSON object";
    return nullptr;
  }
  return json_node_get_object (root);
}

}  // namespace

bool
parseRegistration (const std::string &body, NodeInfo *node, std::string *error)
{
  error->clear ();
  ParserPtr parser (nullptr, g_object_unref);
  JsonObject *root = parseObject (body, &parser, error);
  if (!root)
    return false;
  NodeInfo n;
  Reader r (root, "", error);
  r.string ("id", true, &n.id);
  r.string ("role", true, &n.role);
  r.string ("region", false, &n.region);
  r.string ("http", false, &n.http);
  r.string ("srt", false, &n.srt);
  if (JsonObject *cap = r.object ("capacity")) {
    Reader c (cap, "capacity.", error);
    c.integer ("viewers", 0, 10000000, &n.capacityViewers);
    c.integer ("downstream", 0, 10000, &n.capacityDownstream);
  }
  if (!r.ok ())
    return false;
  if (!isValidNodeId (n.id)) {
    *error = "'id' must be 1-64 characters of A-Z a-z 0-9 . _ -";
    return false;
  }
  if (!isValidRole (n.role)) {
    *error = "'role' must be origin, relay, edge or all";
    return false;
  }
  if (!isValidRegion (n.region)) {
    *error = "'region' must be at most 64 characters of A-Z a-z 0-9 . _ -";
    return false;
  }
  std::string reason = httpUrlError (n.http);
  if (!reason.empty ()) {
    *error = "'http' " + (n.http.empty () ? std::string ("is required") : reason);
    return false;
  }
  bool needs_srt = n.role == "origin" || n.role == "relay";
  if (needs_srt || !n.srt.empty ()) {
    reason = srtUrlError (n.srt);
    if (!reason.empty ()) {
      *error = "'srt' " + (n.srt.empty () ? "is required for role " + n.role : reason);
      return false;
    }
  }
  *node = n;
  return true;
}

bool
parseHeartbeat (const std::string &body, NodeLoad *load, std::vector<StreamReport> *streams,
    std::string *error)
{
  error->clear ();
  ParserPtr parser (nullptr, g_object_unref);
  JsonObject *root = parseObject (body, &parser, error);
  if (!root)
    return false;
  NodeLoad l;
  std::vector<StreamReport> list;
  Reader r (root, "", error);
  if (JsonObject *lo = r.object ("load")) {
    Reader lr (lo, "load.", error);
    lr.real ("cpu", 0, 10000, &l.cpu);
    lr.integer ("viewers", 0, 1000000000, &l.viewers);
    lr.integer ("streams", 0, 10000000, &l.streams);
    lr.integer ("bitrateIn", 0, 10000000000000LL, &l.bitrateIn);
    lr.integer ("bitrateOut", 0, 10000000000000LL, &l.bitrateOut);
  }
  if (JsonArray *a = r.array ("streams")) {
    guint n = json_array_get_length (a);
    if (n > kMaxReportedStreams) {
      *error = "'streams' has more than " + std::to_string (kMaxReportedStreams) + " entries";
      return false;
    }
    std::set<std::string> seen;
    for (guint i = 0; i < n && error->empty (); i++) {
      std::string path = "streams[" + std::to_string (i) + "].";
      JsonNode *e = json_array_get_element (a, i);
      if (!JSON_NODE_HOLDS_OBJECT (e)) {
        *error = "'streams[" + std::to_string (i) + "]' must be an object";
        break;
      }
      Reader er (json_node_get_object (e), path, error);
      StreamReport s;
      er.string ("name", true, &s.name);
      er.boolean ("publishing", &s.publishing);
      er.boolean ("pulling", &s.pulling);
      er.integer ("viewers", 0, 1000000000, &s.viewers);
      if (!er.ok ())
        break;
      std::string why = streamNameError (s.name);
      if (!why.empty ()) {
        *error = "'" + path + "name' is not a valid stream name: " + why;
        break;
      }
      if (!seen.insert (s.name).second) {
        *error = "'" + path + "name' repeats stream '" + s.name + "'";
        break;
      }
      list.push_back (std::move (s));
    }
  }
  if (!error->empty ())
    return false;
  *load = l;
  *streams = std::move (list);
  return true;
}

}  // namespace xdn::manager
