/* xdnlatencystamp and xdnlatencymeter: GstHarness tests of each element,
 * and pipelines through x264 and scaling. */
#include <gtest/gtest.h>

#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <cstring>
#include <string>
#include <vector>

#include "gstxdnlatencymeter.h"
#include "gstxdnlatencystamp.h"
#include "xdn-gref.h"
#include "xdn-latency-frame.h"

using xdn::adoptGRef;
using xdn::GRef;

namespace {

uint64_t
nowMs ()
{
  return static_cast<uint64_t> (g_get_real_time () / 1000);
}

class Latency : public ::testing::Test {
protected:
  static void SetUpTestSuite ()
  {
    gst_init (nullptr, nullptr);
    GST_ELEMENT_REGISTER (xdnlatencystamp, nullptr);
    GST_ELEMENT_REGISTER (xdnlatencymeter, nullptr);
  }
};

struct HarnessDeleter {
  void operator() (GstHarness *h) const { gst_harness_teardown (h); }
};
using Harness = std::unique_ptr<GstHarness, HarnessDeleter>;

Harness
makeHarness (const char *element, const char *format, int width, int height)
{
  Harness h (gst_harness_new (element));
  std::string caps = std::string ("video/x-raw,format=") + format +
      ",width=" + std::to_string (width) + ",height=" + std::to_string (height) +
      ",framerate=30/1";
  gst_harness_set_src_caps_str (h.get (), caps.c_str ());
  return h;
}

GstVideoInfo
videoInfo (const char *format, int width, int height)
{
  GstVideoInfo info;
  gst_video_info_set_format (&info, gst_video_format_from_string (format),
      width, height);
  return info;
}

/* A frame of mid grey (or whatever `fill` is) in every byte. */
GstBuffer *
greyFrame (const GstVideoInfo &info, uint8_t fill = 90, GstClockTime pts = 0)
{
  GstBuffer *buf = gst_buffer_new_allocate (nullptr, info.size, nullptr);
  gst_buffer_memset (buf, 0, fill, info.size);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = GST_SECOND / 30;
  return buf;
}

GstBuffer *
stampedFrame (const GstVideoInfo &info, uint64_t stampMs, GstClockTime pts = 0)
{
  GstBuffer *buf = greyFrame (info, 90, pts);
  GstVideoFrame frame;
  if (gst_video_frame_map (&frame, const_cast<GstVideoInfo *> (&info), buf,
          GST_MAP_WRITE)) {
    xdn::writeLatencyStamp (&frame, stampMs);
    gst_video_frame_unmap (&frame);
  }
  return buf;
}

xdn::LatencyCode::Result
readStamp (const GstVideoInfo &info, GstBuffer *buf)
{
  GstVideoFrame frame;
  if (!gst_video_frame_map (&frame, const_cast<GstVideoInfo *> (&info), buf,
          GST_MAP_READ))
    return {};
  const auto r = xdn::readLatencyStamp (&frame);
  gst_video_frame_unmap (&frame);
  return r;
}

/* Pops the element messages named `name` that are on the bus now. */
std::vector<GRef<GstMessage>>
elementMessages (GstBus *bus, const char *name)
{
  std::vector<GRef<GstMessage>> out;
  while (GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT)) {
    auto ref = adoptGRef (msg);
    if (gst_message_has_name (msg, name))
      out.push_back (ref);
  }
  return out;
}

guint64
uint64Field (GstMessage *msg, const char *field)
{
  guint64 v = G_MAXUINT64;
  EXPECT_TRUE (gst_structure_get_uint64 (gst_message_get_structure (msg), field, &v))
      << field;
  return v;
}

double
doubleField (const GstStructure *s, const char *field)
{
  double v = -1;
  EXPECT_TRUE (gst_structure_get_double (s, field, &v)) << field;
  return v;
}

const char *const kFormats[] = { "I420", "YV12", "NV12", "NV21", "Y41B", "Y42B",
  "Y444", "YUY2", "UYVY", "GRAY8", "RGBA", "BGRA", "ARGB", "RGBx", "BGRx",
  "xBGR", "RGB", "BGR" };

}  // namespace

TEST_F (Latency, StampWritesTheCurrentTimeInEveryFormat)
{
  for (const char *format : kFormats) {
    SCOPED_TRACE (format);
    const GstVideoInfo info = videoInfo (format, 320, 240);
    auto h = makeHarness ("xdnlatencystamp", format, 320, 240);

    const uint64_t before = nowMs ();
    auto out = adoptGRef (gst_harness_push_and_pull (h.get (), greyFrame (info)));
    const uint64_t after = nowMs ();
    ASSERT_TRUE (out);

    const auto r = readStamp (info, out.get ());
    ASSERT_TRUE (r.ok ()) << xdn::LatencyCode::statusName (r.status);
    const uint64_t stamp = xdn::LatencyCode::unwrap (r.stampLow, after);
    EXPECT_GE (stamp, before);
    EXPECT_LE (stamp, after);
  }
}

TEST_F (Latency, StampTouchesOnlyTheBandAndMakesItsChromaNeutral)
{
  const GstVideoInfo info = videoInfo ("I420", 320, 240);
  auto h = makeHarness ("xdnlatencystamp", "I420", 320, 240);
  auto out = adoptGRef (gst_harness_push_and_pull (h.get (), greyFrame (info, 90)));

  GstVideoFrame frame;
  ASSERT_TRUE (gst_video_frame_map (&frame, const_cast<GstVideoInfo *> (&info),
          out.get (), GST_MAP_READ));
  const int band = xdn::LatencyCode::bandHeight (240);
  for (int comp = 0; comp < 3; comp++) {
    const auto *data = static_cast<const uint8_t *> (GST_VIDEO_FRAME_COMP_DATA (&frame, comp));
    const int stride = GST_VIDEO_FRAME_COMP_STRIDE (&frame, comp);
    const int rows = comp ? (band + 1) / 2 : band;
    for (int y = 0; y < GST_VIDEO_FRAME_COMP_HEIGHT (&frame, comp); y++)
      for (int x = 0; x < GST_VIDEO_FRAME_COMP_WIDTH (&frame, comp); x++) {
        const uint8_t v = data[y * stride + x];
        if (y >= rows)
          ASSERT_EQ (v, 90) << comp << ": " << x << "," << y;
        else if (comp)
          ASSERT_EQ (v, 128) << comp << ": " << x << "," << y;
        else
          ASSERT_TRUE (v == 16 || v == 235) << x << "," << y;
      }
  }
  gst_video_frame_unmap (&frame);
}

TEST_F (Latency, StampDisabledLeavesFramesUntouched)
{
  const GstVideoInfo info = videoInfo ("I420", 320, 240);
  auto h = makeHarness ("xdnlatencystamp", "I420", 320, 240);
  g_object_set (h->element, "enabled", FALSE, nullptr);

  auto out = adoptGRef (gst_harness_push_and_pull (h.get (), greyFrame (info, 90)));
  EXPECT_EQ (readStamp (info, out.get ()).status,
      xdn::LatencyCode::Status::kNoContrast);
  EXPECT_EQ (gst_buffer_memcmp (out.get (), 0,
          std::vector<uint8_t> (info.size, 90).data (), info.size), 0);

  /* Switched back on while running. */
  g_object_set (h->element, "enabled", TRUE, nullptr);
  out = adoptGRef (gst_harness_push_and_pull (h.get (), greyFrame (info, 90)));
  EXPECT_TRUE (readStamp (info, out.get ()).ok ());
}

TEST_F (Latency, StampLeavesPicturesTooSmallUntouched)
{
  const GstVideoInfo info = videoInfo ("I420", 48, 32);
  auto h = makeHarness ("xdnlatencystamp", "I420", 48, 32);
  auto out = adoptGRef (gst_harness_push_and_pull (h.get (), greyFrame (info, 90)));
  EXPECT_EQ (gst_buffer_memcmp (out.get (), 0,
          std::vector<uint8_t> (info.size, 90).data (), info.size), 0);
}

TEST_F (Latency, MeterReadsEveryFormatAndNeverModifiesTheFrame)
{
  for (const char *format : kFormats) {
    SCOPED_TRACE (format);
    const GstVideoInfo info = videoInfo (format, 320, 240);
    auto h = makeHarness ("xdnlatencymeter", format, 320, 240);
    auto bus = adoptGRef (gst_bus_new ());
    gst_element_set_bus (h->element, bus.get ());

    const uint64_t stamp = nowMs () - 40;
    GstBuffer *in = stampedFrame (info, stamp);
    std::vector<uint8_t> before (info.size);
    gst_buffer_extract (in, 0, before.data (), before.size ());

    auto out = adoptGRef (gst_harness_push_and_pull (h.get (), in));
    EXPECT_EQ (out.get (), in) << "passthrough";
    EXPECT_EQ (gst_buffer_memcmp (out.get (), 0, before.data (), before.size ()), 0);

    auto msgs = elementMessages (bus.get (), "xdn-latency");
    ASSERT_EQ (msgs.size (), 1u);
    EXPECT_EQ (uint64Field (msgs[0].get (), "stamp-ms"), stamp);
    EXPECT_EQ (uint64Field (msgs[0].get (), "frame"), 0u);
    const double latency = doubleField (gst_message_get_structure (msgs[0].get ()),
        "latency-ms");
    EXPECT_GE (latency, 40.0);
    EXPECT_LT (latency, 1000.0);
    gst_element_set_bus (h->element, nullptr);
  }
}

TEST_F (Latency, MeterCountsUnreadableFrames)
{
  const GstVideoInfo info = videoInfo ("I420", 640, 360);
  auto h = makeHarness ("xdnlatencymeter", "I420", 640, 360);
  auto bus = adoptGRef (gst_bus_new ());
  gst_element_set_bus (h->element, bus.get ());

  for (int i = 0; i < 5; i++)
    gst_buffer_unref (gst_harness_push_and_pull (h.get (),
            greyFrame (info, i * 50, i * GST_SECOND / 30)));

  EXPECT_TRUE (elementMessages (bus.get (), "xdn-latency").empty ());
  GstStructure *stats = nullptr;
  g_object_get (h->element, "stats", &stats, nullptr);
  ASSERT_NE (stats, nullptr);
  EXPECT_TRUE (gst_structure_has_name (stats, "xdn-latency-stats"));
  guint64 read = 99, unreadable = 0;
  EXPECT_TRUE (gst_structure_get_uint64 (stats, "frames-read", &read));
  EXPECT_TRUE (gst_structure_get_uint64 (stats, "frames-unreadable", &unreadable));
  EXPECT_EQ (read, 0u);
  EXPECT_EQ (unreadable, 5u);
  EXPECT_EQ (doubleField (stats, "p50-ms"), 0.0);
  gst_structure_free (stats);
  gst_element_set_bus (h->element, nullptr);
}

TEST_F (Latency, MeterPostsSummaryAtEos)
{
  const GstVideoInfo info = videoInfo ("NV12", 640, 360);
  auto h = makeHarness ("xdnlatencymeter", "NV12", 640, 360);
  auto bus = adoptGRef (gst_bus_new ());
  gst_element_set_bus (h->element, bus.get ());

  for (int i = 0; i < 8; i++) {
    const GstClockTime pts = i * GST_SECOND / 30;
    /* Frames 2 and 5 carry no stamp. */
    GstBuffer *buf = (i == 2 || i == 5) ? greyFrame (info, 90, pts)
                                        : stampedFrame (info, nowMs () - 100, pts);
    gst_buffer_unref (gst_harness_push_and_pull (h.get (), buf));
  }
  auto perFrame = elementMessages (bus.get (), "xdn-latency");
  ASSERT_EQ (perFrame.size (), 6u);
  std::vector<guint64> indices;
  for (auto &m : perFrame)
    indices.push_back (uint64Field (m.get (), "frame"));
  EXPECT_EQ (indices, (std::vector<guint64>{ 0, 1, 3, 4, 6, 7 }));

  ASSERT_TRUE (gst_harness_push_event (h.get (), gst_event_new_eos ()));
  auto summaries = elementMessages (bus.get (), "xdn-latency-summary");
  ASSERT_EQ (summaries.size (), 1u);
  const GstStructure *s = gst_message_get_structure (summaries[0].get ());
  EXPECT_EQ (uint64Field (summaries[0].get (), "frames-read"), 6u);
  EXPECT_EQ (uint64Field (summaries[0].get (), "frames-unreadable"), 2u);
  for (const char *f : { "p50-ms", "p95-ms", "min-ms", "max-ms", "mean-ms" }) {
    EXPECT_GE (doubleField (s, f), 100.0) << f;
    EXPECT_LT (doubleField (s, f), 1100.0) << f;
  }

  /* Stopping after EOS does not post the same figures again. */
  gst_element_set_state (h->element, GST_STATE_READY);
  EXPECT_TRUE (elementMessages (bus.get (), "xdn-latency-summary").empty ());
  gst_element_set_bus (h->element, nullptr);
}

TEST_F (Latency, MeterPostsSummaryWhenStoppedWithoutEos)
{
  const GstVideoInfo info = videoInfo ("I420", 640, 360);
  auto h = makeHarness ("xdnlatencymeter", "I420", 640, 360);
  g_object_set (h->element, "post-messages", FALSE, "window", 3u, nullptr);
  auto bus = adoptGRef (gst_bus_new ());
  gst_element_set_bus (h->element, bus.get ());

  for (int i = 0; i < 4; i++)
    gst_buffer_unref (gst_harness_push_and_pull (h.get (),
            stampedFrame (info, nowMs (), i * GST_SECOND / 30)));
  EXPECT_TRUE (elementMessages (bus.get (), "xdn-latency").empty ());

  gst_element_set_state (h->element, GST_STATE_READY);
  auto summaries = elementMessages (bus.get (), "xdn-latency-summary");
  ASSERT_EQ (summaries.size (), 1u);
  EXPECT_EQ (uint64Field (summaries[0].get (), "frames-read"), 4u);
  EXPECT_EQ (uint64Field (summaries[0].get (), "frames-unreadable"), 0u);

  guint window = 0;
  g_object_get (h->element, "window", &window, nullptr);
  EXPECT_EQ (window, 3u);
  gst_element_set_bus (h->element, nullptr);
}

namespace {

struct RunResult {
  std::vector<double> latencies;
  std::vector<guint64> stamps;
  guint64 framesRead = 0;
  guint64 framesUnreadable = 0;
  bool gotSummary = false;
  std::string error;
};

/* Runs a pipeline to EOS (at most `timeoutS` seconds) and gathers what the
 * meter posted. */
RunResult
runPipeline (const std::string &description, int timeoutS = 60)
{
  RunResult result;
  GError *err = nullptr;
  auto pipeline = adoptGRef (gst_parse_launch (description.c_str (), &err));
  if (!pipeline) {
    result.error = err ? err->message : "parse failed";
    g_clear_error (&err);
    return result;
  }
  auto bus = adoptGRef (gst_element_get_bus (pipeline.get ()));
  gst_element_set_state (pipeline.get (), GST_STATE_PLAYING);

  const gint64 deadline = g_get_monotonic_time () + gint64 (timeoutS) * G_USEC_PER_SEC;
  bool done = false;
  while (!done) {
    const gint64 left = deadline - g_get_monotonic_time ();
    if (left <= 0) {
      result.error = "timed out";
      break;
    }
    GstMessage *raw = gst_bus_timed_pop_filtered (bus.get (), left * GST_USECOND,
        (GstMessageType) (GST_MESSAGE_ELEMENT | GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
    if (!raw)
      continue;
    auto msg = adoptGRef (raw);
    switch (GST_MESSAGE_TYPE (raw)) {
      case GST_MESSAGE_ERROR:{
        GError *e = nullptr;
        gst_message_parse_error (raw, &e, nullptr);
        result.error = e->message;
        g_error_free (e);
        done = true;
        break;
      }
      case GST_MESSAGE_EOS:
        done = true;
        break;
      default:{
        const GstStructure *s = gst_message_get_structure (raw);
        if (gst_structure_has_name (s, "xdn-latency")) {
          result.latencies.push_back (doubleField (s, "latency-ms"));
          result.stamps.push_back (uint64Field (raw, "stamp-ms"));
        } else if (gst_structure_has_name (s, "xdn-latency-summary")) {
          result.gotSummary = true;
          result.framesRead = uint64Field (raw, "frames-read");
          result.framesUnreadable = uint64Field (raw, "frames-unreadable");
        }
        break;
      }
    }
  }
  gst_element_set_state (pipeline.get (), GST_STATE_NULL);
  return result;
}

}  // namespace

TEST_F (Latency, StampRoundTripThroughX264At300kbps)
{
  if (!gst_registry_check_feature_version (gst_registry_get (), "x264enc", 1, 0, 0) ||
      !gst_registry_check_feature_version (gst_registry_get (), "avdec_h264", 1, 0, 0))
    GTEST_SKIP () << "x264enc or avdec_h264 missing";

  /* Colour bars scrolling sideways (every macroblock changes), and a
   * moving ball at 720p. */
  const char *const inputs[] = {
    "pattern=smpte horizontal-speed=4 ! video/x-raw,width=640,height=360,framerate=30/1",
    "pattern=ball ! video/x-raw,width=1280,height=720,framerate=30/1",
  };
  const int frames = 90;
  for (const char *input : inputs) {
    SCOPED_TRACE (input);
    const uint64_t start = nowMs ();
    const auto r = runPipeline ("videotestsrc is-live=true num-buffers=" +
        std::to_string (frames) + " " + input + " ! xdnlatencystamp ! "
        "x264enc bitrate=300 tune=zerolatency speed-preset=ultrafast ! "
        "avdec_h264 ! xdnlatencymeter ! fakesink");
    ASSERT_EQ (r.error, "");
    ASSERT_TRUE (r.gotSummary);
    EXPECT_EQ (r.framesRead + r.framesUnreadable, guint64 (frames));
    EXPECT_GE (r.framesRead, guint64 (frames * 95 / 100));
    EXPECT_EQ (r.latencies.size (), r.framesRead);
    for (double l : r.latencies) {
      EXPECT_GE (l, 0.0);
      EXPECT_LT (l, 2000.0);
    }
    for (size_t i = 1; i < r.stamps.size (); i++)
      EXPECT_GT (r.stamps[i], r.stamps[i - 1]) << i;
    ASSERT_FALSE (r.stamps.empty ());
    EXPECT_GE (r.stamps.front (), start);
    EXPECT_LE (r.stamps.back (), nowMs ());
  }
}

TEST_F (Latency, StampRoundTripThroughScaling)
{
  struct Case {
    const char *in;
    const char *out;
  };
  const Case cases[] = {
    { "format=I420,width=1280,height=720", "width=320,height=180" },
    { "format=I420,width=1280,height=720", "width=426,height=320" },
    { "format=NV12,width=1280,height=720", "format=RGBA,width=480,height=270" },
    { "format=BGRx,width=1280,height=720", "format=I420,width=640,height=480" },
    { "format=I420,width=320,height=180", "width=1280,height=720" },
  };
  for (const Case &c : cases) {
    SCOPED_TRACE (std::string (c.in) + " -> " + c.out);
    const auto r = runPipeline (std::string ("videotestsrc pattern=smpte "
        "num-buffers=20 ! video/x-raw,") + c.in + " ! xdnlatencystamp ! "
        "videoconvert ! videoscale ! video/x-raw," + c.out + " ! "
        "xdnlatencymeter ! fakesink");
    ASSERT_EQ (r.error, "");
    ASSERT_TRUE (r.gotSummary);
    EXPECT_EQ (r.framesRead, 20u);
    EXPECT_EQ (r.framesUnreadable, 0u);
  }
}

TEST_F (Latency, MeterNeverReadsUnstampedPictures)
{
  /* Moving test patterns and noise straight into the meter. */
  for (const char *pattern : { "smpte", "snow", "ball", "checkers-8", "zone-plate" }) {
    SCOPED_TRACE (pattern);
    const auto r = runPipeline (std::string ("videotestsrc num-buffers=30 pattern=") +
        pattern + " ! video/x-raw,width=640,height=360 ! xdnlatencymeter ! fakesink");
    ASSERT_EQ (r.error, "");
    EXPECT_EQ (r.framesRead, 0u);
    EXPECT_EQ (r.framesUnreadable, 30u);
    EXPECT_TRUE (r.latencies.empty ());
  }
}
