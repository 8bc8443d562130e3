/* Helpers shared by the relay tests: real RTP packets with real H.264 / VP8
 * payload headers, and bounded waits on harnesses. */
#pragma once

#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/rtp/rtp.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace relaytest {

using Bytes = std::vector<guint8>;

/* H.264 (RFC 6184) payloads. */
inline Bytes h264Sps () { return {0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8}; }
inline Bytes h264Pps () { return {0x68, 0xce, 0x3c, 0x80}; }
inline Bytes h264IdrSingle () { return {0x65, 0x88, 0x84, 0x00, 0x33, 0xff}; }
inline Bytes h264Delta () { return {0x41, 0x9a, 0x02, 0x04, 0x20}; }
/* STAP-A (NRI 3) holding SPS and PPS. */
inline Bytes h264StapASpsPps ()
{
  Bytes sps = h264Sps (), pps = h264Pps ();
  Bytes b = {0x78, 0x00, guint8 (sps.size ())};
  b.insert (b.end (), sps.begin (), sps.end ());
  b.push_back (0x00);
  b.push_back (guint8 (pps.size ()));
  b.insert (b.end (), pps.begin (), pps.end ());
  return b;
}
/* FU-A (indicator NRI 3 type 28), header S/E bits and NAL type. */
inline Bytes h264FuA (bool start, bool end, guint8 nal_type)
{
  return {0x7c, guint8 ((start ? 0x80 : 0) | (end ? 0x40 : 0) | nal_type), 0xb8, 0x00, 0x04};
}

/* VP8 (RFC 7741) payloads: descriptor then the first bytes of the frame. */
inline Bytes vp8Key () { return {0x10, 0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a}; }
inline Bytes vp8Delta () { return {0x10, 0x31, 0x02, 0x00}; }

inline GstBuffer *
rtpPacket (guint16 seq, const Bytes &payload, guint8 pt = 96, guint32 ts = 0,
    bool marker = false, guint32 ssrc = 0x1234)
{
  GstBuffer *buf = gst_rtp_buffer_new_allocate (payload.size (), 0, 0);
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  gst_rtp_buffer_map (buf, GST_MAP_WRITE, &rtp);
  gst_rtp_buffer_set_payload_type (&rtp, pt);
  gst_rtp_buffer_set_seq (&rtp, seq);
  gst_rtp_buffer_set_timestamp (&rtp, ts);
  gst_rtp_buffer_set_ssrc (&rtp, ssrc);
  gst_rtp_buffer_set_marker (&rtp, marker);
  if (!payload.empty ())
    memcpy (gst_rtp_buffer_get_payload (&rtp), payload.data (), payload.size ());
  gst_rtp_buffer_unmap (&rtp);
  return buf;
}

inline guint16
rtpSeq (GstBuffer *buf)
{
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  if (!gst_rtp_buffer_map (buf, GST_MAP_READ, &rtp))
    return 0xffff;
  guint16 seq = gst_rtp_buffer_get_seq (&rtp);
  gst_rtp_buffer_unmap (&rtp);
  return seq;
}

/* Bounded wait for the next buffer (nullptr after @timeout_ms). */
inline GstBuffer *
pullWithin (GstHarness *h, guint timeout_ms = 5000)
{
  const gint64 deadline = g_get_monotonic_time () + gint64 (timeout_ms) * 1000;
  while (true) {
    if (GstBuffer *b = gst_harness_try_pull (h))
      return b;
    if (g_get_monotonic_time () > deadline)
      return nullptr;
    g_usleep (500);
  }
}

/* Bounded wait for an event of @type downstream of the element; events of
 * other types before it are dropped. */
inline GstEvent *
pullEventWithin (GstHarness *h, GstEventType type, guint timeout_ms = 5000)
{
  const gint64 deadline = g_get_monotonic_time () + gint64 (timeout_ms) * 1000;
  while (true) {
    while (GstEvent *e = gst_harness_try_pull_event (h)) {
      if (GST_EVENT_TYPE (e) == type)
        return e;
      gst_event_unref (e);
    }
    if (g_get_monotonic_time () > deadline)
      return nullptr;
    g_usleep (500);
  }
}

/* Waits until @pred holds, at most @timeout_ms. */
template <typename Pred>
inline bool
waitUntil (Pred pred, guint timeout_ms = 5000)
{
  const gint64 deadline = g_get_monotonic_time () + gint64 (timeout_ms) * 1000;
  while (!pred ()) {
    if (g_get_monotonic_time () > deadline)
      return false;
    g_usleep (500);
  }
  return true;
}

/* The caps an xdnrelaysink describes for each of its tracks (its `stats`),
 * by track id; "" for a track whose caps it has not seen yet. */
inline std::map<guint, std::string>
describedCaps (GstElement *relaysink)
{
  std::map<guint, std::string> out;
  GstStructure *s = nullptr;
  g_object_get (relaysink, "stats", &s, nullptr);
  if (!s)
    return out;
  const GValue *tracks = gst_structure_get_value (s, "tracks");
  for (guint i = 0; tracks && i < gst_value_array_get_size (tracks); i++) {
    const GstStructure *t = gst_value_get_structure (gst_value_array_get_value (tracks, i));
    guint id = 0;
    gst_structure_get_uint (t, "id", &id);
    const gchar *caps = gst_structure_get_string (t, "caps");
    out[id] = caps ? caps : "";
  }
  gst_structure_free (s);
  return out;
}

/* The node's relay pipeline: an xdnrelaysrc whose pads are linked, in
 * pad-added, to the request pads of the same number (sink_N) of an
 * xdnrelaysink. Nothing else is done on the pads: what reaches the sink is
 * what the source sends. */
class RelayChain {
public:
  RelayChain (GstElement *src, GstElement *sink) : src_ (src), sink_ (sink)
  {
    pipeline_ = gst_pipeline_new (nullptr);
    gst_bin_add_many (GST_BIN (pipeline_), src_, sink_, nullptr);
    g_signal_connect (src_, "pad-added", G_CALLBACK (&RelayChain::onPadAdded), sink_);
  }
  ~RelayChain ()
  {
    gst_element_set_state (pipeline_, GST_STATE_NULL);
    gst_object_unref (pipeline_);
  }
  GstElement *pipeline () { return pipeline_; }
  GstElement *src () { return src_; }
  GstElement *sink () { return sink_; }

private:
  static void onPadAdded (GstElement *, GstPad *pad, gpointer data)
  {
    const gchar *name = GST_PAD_NAME (pad);
    const gchar *us = strrchr (name, '_');
    char sinkName[32];
    snprintf (sinkName, sizeof sinkName, "sink_%s", us ? us + 1 : "%u");
    GstPad *sinkpad = gst_element_request_pad_simple (GST_ELEMENT (data), sinkName);
    if (sinkpad) {
      gst_pad_link (pad, sinkpad);
      gst_object_unref (sinkpad);
    }
  }

  GstElement *pipeline_;
  GstElement *src_;
  GstElement *sink_;
};

}  // namespace relaytest
