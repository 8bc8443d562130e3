#include "port-pool.h"

#include <cstdlib>

namespace xdn {

namespace {

/* A port number: digits only (no sign, no spaces), 1 to 65535. */
bool
parsePort (const std::string &text, int *port)
{
  if (text.empty () || text.size () > 5 ||
      text.find_first_not_of ("0123456789") != std::string::npos)
    return false;
  long v = std::strtol (text.c_str (), nullptr, 10);
  if (v < 1 || v > 65535)
    return false;
  *port = static_cast<int> (v);
  return true;
}

}  // namespace

bool
parsePortRange (const std::string &text, int *min, int *max, std::string *error)
{
  auto dash = text.find ('-');
  int lo = 0, hi = 0;
  if (dash == std::string::npos || !parsePort (text.substr (0, dash), &lo) ||
      !parsePort (text.substr (dash + 1), &hi)) {
    *error = "WebRTC port range '" + text + "' must be MIN-MAX, two ports from 1 to 65535";
    return false;
  }
  if (lo > hi) {
    *error = "WebRTC port range '" + text + "' is empty: MIN must not be above MAX";
    return false;
  }
  *min = lo;
  *max = hi;
  return true;
}

std::string
PortPool::range () const
{
  return std::to_string (min_) + "-" + std::to_string (max_);
}

int
PortPool::acquire (const std::function<bool (int port)> &bind)
{
  if (!limited ())
    return 0;
  for (int port = min_; port <= max_; port++) {
    if (held_.count (port))
      continue;
    if (bind (port)) {
      held_.insert (port);
      return port;
    }
  }
  return 0;
}

void
PortPool::release (int port)
{
  held_.erase (port);
}

}  // namespace xdn
