#include "media-source.h"

#include <gst/app/gstappsink.h>
#include <gst/video/video.h>

namespace xdn::loadtest {

MediaSource::MediaSource (MediaSourceSettings settings, Deliver deliver)
    : settings_ (settings), deliver_ (std::move (deliver))
{
}

MediaSource::~MediaSource ()
{
  stop ();
  if (videoSink_)
    gst_object_unref (videoSink_);
  if (pipeline_)
    gst_object_unref (pipeline_);
}

bool
MediaSource::start (std::string *error)
{
  for (const char *name : {"videotestsrc", "x264enc", "rtph264pay", "audiotestsrc", "opusenc",
           "rtpopuspay", "appsink"}) {
    GstElementFactory *f = gst_element_factory_find (name);
    if (!f) {
      *error = std::string ("the publishers' stream needs GStreamer element '") + name + "'";
      return false;
    }
    gst_object_unref (f);
  }
  GstElementFactory *stamp = gst_element_factory_find ("xdnlatencystamp");
  stamped_ = stamp != nullptr;
  if (stamp)
    gst_object_unref (stamp);

  const std::string description =
      "videotestsrc is-live=true pattern=ball ! video/x-raw,width=" +
      std::to_string (settings_.width) + ",height=" + std::to_string (settings_.height) +
      ",framerate=" + std::to_string (settings_.framerate) + "/1 ! " +
      (stamped_ ? "xdnlatencystamp ! " : "") +
      "videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=" +
      std::to_string (settings_.bitrateKbps) + " key-int-max=" +
      std::to_string (settings_.keyframeInterval) +
      " ! video/x-h264,profile=constrained-baseline ! rtph264pay pt=" +
      std::to_string (kSourceVideoPt) + " mtu=1200 config-interval=-1 aggregate-mode=zero-latency "
      "! appsink name=video sync=false max-buffers=200 drop=true "
      "audiotestsrc is-live=true wave=sine freq=440 volume=0.2 ! audioconvert ! audioresample "
      "! opusenc bitrate=64000 ! rtpopuspay pt=" + std::to_string (kSourceAudioPt) +
      " ! appsink name=audio sync=false max-buffers=200 drop=true";
  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch (description.c_str (), &err);
  if (!pipeline || err) {
    *error = "cannot build the publishers' stream: " + std::string (err ? err->message : "?");
    g_clear_error (&err);
    if (pipeline)
      gst_object_unref (pipeline);
    return false;
  }
  pipeline_ = GST_ELEMENT (gst_object_ref_sink (pipeline));  /* floating: taken */
  for (bool video : {true, false}) {
    GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline_), video ? "video" : "audio");
    GstAppSinkCallbacks callbacks{};
    callbacks.new_sample = video
        ? +[] (GstAppSink *s, gpointer self) { return onSample (GST_ELEMENT (s), self, true); }
        : +[] (GstAppSink *s, gpointer self) { return onSample (GST_ELEMENT (s), self, false); };
    gst_app_sink_set_callbacks (GST_APP_SINK (sink), &callbacks, this, nullptr);
    if (video)
      videoSink_ = sink;
    else
      gst_object_unref (sink);
  }
  running_ = true;
  if (gst_element_set_state (pipeline_, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    running_ = false;
    *error = "the publishers' stream does not start";
    return false;
  }
  return true;
}

void
MediaSource::stop ()
{
  if (pipeline_ && running_.exchange (false))
    gst_element_set_state (pipeline_, GST_STATE_NULL);
}

void
MediaSource::requestKeyframe ()
{
  if (!videoSink_ || !running_)
    return;
  gst_element_send_event (videoSink_,
      gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE, TRUE, 0));
}

std::string
MediaSource::pollError ()
{
  if (!pipeline_)
    return "";
  GstBus *bus = gst_element_get_bus (pipeline_);
  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  gst_object_unref (bus);
  if (!msg)
    return "";
  GError *err = nullptr;
  gst_message_parse_error (msg, &err, nullptr);
  std::string text = err ? err->message : "error";
  g_clear_error (&err);
  gst_message_unref (msg);
  return text;
}

GstFlowReturn
MediaSource::onSample (GstElement *sink, gpointer data, bool video)
{
  auto *self = static_cast<MediaSource *> (data);
  GstSample *sample = gst_app_sink_pull_sample (GST_APP_SINK (sink));
  if (!sample)
    return GST_FLOW_EOS;
  GstBuffer *buffer = gst_sample_get_buffer (sample);
  GstMapInfo map;
  if (buffer && self->running_ && gst_buffer_map (buffer, &map, GST_MAP_READ)) {
    std::vector<uint8_t> packet (map.data, map.data + map.size);
    gst_buffer_unmap (buffer, &map);
    self->deliver_ (video, std::move (packet));
  }
  gst_sample_unref (sample);
  return GST_FLOW_OK;
}

}  // namespace xdn::loadtest
