/* Reading an app's key file (`--config FILE`, GKeyFile syntax) into its
 * settings: a key that is absent leaves the setting at its default; the
 * first bad value stops the reading with a message naming group and key.
 *
 *   KeyFileReader kf;
 *   if (!kf.load (path, &error)) ...
 *   kf.str ("http", "address", &c.httpAddress);
 *   kf.num ("http", "port", &c.httpPort);
 *   if (!kf.ok (&error)) ...
 */
#pragma once

#include <glib.h>

#include <string>

namespace xdn {

class KeyFileReader {
public:
  KeyFileReader ();
  ~KeyFileReader ();
  KeyFileReader (const KeyFileReader &) = delete;
  KeyFileReader &operator= (const KeyFileReader &) = delete;

  /* False with a message when the file cannot be read or parsed. */
  bool load (const char *path, std::string *error);

  void str (const char *group, const char *key, std::string *out);
  void num (const char *group, const char *key, int *out);
  void flag (const char *group, const char *key, bool *out);

  /* False with the first bad value's message. */
  bool ok (std::string *error) const;

private:
  GKeyFile *kf_;
  std::string error_;  /* the first bad value; empty while all is well */
};

/* True if lo <= @v <= hi, else false with "WHAT must be between LO and HI
 * (got V)". */
bool inRange (int v, int lo, int hi, const char *what, std::string *error);

}  // namespace xdn
