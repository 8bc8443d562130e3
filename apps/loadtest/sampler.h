/* A sampled viewer's decoder: its decrypted video RTP goes through
 * appsrc ! rtph264depay ! avdec_h264 ! videoconvert ! appsink (rtpvp8depay
 * ! vp8dec for VP8), in-process, and each decoded picture's latency stamp
 * is read as xdnlatencymeter reads it (the same reader): the glass-to-glass
 * latency up to this viewer's decoded frame. */
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace xdn::loadtest {

class LatencySampler {
public:
  /* Whether the elements for @codec ("H264", "VP8") are installed; @why
   * names the missing one. */
  static bool available (const std::string &codec, std::string *why);

  LatencySampler (unsigned viewer, std::string codec, int payloadType);
  ~LatencySampler ();
  LatencySampler (const LatencySampler &) = delete;
  LatencySampler &operator= (const LatencySampler &) = delete;

  bool start (std::string *error);
  /* One decrypted RTP packet of the video source (any thread; copied). */
  void push (const uint8_t *rtp, size_t size);
  /* Stops the pipeline; the figures stay readable. */
  void stop ();
  /* Reads a pipeline error, if one was posted, into lastError () (call
   * from the caller's thread now and then). */
  void pollError ();
  std::string lastError () const;

  uint64_t framesDecoded () const { return framesDecoded_; }
  uint64_t framesUnreadable () const { return framesUnreadable_; }
  std::vector<double> latencies () const;

private:
  static GstFlowReturn onSample (GstElement *sink, gpointer self);
  GstFlowReturn handleSample (GstElement *sink);

  unsigned viewer_;
  std::string codec_;
  int payloadType_;
  GstElement *pipeline_ = nullptr;
  GstElement *appsrc_ = nullptr;
  std::atomic<bool> running_{false};
  std::atomic<uint64_t> framesDecoded_{0};
  std::atomic<uint64_t> framesUnreadable_{0};
  mutable std::mutex lock_;       /* protects latencies_ and error_ */
  std::vector<double> latencies_;
  std::string error_;
};

}  // namespace xdn::loadtest
