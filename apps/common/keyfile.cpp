#include "keyfile.h"

namespace xdn {

KeyFileReader::KeyFileReader () : kf_ (g_key_file_new ()) {}

KeyFileReader::~KeyFileReader ()
{
  g_key_file_free (kf_);
}

bool
KeyFileReader::load (const char *path, std::string *error)
{
  GError *err = nullptr;
  if (!g_key_file_load_from_file (kf_, path, G_KEY_FILE_NONE, &err)) {
    *error = std::string ("cannot read config file ") + path + ": " + err->message;
    g_error_free (err);
    return false;
  }
  return true;
}

void
KeyFileReader::str (const char *group, const char *key, std::string *out)
{
  gchar *v = g_key_file_get_string (kf_, group, key, nullptr);
  if (v)
    *out = v;
  g_free (v);
}

void
KeyFileReader::num (const char *group, const char *key, int *out)
{
  if (!error_.empty () || !g_key_file_has_key (kf_, group, key, nullptr))
    return;
  GError *e = nullptr;
  int v = g_key_file_get_integer (kf_, group, key, &e);
  if (e) {
    error_ = std::string ("config file: [") + group + "] " + key + ": " + e->message;
    g_error_free (e);
    return;
  }
  *out = v;
}

void
KeyFileReader::flag (const char *group, const char *key, bool *out)
{
  if (!error_.empty () || !g_key_file_has_key (kf_, group, key, nullptr))
    return;
  GError *e = nullptr;
  gboolean v = g_key_file_get_boolean (kf_, group, key, &e);
  if (e) {
    error_ = std::string ("config file: [") + group + "] " + key + ": " + e->message;
    g_error_free (e);
    return;
  }
  *out = v;
}

bool
KeyFileReader::ok (std::string *error) const
{
  if (error_.empty ())
    return true;
  *error = error_;
  return false;
}

bool
inRange (int v, int lo, int hi, const char *what, std::string *error)
{
  if (v >= lo && v <= hi)
    return true;
  *error = std::string (what) + " must be between " + std::to_string (lo) + " and " +
      std::to_string (hi) + " (got " + std::to_string (v) + ")";
  return false;
}

}  // namespace xdn
