#include "sampler.h"

#include "xdn-latency-frame.h"

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/video/video.h>

namespace xdn::loadtest {

static const char *
depayloaderFor (const std::string &codec)
{
  return codec == "VP8" ? "rtpvp8depay" : "rtph264depay";
}

static const char *
decoderFor (const std::string &codec)
{
  return codec == "VP8" ? "vp8dec" : "avdec_h264";
}

bool
LatencySampler::available (const std::string &codec, std::string *why)
{
  for (const char *name : {"appsrc", "appsink", "videoconvert", depayloaderFor (codec),
           decoderFor (codec)}) {
    GstElementFactory *f = gst_element_factory_find (name);
    if (!f) {
      if (why)
        *why = std::string ("GStreamer element '") + name + "' is not installed";
      return false;
    }
    gst_object_unref (f);
  }
  return true;
}

LatencySampler::LatencySampler (unsigned viewer, std::string codec, int payloadType)
    : viewer_ (viewer), codec_ (std::move (codec)), payloadType_ (payloadType)
{
}

LatencySampler::~LatencySampler ()
{
  stop ();
  if (appsrc_)
    gst_object_unref (appsrc_);
  if (pipeline_)
    gst_object_unref (pipeline_);
}

bool
LatencySampler::start (std::string *error)
{
  /* One decoding thread: a sample costs what one player would, no more. */
  const std::string decoderOptions = codec_ == "VP8" ? " threads=1" : " max-threads=1";
  const std::string description = std::string ("appsrc name=src is-live=true format=time "
      "do-timestamp=true max-bytes=4000000 ! ") + depayloaderFor (codec_) + " ! " +
      decoderFor (codec_) + decoderOptions + " ! videoconvert ! video/x-raw,format=I420 "
      "! appsink name=sink sync=false max-buffers=4 drop=true";
  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch (description.c_str (), &err);
  if (!pipeline || err) {
    if (error)
      *error = "cannot build the decoding pipeline: " + std::string (err ? err->message : "?");
    g_clear_error (&err);
    if (pipeline)
      gst_object_unref (pipeline);
    return false;
  }
  pipeline_ = GST_ELEMENT (gst_object_ref_sink (pipeline));  /* floating: taken */
  appsrc_ = gst_bin_get_by_name (GST_BIN (pipeline_), "src");
  GstCaps *caps = gst_caps_new_simple ("application/x-rtp",
      "media", G_TYPE_STRING, "video",
      "clock-rate", G_TYPE_INT, 90000,
      "encoding-name", G_TYPE_STRING, codec_.c_str (),
      "payload", G_TYPE_INT, payloadType_, NULL);
  gst_app_src_set_caps (GST_APP_SRC (appsrc_), caps);
  gst_caps_unref (caps);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline_), "sink");
  GstAppSinkCallbacks callbacks{};
  callbacks.new_sample = [] (GstAppSink *s, gpointer self) {
    return LatencySampler::onSample (GST_ELEMENT (s), self);
  };
  gst_app_sink_set_callbacks (GST_APP_SINK (sink), &callbacks, this, nullptr);
  gst_object_unref (sink);
  if (gst_element_set_state (pipeline_, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    if (error)
      *error = "the decoding pipeline does not start";
    return false;
  }
  running_ = true;
  return true;
}

void
LatencySampler::push (const uint8_t *rtp, size_t size)
{
  if (!running_)
    return;
  GstBuffer *buffer = gst_buffer_new_memdup (rtp, size);
  gst_app_src_push_buffer (GST_APP_SRC (appsrc_), buffer);
}

void
LatencySampler::stop ()
{
  if (!pipeline_ || !running_.exchange (false))
    return;
  gst_element_set_state (pipeline_, GST_STATE_NULL);
}

void
LatencySampler::pollError ()
{
  if (!pipeline_)
    return;
  GstBus *bus = gst_element_get_bus (pipeline_);
  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  gst_object_unref (bus);
  if (!msg)
    return;
  GError *err = nullptr;
  gst_message_parse_error (msg, &err, nullptr);
  std::string text = std::string ("decoding: ") + (err ? err->message : "error");
  g_clear_error (&err);
  gst_message_unref (msg);
  std::lock_guard<std::mutex> guard (lock_);
  if (error_.empty ())
    error_ = text;
}

std::string
LatencySampler::lastError () const
{
  std::lock_guard<std::mutex> guard (lock_);
  return error_;
}

std::vector<double>
LatencySampler::latencies () const
{
  std::lock_guard<std::mutex> guard (lock_);
  return latencies_;
}

GstFlowReturn
LatencySampler::onSample (GstElement *sink, gpointer self)
{
  return static_cast<LatencySampler *> (self)->handleSample (sink);
}

GstFlowReturn
LatencySampler::handleSample (GstElement *sink)
{
  GstSample *sample = gst_app_sink_pull_sample (GST_APP_SINK (sink));
  if (!sample)
    return GST_FLOW_EOS;
  GstVideoInfo info;
  GstBuffer *buffer = gst_sample_get_buffer (sample);
  if (buffer && gst_video_info_from_caps (&info, gst_sample_get_caps (sample))) {
    GstVideoFrame frame;
    if (gst_video_frame_map (&frame, &info, buffer, GST_MAP_READ)) {
      /* As xdnlatencymeter does: the stamp's time against the wall clock. */
      const LatencyCode::Result result = readLatencyStamp (&frame);
      const gint64 nowUs = g_get_real_time ();
      gst_video_frame_unmap (&frame);
      framesDecoded_++;
      if (result.ok ()) {
        const uint64_t stampMs = LatencyCode::unwrap (result.stampLow,
            static_cast<uint64_t> (nowUs / 1000));
        const double latencyMs = static_cast<double> (nowUs - static_cast<gint64> (stampMs) * 1000)
            / 1000.0;
        std::lock_guard<std::mutex> guard (lock_);
        latencies_.push_back (latencyMs);
      } else {
        framesUnreadable_++;
      }
    }
  }
  gst_sample_unref (sample);
  return GST_FLOW_OK;
}

}  // namespace xdn::loadtest
