#include <gtest/gtest.h>

#include <random>

#include "relay-test-util.h"
#include "xdn-rtp-keyframe.h"

using namespace relaytest;
using xdn::relay::VideoCodec;
using xdn::relay::h264PayloadStartsKeyframe;
using xdn::relay::rtpBufferStartsKeyframe;
using xdn::relay::rtpPacketStartsKeyframe;
using xdn::relay::vp8PayloadStartsKeyframe;

namespace {

bool
bufferIsKeyframe (VideoCodec codec, const Bytes &payload)
{
  GstBuffer *buf = rtpPacket (1, payload);
  bool key = rtpBufferStartsKeyframe (codec, buf);
  gst_buffer_unref (buf);
  return key;
}

}  // namespace

TEST (RtpKeyframe, H264SingleNalSpsAndIdrStartKeyframes)
{
  EXPECT_TRUE (bufferIsKeyframe (VideoCodec::H264, h264Sps ()));
  EXPECT_TRUE (bufferIsKeyframe (VideoCodec::H264, h264IdrSingle ()));
  EXPECT_FALSE (bufferIsKeyframe (VideoCodec::H264, h264Pps ()));
  EXPECT_FALSE (bufferIsKeyframe (VideoCodec::H264, h264Delta ()));
}

TEST (RtpKeyframe, H264StapAWithSpsStartsKeyframe)
{
  EXPECT_TRUE (bufferIsKeyframe (VideoCodec::H264, h264StapASpsPps ()));
  /* STAP-A of PPS + a non-IDR slice is not a keyframe. */
  Bytes pps = h264Pps (), delta = h264Delta ();
  Bytes stap = {0x78, 0x00, guint8 (pps.size ())};
  stap.insert (stap.end (), pps.begin (), pps.end ());
  stap.push_back (0x00);
  stap.push_back (guint8 (delta.size ()));
  stap.insert (stap.end (), delta.begin (), delta.end ());
  EXPECT_FALSE (bufferIsKeyframe (VideoCodec::H264, stap));
  /* An IDR after a PPS inside a STAP-A is found. */
  Bytes idr = h264IdrSingle ();
  Bytes stap2 = {0x78, 0x00, guint8 (pps.size ())};
  stap2.insert (stap2.end (), pps.begin (), pps.end ());
  stap2.push_back (0x00);
  stap2.push_back (guint8 (idr.size ()));
  stap2.insert (stap2.end (), idr.begin (), idr.end ());
  EXPECT_TRUE (bufferIsKeyframe (VideoCodec::H264, stap2));
}

TEST (RtpKeyframe, H264FuAOnlyItsStartFragmentOfAnIdrStartsKeyframe)
{
  EXPECT_TRUE (bufferIsKeyframe (VideoCodec::H264, h264FuA (true, false, 5)));
  EXPECT_FALSE (bufferIsKeyframe (VideoCodec::H264, h264FuA (false, false, 5)));
  EXPECT_FALSE (bufferIsKeyframe (VideoCodec::H264, h264FuA (false, true, 5)));
  EXPECT_FALSE (bufferIsKeyframe (VideoCodec::H264, h264FuA (true, false, 1)));
}

TEST (RtpKeyframe, Vp8KeyAndDeltaFrames)
{
  EXPECT_TRUE (bufferIsKeyframe (VideoCodec::VP8, vp8Key ()));
  EXPECT_FALSE (bufferIsKeyframe (VideoCodec::VP8, vp8Delta ()));
  /* Continuation packet of a key frame (S=0) does not start one. */
  Bytes cont = vp8Key ();
  cont[0] = 0x00;
  EXPECT_FALSE (bufferIsKeyframe (VideoCodec::VP8, cont));
  /* Partition 1 with S=1 is not the start of a frame. */
  Bytes part1 = vp8Key ();
  part1[0] = 0x11;
  EXPECT_FALSE (bufferIsKeyframe (VideoCodec::VP8, part1));
}

TEST (RtpKeyframe, Vp8ExtensionBytesAreSkipped)
{
  /* X=1: I (15-bit picture id, M=1), L (TL0PICIDX), T/K byte. */
  Bytes key = {0x90, 0xf0, 0x81, 0x23, 0x05, 0x40, 0x50, 0x01, 0x00};
  Bytes delta = {0x90, 0xf0, 0x81, 0x23, 0x05, 0x40, 0x51, 0x01, 0x00};
  EXPECT_TRUE (vp8PayloadStartsKeyframe (key.data (), key.size ()));
  EXPECT_FALSE (vp8PayloadStartsKeyframe (delta.data (), delta.size ()));
  /* 7-bit picture id only: one byte. */
  Bytes key7 = {0x90, 0x80, 0x23, 0x50};
  EXPECT_TRUE (vp8PayloadStartsKeyframe (key7.data (), key7.size ()));
  /* Descriptor cut before the frame tag. */
  Bytes cut = {0x90, 0xf0, 0x81, 0x23, 0x05};
  EXPECT_FALSE (vp8PayloadStartsKeyframe (cut.data (), cut.size ()));
}

TEST (RtpKeyframe, RtpHeaderWithCsrcsExtensionAndPadding)
{
  /* V=2 P=1 X=1 CC=1, one CSRC, a one-word extension, the SPS, 3 bytes pad. */
  Bytes sps = h264Sps ();
  Bytes pkt = {0xb1, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0x12, 0x34,
      0xaa, 0xbb, 0xcc, 0xdd,
      0xbe, 0xde, 0x00, 0x01, 0x10, 0xff, 0x00, 0x00};
  pkt.insert (pkt.end (), sps.begin (), sps.end ());
  pkt.insert (pkt.end (), {0x00, 0x00, 0x03});
  EXPECT_TRUE (rtpPacketStartsKeyframe (VideoCodec::H264, pkt.data (), pkt.size ()));

  GstBuffer *buf = gst_buffer_new_memdup (pkt.data (), pkt.size ());
  EXPECT_TRUE (rtpBufferStartsKeyframe (VideoCodec::H264, buf));
  gst_buffer_unref (buf);

  /* Padding larger than the payload is malformed. */
  pkt.back () = 0xff;
  EXPECT_FALSE (rtpPacketStartsKeyframe (VideoCodec::H264, pkt.data (), pkt.size ()));
}

TEST (RtpKeyframe, HeaderAndPayloadInSeparateMemoriesAreReadInPlace)
{
  /* Payloaders build header + payload as two memories. */
  GstBuffer *header = gst_rtp_buffer_new_allocate (0, 0, 0);
  Bytes fu = h264FuA (true, false, 5);
  GstBuffer *payload = gst_buffer_new_memdup (fu.data (), fu.size ());
  GstBuffer *buf = gst_buffer_append (header, payload);
  ASSERT_EQ (gst_buffer_n_memory (buf), 2u);
  EXPECT_TRUE (rtpBufferStartsKeyframe (VideoCodec::H264, buf));
  EXPECT_EQ (gst_buffer_n_memory (buf), 2u);
  gst_buffer_unref (buf);
}

TEST (RtpKeyframe, TruncatedAndGarbagePacketsNeverCrash)
{
  /* Every prefix of valid keyframe packets. */
  for (const Bytes &payload : {h264StapASpsPps (), h264FuA (true, false, 5), vp8Key ()}) {
    GstBuffer *buf = rtpPacket (1, payload);
    GstMapInfo map;
    ASSERT_TRUE (gst_buffer_map (buf, &map, GST_MAP_READ));
    for (size_t n = 0; n <= map.size; n++) {
      rtpPacketStartsKeyframe (VideoCodec::H264, map.data, n);
      rtpPacketStartsKeyframe (VideoCodec::VP8, map.data, n);
      GstBuffer *part = n ? gst_buffer_new_memdup (map.data, n) : gst_buffer_new ();
      rtpBufferStartsKeyframe (VideoCodec::H264, part);
      rtpBufferStartsKeyframe (VideoCodec::VP8, part);
      gst_buffer_unref (part);
      h264PayloadStartsKeyframe (map.data + 12, n > 12 ? n - 12 : 0);
      vp8PayloadStartsKeyframe (map.data + 12, n > 12 ? n - 12 : 0);
    }
    gst_buffer_unmap (buf, &map);
    gst_buffer_unref (buf);
  }
  EXPECT_FALSE (rtpPacketStartsKeyframe (VideoCodec::H264, nullptr, 100));
  EXPECT_FALSE (h264PayloadStartsKeyframe (nullptr, 0));

  /* A STAP-A whose NAL sizes point past the end. */
  Bytes stap = {0x78, 0xff, 0xff, 0x41, 0x00};
  EXPECT_FALSE (h264PayloadStartsKeyframe (stap.data (), stap.size ()));
  Bytes stap_zero = {0x78, 0x00, 0x00, 0x00, 0x00};
  EXPECT_FALSE (h264PayloadStartsKeyframe (stap_zero.data (), stap_zero.size ()));

  /* Random bytes, with and without a valid RTP version. */
  std::mt19937 rng (42);
  for (int i = 0; i < 20000; i++) {
    Bytes junk (rng () % 64);
    for (auto &b : junk)
      b = guint8 (rng ());
    if (!junk.empty () && (i & 1))
      junk[0] = (junk[0] & 0x3f) | 0x80;
    rtpPacketStartsKeyframe (VideoCodec::H264, junk.data (), junk.size ());
    rtpPacketStartsKeyframe (VideoCodec::VP8, junk.data (), junk.size ());
    h264PayloadStartsKeyframe (junk.data (), junk.size ());
    vp8PayloadStartsKeyframe (junk.data (), junk.size ());
  }
  /* Not RTP version 2. */
  Bytes v1 = {0x40, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x67};
  EXPECT_FALSE (rtpPacketStartsKeyframe (VideoCodec::H264, v1.data (), v1.size ()));
}

TEST (RtpKeyframe, CodecFromEncodingName)
{
  EXPECT_EQ (xdn::relay::videoCodecFromEncodingName ("H264"), VideoCodec::H264);
  EXPECT_EQ (xdn::relay::videoCodecFromEncodingName ("vp8"), VideoCodec::VP8);
  EXPECT_EQ (xdn::relay::videoCodecFromEncodingName ("VP9"), VideoCodec::Unknown);
  EXPECT_EQ (xdn::relay::videoCodecFromEncodingName (nullptr), VideoCodec::Unknown);
}
