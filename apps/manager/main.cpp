/* xdn-manager: the OpenXDN stream manager (control plane). */
#include "config.h"
#include "log.h"
#include "manager.h"

#include <glib-unix.h>

#include <cstdio>

int
main (int argc, char **argv)
{
  xdn::manager::ManagerConfig config;
  std::string error;
  if (!xdn::manager::loadManagerConfig (&argc, &argv, &config, &error)) {
    fprintf (stderr, "xdn-manager: %s\n", error.c_str ());
    return 2;
  }
  if (!config.logLevel.empty ()) {
    xdn::LogLevel level;
    if (!xdn::parseLogLevel (config.logLevel, &level)) {
      fprintf (stderr, "xdn-manager: unknown log level '%s'\n", config.logLevel.c_str ());
      return 2;
    }
    xdn::setLogLevel (level);
  }

  GMainLoop *loop = g_main_loop_new (nullptr, FALSE);
  auto quit = [] (gpointer data) -> gboolean {
    xdn::log (xdn::LogLevel::Info, "manager.stopping");
    g_main_loop_quit (static_cast<GMainLoop *> (data));
    return G_SOURCE_REMOVE;
  };
  g_unix_signal_add (SIGINT, quit, loop);
  g_unix_signal_add (SIGTERM, quit, loop);

  int status = 0;
  {
    xdn::manager::Manager manager (config);
    if (!manager.start (&error)) {
      xdn::log (xdn::LogLevel::Error, "manager.start_failed", {{"reason", error}});
      fprintf (stderr, "xdn-manager: %s\n", error.c_str ());
      status = 1;
    } else {
      printf ("OpenXDN stream manager is running.\n"
              "  API:     http://127.0.0.1:%d/api/v1/\n"
              "  store:   %s\n"
              "  player:  http://127.0.0.1:%d/play/{stream}\n",
          manager.httpPort (), config.db.c_str (), manager.httpPort ());
      fflush (stdout);
      g_main_loop_run (loop);
    }
    manager.stop ();
  }
  g_main_loop_unref (loop);
  xdn::log (xdn::LogLevel::Info, "manager.stopped");
  return status;
}
