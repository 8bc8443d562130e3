/* Real encoder, payloader, depayloader and decoder around the hub: a
 * publisher pipeline and a viewer pipeline joined only by the stream name. */
#include <gtest/gtest.h>

#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include <atomic>

namespace {

bool
haveElements (std::initializer_list<const char *> names)
{
  for (const char *n : names) {
    GstElementFactory *f = gst_element_factory_find (n);
    if (!f)
      return false;
    gst_object_unref (f);
  }
  return true;
}

GstElement *
launch (const char *desc)
{
  GError *err = nullptr;
  GstElement *p = gst_parse_launch (desc, &err);
  EXPECT_EQ (err, nullptr) << (err ? err->message : "");
  if (err)
    g_error_free (err);
  return p;
}

/* Fails the test on an error message on @pipeline's bus. */
void
expectNoError (GstElement *pipeline)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  while (GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR)) {
    GError *err = nullptr;
    gchar *dbg = nullptr;
    gst_message_parse_error (msg, &err, &dbg);
    ADD_FAILURE () << GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)) << ": " << err->message
                   << " (" << (dbg ? dbg : "") << ")";
    g_error_free (err);
    g_free (dbg);
    gst_message_unref (msg);
  }
  gst_object_unref (bus);
}

}  // namespace

TEST (RelayPipeline, H264FramesDecodeThroughTheHub)
{
  if (!haveElements ({"videotestsrc", "x264enc", "rtph264pay", "rtph264depay", "avdec_h264"}))
    GTEST_SKIP () << "x264enc / avdec_h264 not installed";

  GstElement *pub = launch ("videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! "
      "x264enc tune=zerolatency key-int-max=30 speed-preset=ultrafast ! "
      "rtph264pay config-interval=-1 ! xdnrelaysink stream=test/pipeline");
  GstElement *view = launch ("xdnrelaysrc stream=test/pipeline ! rtph264depay ! avdec_h264 ! "
      "appsink name=out sync=false emit-signals=false max-buffers=100 drop=true");
  ASSERT_NE (pub, nullptr);
  ASSERT_NE (view, nullptr);

  ASSERT_NE (gst_element_set_state (pub, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  /* Let the publisher's caps reach the hub so the viewer joins a stream
   * with its video track (bounded wait). */
  GstElement *sink = gst_bin_get_by_name (GST_BIN (view), "out");
  GstElement *relaysink = nullptr;
  {
    GstIterator *it = gst_bin_iterate_sinks (GST_BIN (pub));
    GValue v = G_VALUE_INIT;
    if (gst_iterator_next (it, &v) == GST_ITERATOR_OK) {
      relaysink = GST_ELEMENT (g_value_dup_object (&v));
      g_value_unset (&v);
    }
    gst_iterator_free (it);
  }
  ASSERT_NE (relaysink, nullptr);
  const gint64 caps_deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  guint64 packets = 0;
  while (packets == 0 && g_get_monotonic_time () < caps_deadline) {
    GstStructure *stats = nullptr;
    g_object_get (relaysink, "stats", &stats, nullptr);
    gst_structure_get_uint64 (stats, "packets", &packets);
    gst_structure_free (stats);
    if (packets == 0)
      g_usleep (10000);
  }
  ASSERT_GT (packets, 0u) << "the publisher sent nothing";

  ASSERT_NE (gst_element_set_state (view, GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);

  int frames = 0;
  const gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (frames < 10 && g_get_monotonic_time () < deadline) {
    GstSample *s = gst_app_sink_try_pull_sample (GST_APP_SINK (sink), 100 * GST_MSECOND);
    if (s) {
      frames++;
      gst_sample_unref (s);
    }
  }
  EXPECT_GE (frames, 10) << "decoded frames within 10 s";
  expectNoError (view);
  expectNoError (pub);

  GstStructure *stats = nullptr;
  g_object_get (relaysink, "stats", &stats, nullptr);
  guint subscribers = 0;
  gst_structure_get_uint (stats, "subscribers", &subscribers);
  EXPECT_EQ (subscribers, 1u);
  gst_structure_free (stats);

  /* The publisher goes away: the viewer's pipeline gets EOS. */
  gst_element_set_state (pub, GST_STATE_NULL);
  GstBus *bus = gst_element_get_bus (view);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, 10 * GST_SECOND,
      (GstMessageType) (GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  ASSERT_NE (msg, nullptr);
  EXPECT_EQ (GST_MESSAGE_TYPE (msg), GST_MESSAGE_EOS);
  gst_message_unref (msg);
  gst_object_unref (bus);

  gst_element_set_state (view, GST_STATE_NULL);
  gst_object_unref (relaysink);
  gst_object_unref (sink);
  gst_object_unref (view);
  gst_object_unref (pub);
}
