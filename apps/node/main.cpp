/* xdn-node: the OpenXDN streaming node (origin, relay, edge, or all-in-one). */
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

  /* Find the xdn plugin next to this build or where it was installed when
   * GST_PLUGIN_PATH does not name it. */
  GstRegistry *registry = gst_registry_get ();
  GstPlugin *plugin = gst_registry_find_plugin (registry, "xdn");
  if (plugin)
    gst_object_unref (plugin);
  else
    for (const char *dir : {XDN_PLUGIN_BUILD_DIR, XDN_PLUGIN_INSTALL_DIR})
      gst_registry_scan_path (registry, dir);

  xdn::NodeConfig config;
  std::string error;
  if (!xdn::loadNodeConfig (&argc, &argv, &config, &error)) {
    fprintf (stderr, "xdn-node: %s\n", error.c_str ());
    return 2;
  }
  if (!config.logLevel.empty ()) {
    xdn::LogLevel level;
    if (!xdn::parseLogLevel (config.logLevel, &level)) {
      fprintf (stderr, "xdn-node: unknown log level '%s'\n", config.logLevel.c_str ());
      return 2;
    }
    xdn::setLogLevel (level);
  }

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
      const xdn::RoleAbilities can = xdn::roleAbilities (config.nodeRole);
      const int port = node.httpPort ();
      printf ("OpenXDN node is running (role %s).\n", xdn::nodeRoleName (config.nodeRole));
      if (can.whep)
        printf ("  player:    http://127.0.0.1:%d/play/%s\n"
                "  WHEP:      POST http://127.0.0.1:%d/whep/{stream}\n",
            port, config.demo ? config.demoStream.c_str () : "{stream}", port);
      if (can.ingest) {
        printf ("  publisher: http://127.0.0.1:%d/publish/live/cam\n"
                "  WHIP:      POST http://127.0.0.1:%d/whip/{stream}\n", port, port);
        if (config.srtPort > 0)
          printf ("  SRT:       srt://127.0.0.1:%d?streamid=#!::r={stream},m=publish\n", config.srtPort);
      }
      if (can.serveRequest && config.srtPort > 0)
        printf ("  relay:     srt://127.0.0.1:%d?streamid=#!::r={stream},m=request\n", config.srtPort);
      if (!config.manager.empty ())
        printf ("  manager:   %s (node %s)\n", config.manager.c_str (), node.config ().nodeId.c_str ());
      fflush (stdout);
      g_main_loop_run (loop);
    }
    node.stop ();
  }
  g_main_loop_unref (loop);
  xdn::log (xdn::LogLevel::Info, "node.stopped");
  return status;
}
