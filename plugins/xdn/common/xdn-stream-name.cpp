#include "xdn-stream-name.h"

namespace xdn {

std::string
streamNameError (const std::string &name)
{
  if (name.empty ())
    return "is empty";
  if (name.size () > kMaxStreamNameLength)
    return "is longer than 128 characters";
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' || c == '/';
    if (!ok)
      return "contains a character other than letters, digits and _ - . /";
  }
  if (name.find ("..") != std::string::npos)
    return "contains '..'";
  if (name.front () == '/' || name.back () == '/')
    return "starts or ends with '/'";
  if (name.find ("//") != std::string::npos)
    return "contains an empty path segment";
  return {};
}

}  // namespace xdn
