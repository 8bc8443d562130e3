/* xdn-loadtest: N WebRTC viewers against a WHEP URL, from one thread.
 *
 *   xdn-loadtest --whep http://edge:8080/whep/live/a --viewers 500 --ramp 50
 *       --duration 60 --sample 2 --json result.json
 *
 * Prints a table on stdout (and JSON with --json), progress as log lines on
 * stderr. Exit status: 0 when every viewer received media to the end, 1
 * when some failed, 2 for bad options or a setup error. */
#include "engine.h"
#include "log.h"
#include "stats.h"

#include <glib.h>
#include <gst/gst.h>
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>

using namespace xdn;
using namespace xdn::loadtest;

namespace {

/* "50", "50/s" or "2.5" viewers per second. */
bool
parseRamp (const char *text, double *out)
{
  std::string s = text;
  if (s.size () > 2 && s.compare (s.size () - 2, 2, "/s") == 0)
    s.resize (s.size () - 2);
  char *end = nullptr;
  errno = 0;
  const double v = std::strtod (s.c_str (), &end);
  if (errno || end == s.c_str () || *end || !(v > 0) || v > 100000)
    return false;
  *out = v;
  return true;
}

int
usageError (GOptionContext *context, const std::string &message)
{
  std::cerr << "xdn-loadtest: " << message << "\n\nRun 'xdn-loadtest --help' for the options.\n";
  g_option_context_free (context);
  return 2;
}

}  // namespace

int
main (int argc, char **argv)
{
  /* Signals are read from a signalfd by the engine: block them before any
   * thread (HTTP, GStreamer) starts so that none of them takes one. */
  sigset_t mask;
  sigemptyset (&mask);
  sigaddset (&mask, SIGINT);
  sigaddset (&mask, SIGTERM);
  pthread_sigmask (SIG_BLOCK, &mask, nullptr);
  signal (SIGPIPE, SIG_IGN);

  gchar *whep = nullptr, *whip = nullptr, *publishSize = nullptr, *ramp = nullptr, *json = nullptr, *iceAddress = nullptr, *token = nullptr,
        *logLevel = nullptr;
  gint viewers = -1, publishers = -1, publishBitrate = 600, sample = 0, serverPid = 0, httpConnections = 64, vanish = 0,
       verifyEvery = 1, slow = 0;
  gdouble duration = 30, connectTimeout = 15, lateMs = 100, stallTimeout = 5, progress = 2,
          serverIdle = 2, tickMs = 2, vanishAfter = 5, playDelay = 2, slowRate = 300, slowLoss = 2;
  gboolean perViewer = FALSE, quiet = FALSE;
  GOptionEntry entries[] = {
    {"whep", 0, 0, G_OPTION_ARG_STRING, &whep, "WHEP URL to play", "URL"},
    {"viewers", 'n', 0, G_OPTION_ARG_INT, &viewers, "Viewers to start (default 1 with --whep)", "N"},
    {"whip", 0, 0, G_OPTION_ARG_STRING, &whip, "WHIP URL to publish a generated stream to", "URL"},
    {"publishers", 0, 0, G_OPTION_ARG_INT, &publishers,
        "Publishers to start, all sending the same encoded stream (default 1 with --whip)", "M"},
    {"publish-size", 0, 0, G_OPTION_ARG_STRING, &publishSize,
        "Picture size of the published stream (default 640x360)", "WxH"},
    {"publish-bitrate", 0, 0, G_OPTION_ARG_INT, &publishBitrate,
        "Video bitrate of the published stream, kbit/s (default 600)", "KBPS"},
    {"play-delay", 0, 0, G_OPTION_ARG_DOUBLE, &playDelay,
        "With --whip and --whep: seconds between the last publisher sending and the first viewer "
        "(default 2)", "S"},
    {"ramp", 0, 0, G_OPTION_ARG_STRING, &ramp, "Viewers started per second (default 20)", "R[/s]"},
    {"duration", 'd', 0, G_OPTION_ARG_DOUBLE, &duration,
        "Seconds to hold once every viewer has started (default 30)", "S"},
    {"sample", 0, 0, G_OPTION_ARG_INT, &sample,
        "Viewers that decode their video and read latency stamps (default 0)", "K"},
    {"vanish", 0, 0, G_OPTION_ARG_INT, &vanish,
        "Viewers that leave without a word (no BYE, no DELETE) --vanish-after seconds after they "
        "joined, to test how the server times them out (default 0)", "K"},
    {"vanish-after", 0, 0, G_OPTION_ARG_DOUBLE, &vanishAfter,
        "Seconds after joining that --vanish viewers leave (default 5)", "S"},
    {"slow", 0, 0, G_OPTION_ARG_INT, &slow,
        "Viewers behind an emulated slow link (--slow-rate, --slow-loss) that NACK the holes in "
        "their video and ask for a keyframe when it is past repair; reported apart (default 0)", "K"},
    {"slow-rate", 0, 0, G_OPTION_ARG_DOUBLE, &slowRate,
        "Rate of the slow viewers' link, kbit/s: a token bucket 100 ms deep drops what exceeds it "
        "(default 300)", "KBITS"},
    {"slow-loss", 0, 0, G_OPTION_ARG_DOUBLE, &slowLoss,
        "Random loss on the slow viewers' link, percent, seeded so that a run repeats (default 2)",
        "PERCENT"},
    {"json", 0, 0, G_OPTION_ARG_FILENAME, &json, "Write the report as JSON to FILE ('-': stdout)", "FILE"},
    {"json-viewers", 0, 0, G_OPTION_ARG_NONE, &perViewer, "Add one entry per viewer to the JSON", nullptr},
    {"ice-address", 0, 0, G_OPTION_ARG_STRING, &iceAddress,
        "Local address of the viewers' sockets, announced as their candidate (default: any IPv4, "
        "not announced)", "ADDR"},
    {"auth-token", 0, 0, G_OPTION_ARG_STRING, &token, "Sent as Authorization: Bearer T", "T"},
    {"connect-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &connectTimeout,
        "Seconds from the POST to the first media packet before a viewer counts as failed "
        "(default 15)", "S"},
    {"late-ms", 0, 0, G_OPTION_ARG_DOUBLE, &lateMs,
        "A packet is late when its transit exceeds the smallest by this much (default 100)", "MS"},
    {"stall-timeout", 0, 0, G_OPTION_ARG_DOUBLE, &stallTimeout,
        "A connected viewer with no media for this long has failed (default 5)", "S"},
    {"verify-every", 0, 0, G_OPTION_ARG_INT, &verifyEvery,
        "Viewers that are not sampled authenticate and decrypt one SRTP packet in K and count the "
        "others from their clear RTP header, to drive more viewers per core (default 1: every "
        "packet)", "K"},
    {"server-pid", 0, 0, G_OPTION_ARG_INT, &serverPid,
        "Also measure this local process's CPU (the server) over the same window", "PID"},
    {"server-idle", 0, 0, G_OPTION_ARG_DOUBLE, &serverIdle,
        "With --server-pid: seconds to measure its idle CPU before the first viewer, subtracted "
        "from its figures (0: none; default 2)", "S"},
    {"http-connections", 0, 0, G_OPTION_ARG_INT, &httpConnections,
        "HTTP connections at once (default 64)", "N"},
    {"tick-ms", 0, 0, G_OPTION_ARG_DOUBLE, &tickMs,
        "Read the sockets at most once per this many milliseconds, in batches (0: on every "
        "packet; default 2)", "MS"},
    {"progress", 0, 0, G_OPTION_ARG_DOUBLE, &progress, "Seconds between progress lines (0: none; default 2)", "S"},
    {"quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "No table on stdout (with --json)", nullptr},
    {"log-level", 0, 0, G_OPTION_ARG_STRING, &logLevel, "debug, info, warning or error (default info)", "LEVEL"},
    {nullptr, 0, 0, G_OPTION_ARG_NONE, nullptr, nullptr, nullptr},
  };
  GOptionContext *context = g_option_context_new ("- WebRTC (WHEP) load test");
  g_option_context_set_summary (context,
      "Starts N viewers against a WHEP URL from one thread (ICE, DTLS, SRTP per viewer), counts\n"
      "what each receives (packets, loss, late packets, SRTP authentication failures), and\n"
      "reports a table and JSON. Sampled viewers decode their video and read latency stamps.");
  g_option_context_add_main_entries (context, entries, nullptr);
  GError *err = nullptr;
  if (!g_option_context_parse (context, &argc, &argv, &err)) {
    std::string m = err->message;
    g_clear_error (&err);
    return usageError (context, m);
  }

  Settings s;
  const bool playing = whep && *whep;
  const bool publishing = whip && *whip;
  if (!playing && !publishing)
    return usageError (context, "--whep URL (viewers) or --whip URL (publishers) is required");
  if (playing)
    s.whepUrl = whep;
  if (publishing)
    s.whipUrl = whip;
  if (viewers < 0)
    viewers = playing ? 1 : 0;
  if (publishers < 0)
    publishers = publishing ? 1 : 0;
  if ((viewers > 0 && !playing) || (publishers > 0 && !publishing))
    return usageError (context, "--viewers needs --whep, --publishers needs --whip");
  if (viewers > 1000000 || publishers > 100000 || viewers + publishers < 1)
    return usageError (context, "--viewers must be up to 1000000, --publishers up to 100000, "
        "and at least one of them more than 0");
  s.viewers = static_cast<unsigned> (viewers);
  s.publishers = static_cast<unsigned> (publishers);
  if (publishSize && std::sscanf (publishSize, "%dx%d", &s.source.width, &s.source.height) != 2)
    return usageError (context, "--publish-size must be WIDTHxHEIGHT, like 640x360");
  if (s.source.width < 64 || s.source.height < 64 || s.source.width > 7680 || s.source.height > 4320 ||
      s.source.width % 2 || s.source.height % 2)
    return usageError (context, "--publish-size must be even, from 64x64 to 7680x4320");
  if (publishBitrate < 50 || publishBitrate > 100000)
    return usageError (context, "--publish-bitrate must be between 50 and 100000 kbit/s");
  s.source.bitrateKbps = publishBitrate;
  if (!(playDelay >= 0))
    return usageError (context, "--play-delay must be 0 or more seconds");
  s.playDelayS = playDelay;
  if (ramp && !parseRamp (ramp, &s.rampPerSecond))
    return usageError (context, std::string ("--ramp must be a positive rate like 50 or 50/s (got '") +
        ramp + "')");
  if (!(duration >= 0) || duration > 7 * 24 * 3600)
    return usageError (context, "--duration must be 0 or more seconds");
  s.durationS = duration;
  if (sample < 0 || sample > viewers)
    return usageError (context, "--sample must be between 0 and --viewers");
  s.sample = static_cast<unsigned> (sample);
  if (vanish < 0 || vanish + sample > viewers)
    return usageError (context, "--vanish must be between 0 and --viewers minus --sample");
  s.vanish = static_cast<unsigned> (vanish);
  if (!(vanishAfter >= 0))
    return usageError (context, "--vanish-after must be 0 or more seconds");
  s.vanishAfterS = vanishAfter;
  if (slow < 0 || static_cast<gint64> (slow) + vanish + sample > viewers)
    return usageError (context, "--slow must be between 0 and --viewers minus --sample and --vanish");
  s.slow = static_cast<unsigned> (slow);
  if (!(slowRate >= 8) || slowRate > 10000000)
    return usageError (context, "--slow-rate must be between 8 and 10000000 kbit/s");
  s.slowRateKbps = slowRate;
  if (!(slowLoss >= 0) || slowLoss > 100)
    return usageError (context, "--slow-loss must be between 0 and 100 percent");
  s.slowLossPercent = slowLoss;
  if (iceAddress)
    s.iceAddress = iceAddress;
  if (token)
    s.authToken = token;
  if (!(connectTimeout > 0) || !(lateMs > 0) || !(stallTimeout > 0))
    return usageError (context, "--connect-timeout, --late-ms and --stall-timeout must be positive");
  s.connectTimeoutS = connectTimeout;
  s.lateMs = lateMs;
  s.stallTimeoutS = stallTimeout;
  if (verifyEvery < 1 || verifyEvery > 1024)
    return usageError (context, "--verify-every must be between 1 and 1024");
  s.verifyEvery = static_cast<unsigned> (verifyEvery);
  s.serverPid = serverPid;
  s.serverIdleS = serverIdle > 0 ? serverIdle : 0;
  if (httpConnections < 1 || httpConnections > 10000)
    return usageError (context, "--http-connections must be between 1 and 10000");
  s.httpConnections = static_cast<unsigned> (httpConnections);
  s.progressIntervalS = progress > 0 ? progress : 0;
  if (!(tickMs >= 0) || tickMs > 100)
    return usageError (context, "--tick-ms must be between 0 and 100");
  s.tickMs = tickMs;
  if (logLevel) {
    LogLevel level;
    if (!parseLogLevel (logLevel, &level))
      return usageError (context, "--log-level must be debug, info, warning or error");
    setLogLevel (level);
  }
  g_option_context_free (context);

  if (s.sample > 0 || s.publishers > 0)
    gst_init (nullptr, nullptr);

  int status = 0;
  {
    Engine engine (s);
    std::string error;
    if (!engine.setup (&error)) {
      std::cerr << "xdn-loadtest: " << error << "\n";
      return 2;
    }
    log (LogLevel::Info, "loadtest.started", {{"whep", s.whepUrl}, {"whip", s.whipUrl},
        {"viewers", std::to_string (s.viewers)}, {"publishers", std::to_string (s.publishers)},
        {"sample", std::to_string (s.sample)}, {"slow", std::to_string (s.slow)}});
    engine.run ();
    if (!engine.runInfo ().sourceError.empty ()) {
      std::cerr << "xdn-loadtest: " << engine.runInfo ().sourceError << "\n";
      return 2;
    }
    const std::vector<ViewerResult> results = engine.results ();
    const Summary summary = summarize (results, engine.runInfo ());
    if (!quiet)
      std::cout << formatTable (summary) << std::flush;
    if (json) {
      const std::string text = formatJson (summary, perViewer ? &results : nullptr) + "\n";
      if (std::strcmp (json, "-") == 0) {
        std::cout << text << std::flush;
      } else {
        std::ofstream out (json);
        out << text;
        if (!out) {
          std::cerr << "xdn-loadtest: cannot write " << json << "\n";
          status = 2;
        }
      }
    }
    if (status == 0)
      status = (summary.failed > 0 || summary.connected < summary.viewers ||
          summary.viewers < s.viewers || summary.publishersFailed > 0 ||
          summary.publishersConnected < summary.publishers || summary.publishers < s.publishers)
          ? 1 : 0;
  }
  g_free (whep);
  g_free (whip);
  g_free (publishSize);
  g_free (ramp);
  g_free (json);
  g_free (iceAddress);
  g_free (token);
  g_free (logLevel);
  return status;
}
