/* Structured logs: one line per event, `key=value` pairs after a timestamp
 * and a level, on stderr. Values with spaces or quotes are quoted.
 *
 *   xdn::log (xdn::LogLevel::Info, "whep.session.started",
 *       {{"stream", name}, {"session", id}, {"peer", address}});
 */
#pragma once

#include <initializer_list>
#include <string>
#include <utility>

namespace xdn {

enum class LogLevel { Debug, Info, Warning, Error };

using LogField = std::pair<const char *, std::string>;

void log (LogLevel level, const char *event, std::initializer_list<LogField> fields = {});

/* Minimum level printed; from XDN_LOG_LEVEL (debug|info|warning|error) or set. */
void setLogLevel (LogLevel level);
bool parseLogLevel (const std::string &text, LogLevel *level);

}  // namespace xdn
