/* The relay wire format: messages, fragments, stream descriptions. */
#include <gtest/gtest.h>

#include <gst/gst.h>

#include <cstring>
#include <string>
#include <vector>

#include "relay-test-util.h"
#include "xdn-relay-srt.h"
#include "xdn-relay-wire.h"

using namespace xdn;
using namespace xdn::relay;
namespace wire = xdn::relay::wire;

namespace {

const char *kH264Caps = "application/x-rtp, media=(string)video, clock-rate=(int)90000, "
    "encoding-name=(string)H264, payload=(int)96, packetization-mode=(string)1, "
    "sprop-parameter-sets=(string)\"Z0LAH9oBQBboQAAAAwBAAAAPI8YMqA\\=\\=\\,aM48gA\\=\\=\"";
const char *kOpusCaps = "application/x-rtp, media=(string)audio, clock-rate=(int)48000, "
    "encoding-name=(string)OPUS, payload=(int)111";

std::vector<uint8_t>
message (wire::Kind kind, guint16 track, const std::vector<uint8_t> &body = {})
{
  std::vector<uint8_t> m (wire::kHeaderSize + body.size ());
  wire::writeHeader (m.data (), kind, track);
  std::copy (body.begin (), body.end (), m.begin () + wire::kHeaderSize);
  return m;
}

std::vector<uint8_t>
rtpBytes (guint16 seq, size_t payload)
{
  relaytest::Bytes p (payload);
  for (size_t i = 0; i < payload; i++)
    p[i] = uint8_t (i * 7 + seq);
  GstBuffer *b = relaytest::rtpPacket (seq, p);
  std::vector<uint8_t> out (gst_buffer_get_size (b));
  gst_buffer_extract (b, 0, out.data (), out.size ());
  gst_buffer_unref (b);
  return out;
}

TrackDescription
track (guint id, const char *caps)
{
  TrackDescription t;
  t.id = id;
  t.caps = adoptGRef (gst_caps_from_string (caps));
  t.kind = trackKindFromCaps (t.caps.get ());
  return t;
}

}  // namespace

TEST (RelayWire, RtpMessageRoundTrip)
{
  const auto rtp = rtpBytes (4242, 1188);
  const auto m = message (wire::Kind::Rtp, 513, rtp);
  ASSERT_EQ (m.size (), 1204u);
  EXPECT_EQ (m[0], wire::kVersion);
  EXPECT_EQ (m[2], 0x02);  /* track, big endian */
  EXPECT_EQ (m[3], 0x01);

  wire::Message parsed;
  ASSERT_EQ (wire::parseMessage (m.data (), m.size (), parsed), wire::Error::None);
  EXPECT_EQ (parsed.kind, wire::Kind::Rtp);
  EXPECT_EQ (parsed.track, 513);
  ASSERT_EQ (parsed.bodySize, rtp.size ());
  EXPECT_EQ (memcmp (parsed.body, rtp.data (), rtp.size ()), 0);
}

TEST (RelayWire, ControlMessagesRoundTrip)
{
  for (auto kind : {wire::Kind::TrackEnd, wire::Kind::StreamEnd, wire::Kind::KeyframeRequest}) {
    const auto m = message (kind, 7);
    wire::Message parsed;
    ASSERT_EQ (wire::parseMessage (m.data (), m.size (), parsed), wire::Error::None)
        << wire::kindName (kind);
    EXPECT_EQ (parsed.kind, kind);
    EXPECT_EQ (parsed.track, 7);
    EXPECT_EQ (parsed.bodySize, 0u);
  }
  /* Bytes after a body-less message are a later extension: ignored. */
  const auto extended = message (wire::Kind::KeyframeRequest, 3, {1, 2, 3});
  wire::Message parsed;
  EXPECT_EQ (wire::parseMessage (extended.data (), extended.size (), parsed), wire::Error::None);
  EXPECT_EQ (parsed.track, 3);
}

TEST (RelayWire, RejectsTruncatedMessages)
{
  wire::Message parsed;
  const uint8_t three[] = {wire::kVersion, uint8_t (wire::Kind::StreamEnd), 0};
  EXPECT_EQ (wire::parseMessage (three, sizeof three, parsed), wire::Error::Truncated);
  EXPECT_EQ (wire::parseMessage (nullptr, 0, parsed), wire::Error::Truncated);
  /* RTP shorter than the fixed RTP header. */
  const auto short_rtp = message (wire::Kind::Rtp, 0, {0x80, 0x60, 0, 1, 0, 0});
  EXPECT_EQ (wire::parseMessage (short_rtp.data (), short_rtp.size (), parsed),
      wire::Error::Truncated);
  const auto empty_desc = message (wire::Kind::Description, 0);
  EXPECT_EQ (wire::parseMessage (empty_desc.data (), empty_desc.size (), parsed),
      wire::Error::Truncated);
  const auto short_frag = message (wire::Kind::Fragment, 0, {0, 1, 0, 0, 0, 2});
  EXPECT_EQ (wire::parseMessage (short_frag.data (), short_frag.size (), parsed),
      wire::Error::Truncated);
}

TEST (RelayWire, RejectsUnknownVersionAndKind)
{
  wire::Message parsed;
  auto m = message (wire::Kind::Rtp, 0, rtpBytes (1, 20));
  m[0] = 2;
  EXPECT_EQ (wire::parseMessage (m.data (), m.size (), parsed), wire::Error::BadVersion);
  m[0] = 0;
  EXPECT_EQ (wire::parseMessage (m.data (), m.size (), parsed), wire::Error::BadVersion);
  m[0] = wire::kVersion;
  m[1] = 0;
  EXPECT_EQ (wire::parseMessage (m.data (), m.size (), parsed), wire::Error::UnknownKind);
  m[1] = 7;
  EXPECT_EQ (wire::parseMessage (m.data (), m.size (), parsed), wire::Error::UnknownKind);
  m[1] = 0xff;
  EXPECT_EQ (wire::parseMessage (m.data (), m.size (), parsed), wire::Error::UnknownKind);
}

TEST (RelayWire, RejectsRtpThatIsNotRtp)
{
  wire::Message parsed;
  auto rtp = rtpBytes (1, 20);
  rtp[0] = 0x40;  /* RTP version 1 */
  const auto m = message (wire::Kind::Rtp, 0, rtp);
  EXPECT_EQ (wire::parseMessage (m.data (), m.size (), parsed), wire::Error::BadBody);
}

TEST (RelayWire, RejectsOversizedMessages)
{
  wire::Message parsed;
  std::vector<uint8_t> big (wire::kMaxMessageSize + 1, 0x80);
  wire::writeHeader (big.data (), wire::Kind::Description, 0);
  EXPECT_EQ (wire::parseMessage (big.data (), big.size (), parsed), wire::Error::Oversized);
  /* The fragmenter refuses to make one. */
  EXPECT_FALSE (wire::fragmentMessage (big.data (), big.size (), 1316, 1,
      [] (const uint8_t *, size_t) { return true; }));
}

TEST (RelayWire, FragmentsReassembleToTheSameMessage)
{
  std::string json (5000, 'x');
  std::vector<uint8_t> body (json.begin (), json.end ());
  for (size_t i = 0; i < body.size (); i++)
    body[i] = uint8_t ('a' + i % 26);
  const auto whole = message (wire::Kind::Description, 0, body);

  std::vector<std::vector<uint8_t>> pieces;
  ASSERT_TRUE (wire::fragmentMessage (whole.data (), whole.size (), 1316, 77,
      [&] (const uint8_t *d, size_t n) {
        pieces.emplace_back (d, d + n);
        return true;
      }));
  ASSERT_EQ (pieces.size (), 4u);
  wire::Reassembler r;
  std::vector<uint8_t> out;
  for (size_t i = 0; i < pieces.size (); i++) {
    EXPECT_LE (pieces[i].size (), 1316u);
    wire::Message m;
    ASSERT_EQ (wire::parseMessage (pieces[i].data (), pieces[i].size (), m), wire::Error::None);
    ASSERT_EQ (m.kind, wire::Kind::Fragment);
    wire::Error e;
    auto result = r.feed (m.body, m.bodySize, out, e);
    EXPECT_EQ (e, wire::Error::None);
    EXPECT_EQ (result, i + 1 < pieces.size () ? wire::Reassembler::Result::Incomplete
        : wire::Reassembler::Result::Complete);
  }
  EXPECT_EQ (out, whole);
  EXPECT_EQ (r.abandoned (), 0u);
}

TEST (RelayWire, MissingFragmentLosesOnlyItsMessage)
{
  std::vector<uint8_t> body (3000, 'z');
  const auto first = message (wire::Kind::Description, 0, body);
  body.assign (2800, 'y');
  const auto second = message (wire::Kind::Description, 0, body);
  std::vector<std::vector<uint8_t>> pieces;
  auto collect = [&] (const uint8_t *d, size_t n) {
    pieces.emplace_back (d + wire::kHeaderSize, d + n);  /* fragment bodies */
    return true;
  };
  ASSERT_TRUE (wire::fragmentMessage (first.data (), first.size (), 1316, 1, collect));
  const size_t first_count = pieces.size ();
  ASSERT_TRUE (wire::fragmentMessage (second.data (), second.size (), 1316, 2, collect));

  wire::Reassembler r;
  std::vector<uint8_t> out;
  wire::Error e;
  int complete = 0;
  for (size_t i = 0; i < pieces.size (); i++) {
    if (i == 1)
      continue;  /* lost on the way */
    if (r.feed (pieces[i].data (), pieces[i].size (), out, e) == wire::Reassembler::Result::Complete) {
      complete++;
      EXPECT_EQ (out, second);
    }
  }
  EXPECT_EQ (complete, 1);
  EXPECT_EQ (r.abandoned (), 1u);
  (void) first_count;
}

TEST (RelayWire, RejectsMalformedFragments)
{
  wire::Reassembler r;
  std::vector<uint8_t> out;
  wire::Error e;
  /* count < 2 */
  const uint8_t one[] = {0, 1, 0, 0, 0, 1, 'x'};
  EXPECT_EQ (r.feed (one, sizeof one, out, e), wire::Reassembler::Result::Error);
  EXPECT_EQ (e, wire::Error::BadFragment);
  /* index >= count */
  const uint8_t beyond[] = {0, 1, 0, 3, 0, 2, 'x'};
  EXPECT_EQ (r.feed (beyond, sizeof beyond, out, e), wire::Reassembler::Result::Error);
  EXPECT_EQ (e, wire::Error::BadFragment);
  /* no bytes */
  const uint8_t bare[] = {0, 1, 0, 0, 0, 2};
  EXPECT_EQ (r.feed (bare, sizeof bare, out, e), wire::Reassembler::Result::Error);
  EXPECT_EQ (e, wire::Error::Truncated);
  /* A fragment inside a fragment. */
  const uint8_t nested_a[] = {0, 9, 0, 0, 0, 2, wire::kVersion, uint8_t (wire::Kind::Fragment)};
  const uint8_t nested_b[] = {0, 9, 0, 1, 0, 2, 0, 0};
  EXPECT_EQ (r.feed (nested_a, sizeof nested_a, out, e), wire::Reassembler::Result::Incomplete);
  EXPECT_EQ (r.feed (nested_b, sizeof nested_b, out, e), wire::Reassembler::Result::Error);
  EXPECT_EQ (e, wire::Error::BadFragment);
}

TEST (RelayWire, RejectsReassemblyBeyondTheLimit)
{
  /* 60000 fragments announced: the reassembler stops at kMaxMessageSize. */
  wire::Reassembler r;
  std::vector<uint8_t> out;
  wire::Error e = wire::Error::None;
  std::vector<uint8_t> frag (6 + 1300, 'q');
  frag[0] = 0;
  frag[1] = 5;
  frag[4] = 0xea;
  frag[5] = 0x60;
  wire::Reassembler::Result result = wire::Reassembler::Result::Incomplete;
  for (guint16 i = 0; i < 100 && result == wire::Reassembler::Result::Incomplete; i++) {
    frag[2] = uint8_t (i >> 8);
    frag[3] = uint8_t (i & 0xff);
    result = r.feed (frag.data (), frag.size (), out, e);
  }
  EXPECT_EQ (result, wire::Reassembler::Result::Error);
  EXPECT_EQ (e, wire::Error::Oversized);
}

TEST (RelayWire, DescriptionRoundTrip)
{
  std::vector<TrackDescription> tracks = {track (0, kH264Caps), track (1, kOpusCaps),
      track (2, "application/x-rtp, media=(string)application, encoding-name=(string)X-DATA, "
          "clock-rate=(int)90000, payload=(int)100")};
  const std::string json = wire::encodeDescription ("live/race-7", tracks);
  wire::Description d;
  std::string error;
  ASSERT_TRUE (wire::decodeDescription (json.data (), json.size (), d, error)) << error;
  EXPECT_EQ (d.stream, "live/race-7");
  ASSERT_EQ (d.tracks.size (), 3u);
  for (size_t i = 0; i < 3; i++) {
    EXPECT_EQ (d.tracks[i].id, tracks[i].id);
    EXPECT_EQ (d.tracks[i].kind, tracks[i].kind);
    EXPECT_TRUE (gst_caps_is_equal (d.tracks[i].caps.get (), tracks[i].caps.get ()))
        << i << ": " << json;
  }
  EXPECT_EQ (d.tracks[0].kind, TrackKind::Video);
  EXPECT_EQ (d.tracks[1].kind, TrackKind::Audio);
  EXPECT_EQ (d.tracks[2].kind, TrackKind::Other);
}

TEST (RelayWire, DescriptionIgnoresUnknownFields)
{
  const std::string json = std::string ("{\"stream\":\"a\",\"future\":[1,2],\"tracks\":[{\"id\":4,")
      + "\"kind\":\"hologram\",\"extra\":true,\"caps\":\"application/x-rtp, media=(string)audio, "
      + "encoding-name=(string)OPUS, clock-rate=(int)48000, payload=(int)111\"}]}";
  wire::Description d;
  std::string error;
  ASSERT_TRUE (wire::decodeDescription (json.data (), json.size (), d, error)) << error;
  ASSERT_EQ (d.tracks.size (), 1u);
  EXPECT_EQ (d.tracks[0].id, 4u);
  EXPECT_EQ (d.tracks[0].kind, TrackKind::Audio);
}

TEST (RelayWire, RejectsBadDescriptions)
{
  const char *caps = "\"application/x-rtp, media=(string)audio, encoding-name=(string)OPUS\"";
  const std::vector<std::string> bad = {
    "",
    "not json",
    "{\"tracks\":[",                                                     /* truncated */
    "[]",                                                                /* not an object */
    "{\"stream\":\"a\"}",                                                /* no tracks */
    "{\"tracks\":{}}",                                                   /* tracks not an array */
    "{\"stream\":5,\"tracks\":[]}",                                      /* stream not a string */
    "{\"tracks\":[5]}",                                                  /* track not an object */
    std::string ("{\"tracks\":[{\"caps\":") + caps + "}]}",              /* no id */
    std::string ("{\"tracks\":[{\"id\":\"0\",\"caps\":") + caps + "}]}", /* id not an integer */
    std::string ("{\"tracks\":[{\"id\":-1,\"caps\":") + caps + "}]}",
    std::string ("{\"tracks\":[{\"id\":65536,\"caps\":") + caps + "}]}",
    std::string ("{\"tracks\":[{\"id\":1,\"caps\":") + caps + "},{\"id\":1,\"caps\":" + caps + "}]}",
    "{\"tracks\":[{\"id\":0}]}",                                         /* no caps */
    "{\"tracks\":[{\"id\":0,\"caps\":\"video/x-raw\"}]}",                /* not RTP */
    "{\"tracks\":[{\"id\":0,\"caps\":\"application/x-rtp, media=(int\"}]}",  /* caps do not parse */
  };
  for (const auto &text : bad) {
    wire::Description d;
    std::string error;
    EXPECT_FALSE (wire::decodeDescription (text.data (), text.size (), d, error)) << text;
    EXPECT_FALSE (error.empty ()) << text;
  }
  /* Too many tracks. */
  std::string many = "{\"tracks\":[";
  for (size_t i = 0; i <= wire::kMaxTracks; i++)
    many += (i ? "," : "") + std::string ("{\"id\":") + std::to_string (i) + ",\"caps\":" + caps + "}";
  many += "]}";
  wire::Description d;
  std::string error;
  EXPECT_FALSE (wire::decodeDescription (many.data (), many.size (), d, error));
}

TEST (RelaySrtNames, UrisParse)
{
  SrtUri u;
  std::string error;
  ASSERT_TRUE (parseSrtUri ("srt://127.0.0.1:9000", u, error)) << error;
  EXPECT_EQ (u.host, "127.0.0.1");
  EXPECT_EQ (u.port, 9000);
  ASSERT_TRUE (parseSrtUri ("srt://:9001", u, error)) << error;
  EXPECT_EQ (u.host, "");
  EXPECT_EQ (u.port, 9001);
  ASSERT_TRUE (parseSrtUri ("srt://[::1]:9002", u, error)) << error;
  EXPECT_EQ (u.host, "::1");
  EXPECT_EQ (u.port, 9002);
  ASSERT_TRUE (parseSrtUri ("srt://relay-1.example:9003", u, error)) << error;
  EXPECT_EQ (u.host, "relay-1.example");

  for (const char *bad : {"udp://1.2.3.4:5", "srt://1.2.3.4", "srt://1.2.3.4:", "srt://h:99999",
           "srt://h:12a", "srt://h:9000?streamid=x", "srt://[::1:9000", "srt://a:b:9000"})
    EXPECT_FALSE (parseSrtUri (bad, u, error)) << bad;
}

TEST (RelaySrtNames, StreamIdsParse)
{
  EXPECT_EQ (srtRequestStreamId ("live/a", ""), "#!::r=live/a,m=request");
  EXPECT_EQ (srtRequestStreamId ("live/a", "tok"), "#!::r=live/a,m=request,s=tok");
  SrtStreamRequest r;
  ASSERT_TRUE (parseSrtStreamRequest ("#!::r=live/a,m=request,s=tok", r));
  EXPECT_EQ (r.resource, "live/a");
  EXPECT_EQ (r.mode, "request");
  EXPECT_EQ (r.token, "tok");
  ASSERT_TRUE (parseSrtStreamRequest ("#!::m=publish,r=x", r));
  EXPECT_EQ (r.mode, "publish");
  ASSERT_TRUE (parseSrtStreamRequest ("#!::r=x", r));
  EXPECT_EQ (r.mode, "request");
  ASSERT_TRUE (parseSrtStreamRequest ("live/plain", r));
  EXPECT_EQ (r.resource, "live/plain");
  for (const char *bad : {"", "#!::", "#!::m=request", "#!::r", "#!::=x,r=a", "a,b"})
    EXPECT_FALSE (parseSrtStreamRequest (bad, r)) << bad;
}
