#include <gtest/gtest.h>

#include "xdn-rtp-rewriter.h"

#include <array>

namespace {

std::array<uint8_t, 16>
packet (uint8_t pt, bool marker, uint16_t seq, uint32_t ts, uint32_t ssrc)
{
  return {0x80, static_cast<uint8_t> ((marker ? 0x80 : 0) | pt),
      static_cast<uint8_t> (seq >> 8), static_cast<uint8_t> (seq),
      static_cast<uint8_t> (ts >> 24), static_cast<uint8_t> (ts >> 16),
      static_cast<uint8_t> (ts >> 8), static_cast<uint8_t> (ts),
      static_cast<uint8_t> (ssrc >> 24), static_cast<uint8_t> (ssrc >> 16),
      static_cast<uint8_t> (ssrc >> 8), static_cast<uint8_t> (ssrc),
      0xde, 0xad, 0xbe, 0xef};
}

uint16_t seqOf (const std::array<uint8_t, 16> &p) { return (p[2] << 8) | p[3]; }
uint32_t tsOf (const std::array<uint8_t, 16> &p)
{
  return (uint32_t (p[4]) << 24) | (p[5] << 16) | (p[6] << 8) | p[7];
}
uint32_t ssrcOf (const std::array<uint8_t, 16> &p)
{
  return (uint32_t (p[8]) << 24) | (p[9] << 16) | (p[10] << 8) | p[11];
}

}  // namespace

TEST (RtpRewriter, SetsPayloadTypeAndSsrcKeepingMarkerAndPayload)
{
  xdn::RtpRewriter r (102, 0x11223344);
  auto p = packet (96, true, 1000, 90000, 0xaabbccdd);
  ASSERT_TRUE (r.rewrite (p.data (), p.size ()));
  EXPECT_EQ (p[1] & 0x7f, 102);
  EXPECT_TRUE (p[1] & 0x80);
  EXPECT_EQ (ssrcOf (p), 0x11223344u);
  EXPECT_EQ (seqOf (p), 1000);
  EXPECT_EQ (tsOf (p), 90000u);
  EXPECT_EQ (p[12], 0xde);
}

TEST (RtpRewriter, KeepsSequenceContinuousAcrossASourceChange)
{
  xdn::RtpRewriter r (111, 7);
  auto a = packet (96, false, 65535, 4000000000u, 1);
  ASSERT_TRUE (r.rewrite (a.data (), a.size ()));
  auto b = packet (96, false, 0, 4000000960u, 1);  /* wraps */
  ASSERT_TRUE (r.rewrite (b.data (), b.size ()));
  EXPECT_EQ (seqOf (b), 0);

  auto c = packet (96, false, 31337, 5, 2);  /* a new publisher */
  ASSERT_TRUE (r.rewrite (c.data (), c.size ()));
  EXPECT_EQ (seqOf (c), 1);
  EXPECT_EQ (tsOf (c), 4000000961u);
  auto d = packet (96, false, 31338, 965, 2);
  ASSERT_TRUE (r.rewrite (d.data (), d.size ()));
  EXPECT_EQ (seqOf (d), 2);
  EXPECT_EQ (tsOf (d), 4000001921u);
}

TEST (RtpRewriter, RefusesWhatIsNotRtp)
{
  xdn::RtpRewriter r (96, 1);
  auto p = packet (96, false, 1, 1, 1);
  p[0] = 0x40;  /* version 1 */
  auto before = p;
  EXPECT_FALSE (r.rewrite (p.data (), p.size ()));
  EXPECT_EQ (p, before);
  EXPECT_FALSE (r.rewrite (p.data (), 11));
}
