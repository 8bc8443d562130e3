/* The stream load-test publishers send: one live encoder shared by all of
 * them (a test picture, latency-stamped when xdnlatencystamp is installed,
 * H.264 constrained baseline; a tone in Opus), payloaded once as RTP. Each
 * packet goes to @deliver (from GStreamer's threads); every publisher sends
 * it under its own SSRC, sequence numbers and timestamps. */
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace xdn::loadtest {

struct MediaSourceSettings {
  int width = 640;
  int height = 360;
  int bitrateKbps = 600;
  int framerate = 30;
  int keyframeInterval = 30;  /* frames */
};

constexpr int kSourceVideoPt = 96;
constexpr int kSourceAudioPt = 111;

class MediaSource {
public:
  /* @video: true for video packets. Called from streaming threads. */
  using Deliver = std::function<void (bool video, std::vector<uint8_t> packet)>;

  MediaSource (MediaSourceSettings settings, Deliver deliver);
  ~MediaSource ();
  MediaSource (const MediaSource &) = delete;
  MediaSource &operator= (const MediaSource &) = delete;

  /* False with @error when an element is missing or the pipeline fails. */
  bool start (std::string *error);
  void stop ();
  /* Asks the encoder for a keyframe (publishers got a PLI or FIR). */
  void requestKeyframe ();
  bool stamped () const { return stamped_; }
  std::string pollError ();

private:
  static GstFlowReturn onSample (GstElement *sink, gpointer self, bool video);

  MediaSourceSettings settings_;
  Deliver deliver_;
  GstElement *pipeline_ = nullptr;
  GstElement *videoSink_ = nullptr;
  bool stamped_ = false;
  std::atomic<bool> running_{false};
};

}  // namespace xdn::loadtest
