#include "cluster.h"

#include <glib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace xdn {

/* ---------------------------------------------------------------- roles */

bool
parseNodeRole (const std::string &text, NodeRole *role)
{
  if (text == "all")
    *role = NodeRole::All;
  else if (text == "origin")
    *role = NodeRole::Origin;
  else if (text == "relay")
    *role = NodeRole::Relay;
  else if (text == "edge")
    *role = NodeRole::Edge;
  else
    return false;
  return true;
}

const char *
nodeRoleName (NodeRole role)
{
  switch (role) {
    case NodeRole::All: return "all";
    case NodeRole::Origin: return "origin";
    case NodeRole::Relay: return "relay";
    case NodeRole::Edge: return "edge";
  }
  return "?";
}

RoleAbilities
roleAbilities (NodeRole role)
{
  RoleAbilities a;
  switch (role) {
    case NodeRole::All:
      a.ingest = a.serveRequest = a.whep = a.pullForViewers = true;
      break;
    case NodeRole::Origin:
      a.ingest = a.serveRequest = a.whep = true;
      break;
    case NodeRole::Relay:
      a.serveRequest = a.pullForRequest = true;
      break;
    case NodeRole::Edge:
      a.whep = a.pullForViewers = true;
      break;
  }
  return a;
}

/* ---------------------------------------------------- names and addresses */

std::string
clusterIdError (const std::string &id)
{
  if (id.empty ())
    return "is empty";
  if (id.size () > 64)
    return "is longer than 64 characters";
  for (char c : id) {
    if (!(g_ascii_isalnum (c) || c == '.' || c == '_' || c == '-'))
      return std::string ("contains '") + c + "' (allowed: letters, digits, . _ -)";
  }
  return "";
}

bool
parseSrtUri (const std::string &uri, std::string *host, int *port)
{
  const std::string scheme = "srt://";
  if (uri.compare (0, scheme.size (), scheme) != 0)
    return false;
  std::string rest = uri.substr (scheme.size ());
  size_t end = rest.find_first_of ("/?");
  std::string tail = end == std::string::npos ? "" : rest.substr (end);
  rest = rest.substr (0, end);
  if (!tail.empty () && tail != "/" && tail[0] != '?')
    return false;

  std::string h, p;
  if (!rest.empty () && rest[0] == '[') {
    size_t close = rest.find (']');
    if (close == std::string::npos || close + 1 >= rest.size () || rest[close + 1] != ':')
      return false;
    h = rest.substr (1, close - 1);
    p = rest.substr (close + 2);
  } else {
    size_t colon = rest.rfind (':');
    if (colon == std::string::npos || rest.find (':') != colon)
      return false;
    h = rest.substr (0, colon);
    p = rest.substr (colon + 1);
  }
  if (h.empty () || p.empty () || p.size () > 5)
    return false;
  for (char c : h)
    if (!(g_ascii_isalnum (c) || c == '.' || c == '-' || c == '_' || c == ':'))
      return false;
  for (char c : p)
    if (!g_ascii_isdigit (c))
      return false;
  int n = std::atoi (p.c_str ());
  if (n < 1 || n > 65535)
    return false;
  if (host)
    *host = h;
  if (port)
    *port = n;
  return true;
}

bool
isHttpUrl (const std::string &url)
{
  for (const char *scheme : {"http://", "https://"}) {
    size_t n = strlen (scheme);
    if (url.compare (0, n, scheme) == 0 && url.size () > n && url[n] != '/')
      return true;
  }
  return false;
}

std::string
announceAddress (const std::string &publicAddress, const std::string &httpAddress,
    const std::string &firstIceAddress, const std::string &hostname)
{
  if (!publicAddress.empty ())
    return publicAddress;
  if (!httpAddress.empty () && httpAddress != "0.0.0.0" && httpAddress != "::")
    return httpAddress;
  if (!firstIceAddress.empty ())
    return firstIceAddress;
  return hostname;
}

std::string
urlHost (const std::string &address)
{
  if (address.find (':') != std::string::npos && address[0] != '[')
    return "[" + address + "]";
  return address;
}

/* --------------------------------------------------------------- backoff */

Backoff::Backoff (int initialMs, int maxMs, double jitter, std::function<double ()> random)
    : initialMs_ (std::max (1, initialMs)), maxMs_ (std::max (initialMs, maxMs)),
      jitter_ (std::clamp (jitter, 0.0, 1.0)), random_ (std::move (random)),
      currentMs_ (initialMs_)
{
  if (!random_)
    random_ = [] { return g_random_double (); };
}

int
Backoff::next ()
{
  int base = currentMs_;
  currentMs_ = std::min (maxMs_, currentMs_ * 2);
  attempts_++;
  if (jitter_ <= 0.0)
    return base;
  double spread = (random_ () * 2.0 - 1.0) * jitter_;
  return std::max (1, static_cast<int> (base * (1.0 + spread)));
}

void
Backoff::reset ()
{
  currentMs_ = initialMs_;
  attempts_ = 0;
}

/* ---------------------------------------------------------------- linger */

LingerTimer::LingerTimer (int64_t lingerUs, int64_t now) : lingerUs_ (lingerUs), idleSince_ (now)
{
}

bool
LingerTimer::update (unsigned subscribers, int64_t now)
{
  if (subscribers > 0) {
    idle_ = false;
    return false;
  }
  if (!idle_) {
    idle_ = true;
    idleSince_ = now;
  }
  return now - idleSince_ >= lingerUs_;
}

/* ------------------------------------------------------------------ load */

bool
parseProcStatTicks (const std::string &stat, uint64_t *ticks)
{
  /* "pid (comm) state ppid ...": comm may hold spaces and parentheses, so
   * count fields from the last ')'. utime and stime are fields 14 and 15,
   * the 12th and 13th after the ')'. */
  size_t close = stat.rfind (')');
  if (close == std::string::npos)
    return false;
  std::istringstream in (stat.substr (close + 1));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 1; i <= 13; i++) {
    if (!(in >> field))
      return false;
    if (i >= 12) {
      char *end = nullptr;
      unsigned long long v = std::strtoull (field.c_str (), &end, 10);
      if (!end || *end != '\0')
        return false;
      (i == 12 ? utime : stime) = v;
    }
  }
  *ticks = utime + stime;
  return true;
}

double
cpuShare (uint64_t ticksBefore, uint64_t ticksNow, double wallSeconds, long ticksPerSecond,
    int cores)
{
  if (ticksNow < ticksBefore || wallSeconds <= 0 || ticksPerSecond <= 0 || cores <= 0)
    return 0.0;
  double cpuSeconds = double (ticksNow - ticksBefore) / double (ticksPerSecond);
  return std::clamp (cpuSeconds / (wallSeconds * cores), 0.0, 1.0);
}

double
CpuSampler::sample ()
{
  std::ifstream f ("/proc/self/stat");
  std::string text ((std::istreambuf_iterator<char> (f)), std::istreambuf_iterator<char> ());
  uint64_t ticks = 0;
  if (!parseProcStatTicks (text, &ticks))
    return 0.0;
  int64_t now = g_get_monotonic_time ();
  double share = 0.0;
  if (have_)
    share = cpuShare (ticks_, ticks, (now - at_) / 1e6, sysconf (_SC_CLK_TCK),
        std::max (1, (int) sysconf (_SC_NPROCESSORS_ONLN)));
  have_ = true;
  ticks_ = ticks;
  at_ = now;
  return share;
}

}  // namespace xdn
