#include "log.h"

#include <glib.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace xdn {

static std::atomic<int> min_level{static_cast<int> (LogLevel::Info)};
static std::once_flag env_once;

bool
parseLogLevel (const std::string &text, LogLevel *level)
{
  if (text == "debug") *level = LogLevel::Debug;
  else if (text == "info") *level = LogLevel::Info;
  else if (text == "warning") *level = LogLevel::Warning;
  else if (text == "error") *level = LogLevel::Error;
  else return false;
  return true;
}

void
setLogLevel (LogLevel level)
{
  /* An explicit level wins over XDN_LOG_LEVEL. */
  std::call_once (env_once, [] {});
  min_level = static_cast<int> (level);
}

static const char *
levelName (LogLevel level)
{
  switch (level) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warning: return "warning";
    case LogLevel::Error: return "error";
  }
  return "info";
}

static void
appendValue (std::string &line, const std::string &value)
{
  bool plain = !value.empty ();
  for (char c : value)
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char> (c) < 0x20)
      plain = false;
  if (plain) {
    line += value;
    return;
  }
  line += '"';
  for (char c : value) {
    if (c == '"' || c == '\\') {
      line += '\\';
      line += c;
    } else if (static_cast<unsigned char> (c) < 0x20) {
      char esc[8];
      g_snprintf (esc, sizeof esc, "\\x%02x", static_cast<unsigned char> (c));
      line += esc;
    } else {
      line += c;
    }
  }
  line += '"';
}

void
log (LogLevel level, const char *event, std::initializer_list<LogField> fields)
{
  std::call_once (env_once, [] {
    LogLevel from_env;
    const char *env = g_getenv ("XDN_LOG_LEVEL");
    if (env && parseLogLevel (env, &from_env))
      min_level = static_cast<int> (from_env);
  });
  if (static_cast<int> (level) < min_level)
    return;

  GDateTime *now = g_date_time_new_now_utc ();
  gchar *stamp = g_date_time_format (now, "%Y-%m-%dT%H:%M:%S");
  std::string line = stamp;
  char ms[8];
  g_snprintf (ms, sizeof ms, ".%03dZ", g_date_time_get_microsecond (now) / 1000);
  line += ms;
  g_free (stamp);
  g_date_time_unref (now);

  line += " level=";
  line += levelName (level);
  line += " event=";
  line += event;
  for (const auto &field : fields) {
    line += ' ';
    line += field.first;
    line += '=';
    appendValue (line, field.second);
  }
  line += '\n';
  fputs (line.c_str (), stderr);
}

}  // namespace xdn
