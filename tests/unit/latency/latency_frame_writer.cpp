/* Runs one gst-launch description with xdnlatencystamp and xdnlatencymeter
 * registered, until EOS or an error (at most 30 s). Used by the tests of
 * apps/web/js/latency.js to write stamped frames without depending on the
 * whole plugin:
 *   latency-frame-writer "videotestsrc num-buffers=1 ! xdnlatencystamp ! ... ! filesink location=F"
 */
#include <gst/gst.h>

#include <cstdio>

#include "gstxdnlatencymeter.h"
#include "gstxdnlatencystamp.h"
#include "xdn-gref.h"

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  if (argc != 2) {
    fprintf (stderr, "usage: %s PIPELINE-DESCRIPTION\n", argv[0]);
    return 2;
  }
  GST_ELEMENT_REGISTER (xdnlatencystamp, nullptr);
  GST_ELEMENT_REGISTER (xdnlatencymeter, nullptr);

  GError *err = nullptr;
  auto pipeline = xdn::adoptGRef (gst_parse_launch (argv[1], &err));
  if (!pipeline) {
    fprintf (stderr, "bad pipeline: %s\n", err ? err->message : "?");
    g_clear_error (&err);
    return 2;
  }
  auto bus = xdn::adoptGRef (gst_element_get_bus (pipeline.get ()));
  gst_element_set_state (pipeline.get (), GST_STATE_PLAYING);
  auto msg = xdn::adoptGRef (gst_bus_timed_pop_filtered (bus.get (), 30 * GST_SECOND,
          (GstMessageType) (GST_MESSAGE_EOS | GST_MESSAGE_ERROR)));
  int ret = 0;
  if (!msg) {
    fprintf (stderr, "timed out\n");
    ret = 1;
  } else if (GST_MESSAGE_TYPE (msg.get ()) == GST_MESSAGE_ERROR) {
    GError *e = nullptr;
    gst_message_parse_error (msg.get (), &e, nullptr);
    fprintf (stderr, "error: %s\n", e->message);
    g_error_free (e);
    ret = 1;
  }
  gst_element_set_state (pipeline.get (), GST_STATE_NULL);
  return ret;
}
