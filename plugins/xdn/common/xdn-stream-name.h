/* Stream names of the stream model: `live/race-7`. Letters, digits and
 * `_ - . /`, at most 128 characters, no `..`, no leading or trailing `/`,
 * no empty path segment. */
#pragma once

#include <string>

namespace xdn {

constexpr size_t kMaxStreamNameLength = 128;

/* Returns an empty string when @name is a valid stream name, otherwise a
 * short human-readable reason ("contains '..'"). */
std::string streamNameError (const std::string &name);

inline bool isValidStreamName (const std::string &name)
{
  return streamNameError (name).empty ();
}

}  // namespace xdn
