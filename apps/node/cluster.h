/* Plain pieces of the node's cluster side, kept free of GStreamer, HTTP and
 * timers so that they can be tested alone: what each role does, the
 * announced URLs, retry backoff, the linger of an idle pull, and the CPU
 * load reported to the manager. */
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace xdn {

/* ---------------------------------------------------------------- roles */

enum class NodeRole { All, Origin, Relay, Edge };

/* "all", "origin", "relay", "edge" -> role; false for anything else. */
bool parseNodeRole (const std::string &text, NodeRole *role);
const char *nodeRoleName (NodeRole role);

/* What a role does:
 *   all     ingest, serve m=request, WHEP, pull for WHEP (origin + edge)
 *   origin  ingest, serve m=request, WHEP of its own streams
 *   relay   serve m=request, pull what it serves
 *   edge    WHEP, pull for WHEP */
struct RoleAbilities {
  bool ingest = false;         /* WHIP and SRT m=publish */
  bool serveRequest = false;   /* SRT m=request from downstream nodes */
  bool whep = false;           /* WHEP viewers */
  bool pullForViewers = false; /* a WHEP for a stream not here starts a pull */
  bool pullForRequest = false; /* an m=request for a stream not here starts a pull */
};
RoleAbilities roleAbilities (NodeRole role);

/* ---------------------------------------------------- names and addresses */

/* A node id or region: 1 to 64 of [A-Za-z0-9._-]. Returns "" or what is
 * wrong ("contains ' '"). */
std::string clusterIdError (const std::string &id);

/* srt://HOST:PORT (HOST a name, an IPv4 address or [IPv6], PORT 1-65535,
 * nothing after the port but an optional '/' or '?query'). */
bool parseSrtUri (const std::string &uri, std::string *host, int *port);
/* http://... or https://... with a host. */
bool isHttpUrl (const std::string &url);

/* The address other nodes and players use to reach this one when no public
 * URL is configured: the public address, else the HTTP listen address if it
 * is not a wildcard, else the first ICE address, else @hostname. */
std::string announceAddress (const std::string &publicAddress, const std::string &httpAddress,
    const std::string &firstIceAddress, const std::string &hostname);
/* "host" or "[v6]" for use in a URL. */
std::string urlHost (const std::string &address);

/* --------------------------------------------------------------- backoff */

/* Delays for retrying: @initialMs, doubling up to @maxMs, each spread by up
 * to +-@jitter (a fraction, 0 for none) so that many nodes do not retry in
 * step. */
class Backoff {
public:
  Backoff (int initialMs, int maxMs, double jitter = 0.0,
      std::function<double ()> random = nullptr);
  /* The delay before the next attempt, then doubles it. */
  int next ();
  /* After a success: the next delay is @initialMs again. */
  void reset ();
  int attempts () const { return attempts_; }

private:
  int initialMs_, maxMs_;
  double jitter_;
  std::function<double ()> random_;  /* uniform in [0, 1) */
  int currentMs_;
  int attempts_ = 0;
};

/* ---------------------------------------------------------------- linger */

/* When to stop a pull nobody uses: @lingerUs after the last subscriber
 * left (or after the start, if nobody ever came). Times in microseconds of
 * any monotonic clock. */
class LingerTimer {
public:
  LingerTimer (int64_t lingerUs, int64_t now);
  /* Called with the current number of subscribers; returns true once the
   * pull has been idle for the linger time. */
  bool update (unsigned subscribers, int64_t now);
  /* Idle since (meaningful when idle ()). */
  int64_t idleSince () const { return idleSince_; }
  bool idle () const { return idle_; }

private:
  int64_t lingerUs_;
  int64_t idleSince_;
  bool idle_ = true;
};

/* ------------------------------------------------------------------ load */

/* utime + stime (clock ticks) from the text of /proc/<pid>/stat; false if
 * the text does not have them. */
bool parseProcStatTicks (const std::string &stat, uint64_t *ticks);

/* Share of the machine used between two samples: CPU seconds spent over
 * (wall seconds x cores), clamped to [0, 1]. */
double cpuShare (uint64_t ticksBefore, uint64_t ticksNow, double wallSeconds,
    long ticksPerSecond, int cores);

/* Samples this process' CPU use: each sample () returns the share since the
 * previous one (0 for the first). */
class CpuSampler {
public:
  double sample ();

private:
  bool have_ = false;
  uint64_t ticks_ = 0;
  int64_t at_ = 0;
};

}  // namespace xdn
