/* xdn-node: the OpenXDN streaming node (all-in-one: origin + edge). */
#include "config.h"
#include "log.h"
#include "node.h"

#include <glib-unix.h>
#include <gst/gst.h>

#include <cstdio>

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);

  xdn::NodeConfig config;
  std::string error;
  if (!xdn::loadNodeConfig (&argc, &argv, &config, &error)) {
    fprintf (stderr, "xdn-node: %s\n", error.c_str ());
    return 2;
  }
  xdn::LogLevel level;
  if (!xdn::parseLogLevel (config.logLevel, &level)) {
    fprintf (stderr, "xdn-node: unknown log level '%s'\n", config.logLevel.c_str ());
    return 2;
  }
  xdn::setLogLevel (level);

  GMainLoop *loop = g_main_loop_new (nullptr, FALSE);
  auto quit = [] (gpointer data) -> gboolean {
    xdn::log (xdn::LogLevel::Info, "node.stopping");
    g_main_loop_quit (static_cast<GMainLoop *> (data));
    return G_SOURCE_REMOVE;
  };
  g_unix_signal_add (SIGINT, quit, loop);
  g_unix_signal_add (SIGTERM, quit, loop);

  int status = 0;
  {
    xdn::Node node (config);
    if (!node.start (&error)) {
      xdn::log (xdn::LogLevel::Error, "node.start_failed", {{"reason", error}});
      fprintf (stderr, "xdn-node: %s\n", error.c_str ());
      status = 1;
    } else {
      printf ("OpenXDN node is running.\n"
              "  player:    http://127.0.0.1:%d/play/%s\n"
              "  publisher: http://127.0.0.1:%d/publish/live/cam\n"
              "  WHIP:      POST http://127.0.0.1:%d/whip/{stream}\n"
              "  WHEP:      POST http://127.0.0.1:%d/whep/{stream}\n",
          node.httpPort (), config.demo ? config.demoStream.c_str () : "{stream}",
          node.httpPort (), node.httpPort (), node.httpPort ());
      if (config.srtPort > 0)
        printf ("  SRT:       srt://127.0.0.1:%d?streamid=#!::r={stream},m=publish\n", config.srtPort);
      fflush (stdout);
      g_main_loop_run (loop);
    }
    node.stop ();
  }
  g_main_loop_unref (loop);
  xdn::log (xdn::LogLevel::Info, "node.stopped");
  return status;
}
