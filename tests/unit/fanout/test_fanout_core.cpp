/* FanoutCore on loopback with viewers built in the test (TestViewer): the
 * ICE-lite port, DTLS-SRTP per viewer, per-viewer rewriting, NACK,
 * keyframe request aggregation, sender reports, feedback kept per viewer,
 * timeouts that free the viewer's state, and hostile input on the port.
 *
 * Run in a private network namespace:
 *   unshare -n bash -c 'ip link set lo up; meson test -C BUILD unit-fanout-element' */
#include <gtest/gtest.h>

#include "fanout-test-util.h"
#include "fanout-viewer.h"
#include "xdn-fanout-core.h"

#include <dirent.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

using namespace xdn::fanout;
using namespace std::chrono_literals;
using fanouttest::TestViewer;
using fanouttest::h264Packet;
using fanouttest::opusPacket;

namespace {

constexpr uint32_t kVideo = 0;
constexpr uint32_t kAudio = 1;
constexpr uint32_t kInSsrcVideo = 0xaaaa0001;
constexpr uint32_t kInSsrcAudio = 0xaaaa0002;

/* What the core told the test. */
struct Events {
  std::mutex lock;
  std::condition_variable cond;
  std::vector<uint32_t> keyframeRequests;
  std::vector<std::chrono::steady_clock::time_point> keyframeTimes;
  std::vector<std::pair<std::string, std::string>> removed;
  std::vector<std::string> connected;

  FanoutCallbacks callbacks ()
  {
    FanoutCallbacks cb;
    cb.keyframeRequest = [this] (uint32_t track) {
      std::lock_guard<std::mutex> l (lock);
      keyframeRequests.push_back (track);
      keyframeTimes.push_back (std::chrono::steady_clock::now ());
      cond.notify_all ();
    };
    cb.viewerEvent = [this] (const std::string &id, ViewerEvent e, const std::string &reason) {
      std::lock_guard<std::mutex> l (lock);
      if (e == ViewerEvent::Removed)
        removed.emplace_back (id, reason);
      else
        connected.push_back (id);
      cond.notify_all ();
    };
    return cb;
  }
  size_t keyframeCount ()
  {
    std::lock_guard<std::mutex> l (lock);
    return keyframeRequests.size ();
  }
  std::string removedReason (const std::string &id, std::chrono::milliseconds timeout)
  {
    std::unique_lock<std::mutex> l (lock);
    std::string reason;
    cond.wait_for (l, timeout, [&] {
      for (auto &[i, r] : removed)
        if (i == id) {
          reason = r;
          return true;
        }
      return false;
    });
    return reason;
  }
};

TrackCodec
h264Track ()
{
  TrackCodec t;
  t.trackId = kVideo;
  t.kind = MediaKind::Video;
  t.encodingName = "H264";
  t.clockRate = 90000;
  t.profileLevelId = "42e01f";
  t.packetizationMode = 1;
  return t;
}

TrackCodec
opusTrack ()
{
  TrackCodec t;
  t.trackId = kAudio;
  t.kind = MediaKind::Audio;
  t.encodingName = "OPUS";
  t.clockRate = 48000;
  t.channels = 2;
  return t;
}

class FanoutCoreTest : public ::testing::Test {
protected:
  void start (FanoutSettings s = {})
  {
    if (s.threads == 0)
      s.threads = 2;
    std::string error;
    core = FanoutCore::create (s, events.callbacks (), &error);
    ASSERT_TRUE (core) << error;
    core->setTrack (h264Track ());
    core->setTrack (opusTrack ());
  }

  /* A viewer added, answered and connected (ICE, DTLS, SRTP). */
  std::unique_ptr<TestViewer> connectViewer (std::string *id = nullptr,
      const fanouttest::OfferOptions &options = {})
  {
    auto v = std::make_unique<TestViewer> ();
    auto r = core->addViewer (v->offer (options));
    EXPECT_TRUE (r.ok ()) << r.error;
    if (!r.ok ())
      return nullptr;
    if (id)
      *id = r.id;
    EXPECT_TRUE (v->applyAnswer (r.answer)) << r.answer;
    EXPECT_TRUE (v->connect ()) << "viewer " << r.id << " did not connect";
    /* the core hands the viewer to its sending thread after DTLS */
    EXPECT_TRUE (waitFor ([&] { return core->stats (false).connected >= connectedBefore_ + 1; }, 2s));
    connectedBefore_ = core->stats (false).connected;
    return v;
  }

  template <typename Pred> static bool waitFor (Pred p, std::chrono::milliseconds timeout)
  {
    const auto end = std::chrono::steady_clock::now () + timeout;
    while (!p ()) {
      if (std::chrono::steady_clock::now () > end)
        return false;
      std::this_thread::sleep_for (5ms);
    }
    return true;
  }

  /* @last: the picture's last packet (marker bit), the next one starts a
   * new picture. */
  void pushVideo (bool keyframe, size_t payload = 1000, bool last = false)
  {
    auto p = h264Packet (videoSeq_++, videoTs_, kInSsrcVideo, keyframe, payload, last);
    if (last)
      videoTs_ += 3000;
    core->push (makeBytesPacket (kVideo, p.data (), p.size (), keyframe));
  }
  void pushAudio ()
  {
    auto p = opusPacket (audioSeq_++, audioTs_, kInSsrcAudio);
    audioTs_ += 960;
    core->push (makeBytesPacket (kAudio, p.data (), p.size (), false));
  }

  Events events;
  std::unique_ptr<FanoutCore> core;
  uint16_t videoSeq_ = 65500;   /* wraps during the tests */
  uint32_t videoTs_ = 1000;
  uint16_t audioSeq_ = 100;
  uint32_t audioTs_ = 5000;
  uint64_t connectedBefore_ = 0;
};

size_t
threadCount ()
{
  size_t n = 0;
  if (DIR *d = opendir ("/proc/self/task")) {
    while (dirent *e = readdir (d))
      if (e->d_name[0] != '.')
        n++;
    closedir (d);
  }
  return n;
}

}  // namespace

TEST_F (FanoutCoreTest, ViewerReceivesTheTracksUnderItsOwnPayloadTypeSsrcAndContinuousSeq)
{
  start ();
  auto a = connectViewer ();
  auto b = connectViewer ();
  ASSERT_TRUE (a && b);
  /* Before any keyframe nothing of the video reaches a new viewer. */
  for (int i = 0; i < 5; i++)
    pushVideo (false);
  pushVideo (true);
  for (int i = 0; i < 60; i++) {
    pushVideo (false);
    pushAudio ();
  }
  for (TestViewer *v : {a.get (), b.get ()}) {
    ASSERT_TRUE (v->pumpUntil ([v] { return v->count ("video") == 61 && v->count ("audio") == 60; },
        3s)) << "video " << v->count ("video") << " audio " << v->count ("audio");
    uint16_t expect = 0;
    bool first = true;
    for (const auto &r : v->received) {
      if (r.pt != v->payloadType ("video"))
        continue;
      EXPECT_EQ (r.pt, 106);
      EXPECT_EQ (r.ssrc, v->ssrc ("video"));
      if (first) {
        EXPECT_EQ (r.payload[0], 0x65) << "the first video packet is the keyframe";
      } else {
        EXPECT_EQ (r.seq, expect) << "continuous sequence numbers";
      }
      expect = static_cast<uint16_t> (r.seq + 1);
      first = false;
      ASSERT_EQ (r.payload.size (), 1000u);
    }
    for (const auto &r : v->received)
      if (r.pt == 111) {
        EXPECT_EQ (r.ssrc, v->ssrc ("audio"));
      }
  }
  EXPECT_NE (a->ssrc ("video"), b->ssrc ("video"));
  auto s = core->stats (true);
  EXPECT_EQ (s.viewers, 2u);
  EXPECT_EQ (s.connected, 2u);
  EXPECT_EQ (s.packetsSent, 2u * (61 + 60));
  ASSERT_EQ (s.viewerList.size (), 2u);
  EXPECT_EQ (s.viewerList[0].state, "connected");
  EXPECT_EQ (s.viewerList[0].srtpProfile, "SRTP_AES128_CM_SHA1_80");
  EXPECT_EQ (s.viewerList[0].address.rfind ("127.0.0.1:", 0), 0u);
}

/* A viewer that offers no rtx gets the lost packet again as it was. */
TEST_F (FanoutCoreTest, NackIsAnsweredFromTheTrackHistory)
{
  start ();
  fanouttest::OfferOptions noRtx;
  noRtx.rtx = false;
  auto v = connectViewer (nullptr, noRtx);
  ASSERT_TRUE (v);
  pushVideo (true);
  ASSERT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 1; }, 2s));
  const uint16_t first = v->received.back ().seq;
  /* the 4th packet after the keyframe gets lost on the way */
  const uint16_t lost = static_cast<uint16_t> (first + 4);
  v->dropOnce.insert (lost);
  for (int i = 0; i < 10; i++)
    pushVideo (false);
  ASSERT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 10; }, 2s));
  for (const auto &r : v->received)
    ASSERT_NE (r.seq, lost);

  ASSERT_TRUE (v->sendNack (v->ssrc ("video"), {lost}));
  ASSERT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 11; }, 2s));
  const auto &again = v->received.back ();
  EXPECT_EQ (again.seq, lost);
  EXPECT_EQ (again.ssrc, v->ssrc ("video"));
  EXPECT_EQ (again.pt, 106);
  /* the same packet: payload of input seq (65500 + 4) */
  auto original = h264Packet (static_cast<uint16_t> (65500 + 4), 0, 0, false);
  EXPECT_TRUE (std::equal (again.payload.begin (), again.payload.end (), original.begin () + 12));
  EXPECT_TRUE (waitFor ([&] { return core->stats (false).retransmits == 1; }, 1s));

  /* A packet never sent is not in the history. */
  ASSERT_TRUE (v->sendNack (v->ssrc ("video"), {static_cast<uint16_t> (first - 100)}));
  EXPECT_TRUE (waitFor ([&] { return core->stats (false).nackMisses == 1; }, 1s));
  EXPECT_EQ (core->stats (true).viewerList[0].nacks, 2u);
}

TEST_F (FanoutCoreTest, NackIsAnsweredWithAnRtxPacketWhenTheViewerOfferedRtx)
{
  start ();
  auto v = connectViewer ();
  ASSERT_TRUE (v);
  const int rtxPt = v->rtxPayloadType ("video");
  const uint32_t rtxSsrc = v->rtxSsrc ("video");
  ASSERT_EQ (rtxPt, 107);
  ASSERT_NE (rtxSsrc, 0u);
  EXPECT_NE (rtxSsrc, v->ssrc ("video"));
  EXPECT_NE (rtxSsrc, v->ssrc ("audio"));
  EXPECT_EQ (v->rtxSsrc ("audio"), 0u);
  ASSERT_EQ (v->transportCcExtId (), 3);
  auto rtx = [&] {
    std::vector<fanouttest::ReceivedRtp> out;
    for (const auto &r : v->received)
      if (r.pt == rtxPt)
        out.push_back (r);
    return out;
  };

  pushVideo (true, 1000, true);
  ASSERT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 1; }, 2s));
  const uint16_t first = v->received.back ().seq;
  const uint16_t lost = static_cast<uint16_t> (first + 4);
  v->dropOnce.insert (lost);
  for (int i = 0; i < 10; i++)
    pushVideo (false, 1000, true);  /* a picture each */
  /* and one with 4 bytes of RTP padding: 500 bytes of payload */
  const uint16_t padded = static_cast<uint16_t> (first + 11);
  auto withPadding = h264Packet (videoSeq_++, videoTs_, kInSsrcVideo, false, 500);
  videoTs_ += 3000;
  withPadding[0] |= 0x20;
  withPadding.insert (withPadding.end (), {0, 0, 0, 4});
  core->push (makeBytesPacket (kVideo, withPadding.data (), withPadding.size (), false));
  ASSERT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 11; }, 2s));
  uint32_t tsBefore = 0;
  for (const auto &r : v->received)
    if (r.seq == static_cast<uint16_t> (lost - 1))
      tsBefore = r.ts;
  const int lastTransport = v->received.back ().transportSeq;
  ASSERT_GE (lastTransport, 0);

  ASSERT_TRUE (v->sendNack (v->ssrc ("video"), {lost}));
  ASSERT_TRUE (v->pumpUntil ([&] { return rtx ().size () == 1; }, 2s));
  const auto one = rtx ()[0];
  EXPECT_EQ (one.ssrc, rtxSsrc);
  EXPECT_EQ (one.ts, tsBefore + 3000) << "the viewer's timestamp of the original";
  EXPECT_EQ (one.transportSeq, lastTransport + 1) << "a fresh transport-wide number";
  ASSERT_EQ (one.payload.size (), 2u + 1000u);
  EXPECT_EQ (rd16 (one.payload.data ()), lost) << "OSN: the sequence number NACKed";
  auto original = h264Packet (static_cast<uint16_t> (65500 + 4), 0, 0, false);
  EXPECT_TRUE (std::equal (one.payload.begin () + 2, one.payload.end (), original.begin () + 12));
  EXPECT_EQ (v->count ("video"), 11u) << "nothing again under the media payload type";

  /* A NACK naming the RTX SSRC is not answered; the next ones to the
   * media SSRC are, under consecutive RTX sequence numbers, the padded
   * packet without its padding. */
  ASSERT_TRUE (v->sendNack (rtxSsrc, {one.seq}));
  ASSERT_TRUE (v->sendNack (v->ssrc ("video"), {lost, padded}));
  ASSERT_TRUE (v->pumpUntil ([&] { return rtx ().size () == 3; }, 2s));
  v->pump (100ms);
  const auto all = rtx ();
  ASSERT_EQ (all.size (), 3u);
  EXPECT_EQ (all[1].seq, static_cast<uint16_t> (one.seq + 1));
  EXPECT_EQ (all[2].seq, static_cast<uint16_t> (one.seq + 2));
  bool sawPadded = false;
  for (const auto &r : all) {
    EXPECT_EQ (r.ssrc, rtxSsrc);
    if (rd16 (r.payload.data ()) != padded)
      continue;
    sawPadded = true;
    auto plain = h264Packet (static_cast<uint16_t> (65500 + 11), 0, 0, false, 500);
    ASSERT_EQ (r.payload.size (), 2u + 500u);
    EXPECT_TRUE (std::equal (r.payload.begin () + 2, r.payload.end (), plain.begin () + 12));
  }
  EXPECT_TRUE (sawPadded);
  EXPECT_EQ (v->rtpAuthFailures, 0);
  EXPECT_TRUE (waitFor ([&] { return core->stats (false).retransmits == 3; }, 1s));
  EXPECT_EQ (core->stats (false).nackMisses, 0u);
  EXPECT_EQ (core->stats (true).viewerList[0].nacks, 3u);
}

TEST_F (FanoutCoreTest, PliFromManyViewersYieldsOneKeyframeRequest)
{
  FanoutSettings s;
  s.keyframeMinInterval = 600ms;
  start (s);
  std::vector<std::unique_ptr<TestViewer>> viewers;
  for (int i = 0; i < 4; i++)
    viewers.push_back (connectViewer ());
  /* Connecting asked for keyframes (aggregated); a keyframe answers them. */
  EXPECT_GE (events.keyframeCount (), 1u);
  pushVideo (true);
  std::this_thread::sleep_for (800ms);
  const size_t before = events.keyframeCount ();

  for (auto &v : viewers)
    ASSERT_TRUE (v->sendPli (v->ssrc ("video")));
  ASSERT_TRUE (waitFor ([&] { return core->stats (false).plis == 4; }, 2s));
  ASSERT_TRUE (waitFor ([&] { return events.keyframeCount () == before + 1; }, 1s));
  {
    std::lock_guard<std::mutex> l (events.lock);
    EXPECT_EQ (events.keyframeRequests.back (), kVideo);
  }
  /* The keyframe that follows satisfies the requests held back. */
  pushVideo (true);
  std::this_thread::sleep_for (900ms);
  EXPECT_EQ (events.keyframeCount (), before + 1);
  EXPECT_GE (core->stats (false).keyframeRequestsLimited, 3u);
}

TEST_F (FanoutCoreTest, HeldBackKeyframeRequestGoesOnceTheIntervalIsOver)
{
  FanoutSettings s;
  s.keyframeMinInterval = 400ms;
  start (s);
  auto v = connectViewer ();
  ASSERT_TRUE (v);
  pushVideo (true);
  std::this_thread::sleep_for (500ms);
  const size_t before = events.keyframeCount ();
  ASSERT_TRUE (v->sendPli (v->ssrc ("video")));
  ASSERT_TRUE (waitFor ([&] { return events.keyframeCount () == before + 1; }, 1s));
  /* a second PLI within the interval, no keyframe coming: it is not lost */
  ASSERT_TRUE (v->sendPli (v->ssrc ("video")));
  ASSERT_TRUE (waitFor ([&] { return events.keyframeCount () == before + 2; }, 2s));
  std::lock_guard<std::mutex> l (events.lock);
  const auto gap = events.keyframeTimes.back () - events.keyframeTimes[events.keyframeTimes.size () - 2];
  EXPECT_GE (gap, 390ms);
}

TEST_F (FanoutCoreTest, SilentViewerTimesOutAndItsStateIsFreed)
{
  FanoutSettings s;
  s.viewerTimeout = 700ms;
  start (s);
  std::string silentId, talkingId;
  auto silent = connectViewer (&silentId);
  auto talking = connectViewer (&talkingId);
  ASSERT_TRUE (silent && talking);
  /* The talking viewer keeps consent with STUN; the silent one says nothing. */
  const auto end = std::chrono::steady_clock::now () + 1500ms;
  while (std::chrono::steady_clock::now () < end) {
    talking->sendRaw (talking->bindingRequest ());
    talking->pump (150ms);
  }
  const std::string reason = events.removedReason (silentId, 2s);
  EXPECT_NE (reason.find ("timeout"), std::string::npos) << reason;
  EXPECT_TRUE (events.removedReason (talkingId, 0ms).empty ());
  auto st = core->stats (false);
  EXPECT_EQ (st.viewers, 1u);
  /* both sides of the silent viewer (receive and send state) are freed */
  EXPECT_TRUE (waitFor ([&] { return core->stats (false).viewerStates == 2u; }, 1s))
      << core->stats (false).viewerStates;

  /* RTCP counts as consent too */
  const auto end2 = std::chrono::steady_clock::now () + 1500ms;
  while (std::chrono::steady_clock::now () < end2) {
    talking->sendReceiverReport (talking->ssrc ("video"), 0, 0);
    talking->pump (150ms);
  }
  EXPECT_TRUE (events.removedReason (talkingId, 0ms).empty ());
  EXPECT_EQ (core->stats (false).viewers, 1u);
}

TEST_F (FanoutCoreTest, ViewerThatNeverChecksConnectivityIsRemoved)
{
  FanoutSettings s;
  s.viewerTimeout = 400ms;
  start (s);
  TestViewer v;
  auto r = core->addViewer (v.offer ());
  ASSERT_TRUE (r.ok ()) << r.error;
  const std::string reason = events.removedReason (r.id, 3s);
  EXPECT_NE (reason.find ("no ICE connectivity check"), std::string::npos) << reason;
  EXPECT_TRUE (waitFor ([&] { return core->stats (false).viewerStates == 0; }, 1s));
  EXPECT_FALSE (core->removeViewer (r.id));
}

TEST_F (FanoutCoreTest, RemovedViewerGetsByeAndItsStateIsFreed)
{
  start ();
  std::string id;
  auto v = connectViewer (&id);
  ASSERT_TRUE (v);
  pushVideo (true);
  ASSERT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 1; }, 2s));
  EXPECT_TRUE (core->removeViewer (id));
  EXPECT_EQ (events.removedReason (id, 2s), "removed");
  EXPECT_TRUE (v->pumpUntil ([&] { return v->byeReceived; }, 2s));
  EXPECT_TRUE (waitFor ([&] { return core->stats (false).viewerStates == 0; }, 1s));
  EXPECT_EQ (core->stats (false).viewers, 0u);
  /* nothing more reaches it */
  pushVideo (true);
  v->pump (200ms);
  EXPECT_EQ (v->count ("video"), 1u);
}

TEST_F (FanoutCoreTest, ByeFromTheViewerRemovesIt)
{
  start ();
  std::string id;
  auto v = connectViewer (&id);
  ASSERT_TRUE (v);
  uint8_t b[16];
  size_t n = rtcpWriteBye (b, sizeof (b), TestViewer::kOwnSsrc);
  ASSERT_TRUE (v->sendRtcp (b, n));
  EXPECT_NE (events.removedReason (id, 2s).find ("BYE"), std::string::npos);
}

TEST_F (FanoutCoreTest, SenderReportsMapRtpTimeToWallClock)
{
  FanoutSettings s;
  s.senderReportInterval = 200ms;
  start (s);
  auto v = connectViewer ();
  ASSERT_TRUE (v);
  pushVideo (true);
  for (int i = 0; i < 9; i++)
    pushVideo (false);
  ASSERT_TRUE (v->pumpUntil ([&] { return v->senderReports.size () >= 2; }, 3s));
  const auto &sr = v->senderReports.back ();
  EXPECT_EQ (sr.ssrc, v->ssrc ("video"));
  EXPECT_EQ (sr.packets, 10u);
  EXPECT_EQ (sr.octets, 10u * 1000);
  const uint64_t nowNtp = ntpFromUnixMicros (std::chrono::duration_cast<std::chrono::microseconds> (
      std::chrono::system_clock::now ().time_since_epoch ()).count ());
  EXPECT_LT ((nowNtp >> 32) - (sr.ntp >> 32), 3u);
  /* the last packet was captured when it was pushed, so the report's RTP
   * time is the last timestamp plus the time since then (90 kHz) */
  const uint32_t lastTs = v->received.back ().ts;
  const int32_t ahead = static_cast<int32_t> (sr.rtpTs - lastTs);
  EXPECT_GT (ahead, 0);
  EXPECT_LT (ahead, 90000 * 4);
  /* no audio sent yet: no audio report */
  for (const auto &r : v->senderReports)
    EXPECT_NE (r.ssrc, v->ssrc ("audio"));
}

TEST_F (FanoutCoreTest, RembTransportCcAndReceiverReportsAreKeptPerViewer)
{
  start ();
  auto v = connectViewer ();
  auto other = connectViewer ();
  ASSERT_TRUE (v && other);
  uint8_t b[128];
  const uint32_t ssrcs[] = {v->ssrc ("video")};
  size_t n = rtcpWriteRemb (b, sizeof (b), TestViewer::kOwnSsrc, 1500000, ssrcs, 1);
  ASSERT_TRUE (v->sendRtcp (b, n));
  const uint8_t twcc[] = {0x8f, 205, 0, 8, 0, 0, 0x7e, 0x57, 0, 0, 0, 1,
                          0x01, 0x2c, 0x00, 0x0c, 0x00, 0x00, 0x10, 0x04, 0x20, 0x0c,
                          4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 0, 0};
  ASSERT_TRUE (v->sendRtcp (twcc, sizeof (twcc)));
  ASSERT_TRUE (v->sendReceiverReport (v->ssrc ("video"), 64, 77));
  ASSERT_TRUE (waitFor ([&] {
    for (const auto &vs : core->stats (true).viewerList)
      if (vs.rembBitrate == 1500000 && vs.transportCcFeedbacks == 1 && vs.fractionLost == 64)
        return true;
    return false;
  }, 2s));
  int untouched = 0;
  for (const auto &vs : core->stats (true).viewerList) {
    if (vs.rembBitrate == 0 && vs.transportCcFeedbacks == 0)
      untouched++;
    if (vs.rembBitrate) {
      EXPECT_EQ (vs.jitter, 77u);
    }
  }
  EXPECT_EQ (untouched, 1);
}

TEST_F (FanoutCoreTest, OffersItCannotServeAreRefusedWithAReason)
{
  std::string error;
  core = FanoutCore::create (FanoutSettings {}, events.callbacks (), &error);
  ASSERT_TRUE (core) << error;
  TestViewer v;
  auto r = core->addViewer (v.offer ());
  EXPECT_FALSE (r.ok ());
  EXPECT_NE (r.error.find ("no track"), std::string::npos) << r.error;
  core->setTrack (h264Track ());
  fanouttest::OfferOptions audioOnly;
  audioOnly.video = false;
  r = core->addViewer (v.offer (audioOnly));
  EXPECT_FALSE (r.ok ());
  EXPECT_NE (r.error.find ("no audio track"), std::string::npos) << r.error;
  r = core->addViewer ("garbage");
  EXPECT_FALSE (r.ok ());
  std::string bad = v.offer ();
  bad.replace (bad.find ("sha-256 ") + 8, 2, "ZZ");
  r = core->addViewer (bad);
  EXPECT_FALSE (r.ok ());
  EXPECT_NE (r.error.find ("fingerprint"), std::string::npos) << r.error;
  EXPECT_EQ (core->stats (false).viewers, 0u);
  EXPECT_EQ (core->stats (false).viewerStates, 0u);
}

TEST_F (FanoutCoreTest, WildcardOrNamedAddressesAreRefused)
{
  std::string error;
  FanoutSettings s;
  s.addresses = {"0.0.0.0"};
  EXPECT_FALSE (FanoutCore::create (s, {}, &error));
  EXPECT_NE (error.find ("wildcard"), std::string::npos) << error;
  s.addresses = {"localhost"};
  EXPECT_FALSE (FanoutCore::create (s, {}, &error));
  EXPECT_NE (error.find ("not a numeric"), std::string::npos) << error;
}

TEST_F (FanoutCoreTest, ThreadCountDoesNotGrowWithViewers)
{
  start ();
  auto first = connectViewer ();
  ASSERT_TRUE (first);
  const size_t threads = threadCount ();
  std::vector<std::unique_ptr<TestViewer>> more;
  for (int i = 0; i < 15; i++)
    more.push_back (connectViewer ());
  EXPECT_EQ (core->stats (false).connected, 16u);
  EXPECT_EQ (threadCount (), threads);
  EXPECT_EQ (core->stats (false).threads, 2u);
}

/* A few viewers share one sending thread (each packet wakes only it);
 * past viewersPerThread the next thread takes them, and once every thread
 * has that many, the one with the fewest. Every viewer gets the stream. */
/* A fan-out without viewers wakes for nothing: no round until a viewer
 * comes, then its housekeeping rounds (sender reports); the receive
 * thread looks for timed-out viewers a tenth of the timeout apart (1 s
 * here), not every 100 ms. */
TEST_F (FanoutCoreTest, AFanOutWithoutViewersSleeps)
{
  start ();
  const uint64_t turns = core->stats (false).receiveTurns;
  std::this_thread::sleep_for (550ms);  /* past five sender housekeeping periods */
  EXPECT_EQ (core->stats (false).rounds, 0u);
  EXPECT_LE (core->stats (false).receiveTurns - turns, 1u);
  auto v = connectViewer ();
  ASSERT_TRUE (v);
  EXPECT_TRUE (waitFor ([&] { return core->stats (false).rounds >= 3; }, 2s));
}

TEST_F (FanoutCoreTest, ViewersFillOneSendingThreadBeforeTheNext)
{
  FanoutSettings s;
  s.threads = 2;
  s.viewersPerThread = 2;
  start (s);
  std::vector<std::unique_ptr<TestViewer>> viewers;
  /* viewers on each thread after each join */
  std::vector<std::array<unsigned, 2>> perThread;
  for (int i = 0; i < 5; i++) {
    viewers.push_back (connectViewer ());
    ASSERT_TRUE (viewers.back ());
    std::array<unsigned, 2> count {};
    for (const auto &vs : core->stats (true).viewerList)
      count.at (vs.thread)++;
    perThread.push_back (count);
  }
  EXPECT_EQ (perThread, (std::vector<std::array<unsigned, 2>> {
      {1, 0}, {2, 0}, {2, 1}, {2, 2}, {3, 2}}));
  pushVideo (true, 1000, true);
  pushAudio ();
  for (auto &v : viewers)
    EXPECT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 1 && v->count ("audio") == 1; },
        2s));
}

TEST_F (FanoutCoreTest, AFewViewersShareTheFirstSendingThread)
{
  FanoutSettings s;
  s.threads = 2;
  start (s);
  std::vector<std::unique_ptr<TestViewer>> viewers;
  for (int i = 0; i < 3; i++) {
    viewers.push_back (connectViewer ());
    ASSERT_TRUE (viewers.back ());
  }
  for (const auto &vs : core->stats (true).viewerList)
    EXPECT_EQ (vs.thread, 0u) << vs.id;
}

/* With every viewer on one sending thread, the thread that pushes a
 * picture's end sends the round itself when that thread is idle: the
 * round is done (counted) before push () returns. */
TEST_F (FanoutCoreTest, ThePushingThreadServesWhileOneSendingThreadHasTheViewers)
{
  start ();
  auto a = connectViewer ();
  auto b = connectViewer ();
  ASSERT_TRUE (a && b);
  /* The sending thread may still be applying the viewers' commands: a
   * picture pushed then wakes it instead. One of the next ones finds it
   * idle. */
  pushVideo (true, 1000, true);
  size_t pictures = 1;
  bool servedHere = false;
  for (; pictures < 50 && !servedHere; pictures++) {
    std::this_thread::sleep_for (2ms);
    const uint64_t before = core->stats (false).roundsOnPushingThread;
    pushVideo (false, 1000, true);
    servedHere = core->stats (false).roundsOnPushingThread == before + 1;
  }
  EXPECT_TRUE (servedHere);
  for (int i = 0; i < 20; i++) {
    pushVideo (false, 1000, true);
    pushAudio ();
  }
  pictures += 20;
  for (TestViewer *v : {a.get (), b.get ()})
    EXPECT_TRUE (v->pumpUntil ([&] { return v->count ("video") == pictures && v->count ("audio") == 20; },
        2s)) << "video " << v->count ("video") << " audio " << v->count ("audio");
  const auto s = core->stats (false);
  EXPECT_GE (s.roundsOnPushingThread, 20u);
  EXPECT_LE (s.roundsOnPushingThread, s.rounds);
}

/* While every viewer is connected, what they send is read by the rounds
 * the stream makes anyway: the receive thread does not wake for each
 * report. */
TEST_F (FanoutCoreTest, ConnectedViewersFeedbackIsReadByTheRounds)
{
  start ();
  std::string id;
  auto v = connectViewer (&id);
  ASSERT_TRUE (v);
  pushVideo (true, 1000, true);
  ASSERT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 1; }, 2s));

  const auto before = core->stats (true);
  const uint64_t reportsBefore = before.viewerList[0].rtcpPackets;
  const int reports = 40;
  for (int i = 0; i < reports; i++) {
    pushVideo (false, 1000, true);
    pushAudio ();
    ASSERT_TRUE (v->sendReceiverReport (v->ssrc ("video"), 3, 7));
    v->pump (10ms);  /* a stream's pace: a picture and an audio packet every 10 ms */
  }
  ASSERT_TRUE (waitFor ([&] {
    return core->stats (true).viewerList[0].rtcpPackets == reportsBefore + reports; }, 2s));
  const auto after = core->stats (true);
  EXPECT_GE (after.readByRounds - before.readByRounds, uint64_t (reports / 2));
  EXPECT_LT (after.receiveTurns - before.receiveTurns, uint64_t (reports / 2));
  EXPECT_EQ (after.viewerList[0].fractionLost, 3u);

  /* A NACK read by a round is answered, and a BYE removes the viewer. */
  auto lastVideo = std::find_if (v->received.rbegin (), v->received.rend (),
      [&] (const auto &r) { return r.pt == v->payloadType ("video"); });
  ASSERT_TRUE (v->sendNack (v->ssrc ("video"), {lastVideo->seq}));
  pushAudio ();
  EXPECT_TRUE (waitFor ([&] { return core->stats (false).retransmits == 1; }, 1s));
  uint8_t b[16];
  size_t n = rtcpWriteBye (b, sizeof (b), TestViewer::kOwnSsrc);
  ASSERT_TRUE (v->sendRtcp (b, n));
  pushAudio ();
  EXPECT_NE (events.removedReason (id, 2s).find ("BYE"), std::string::npos);
}

/* What a round reads and cannot handle goes to the receive thread: here a
 * connectivity check from a new address of the viewer, whose media then
 * follows it there. */
TEST_F (FanoutCoreTest, ViewerMovingToANewAddressIsFollowedWhileRoundsRead)
{
  start ();
  auto v = connectViewer ();
  ASSERT_TRUE (v);
  pushVideo (true, 1000, true);
  ASSERT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 1; }, 2s));
  for (int i = 0; i < 5; i++) {
    pushAudio ();
    ASSERT_TRUE (v->sendReceiverReport (v->ssrc ("video"), 0, 0));
    v->pump (10ms);
  }
  ASSERT_TRUE (waitFor ([&] { return core->stats (false).readByRounds > 0; }, 2s));

  v->moveToNewPort ();
  const int repliesBefore = v->stunReplies;
  const size_t audioBefore = v->count ("audio");
  for (int i = 0; i < 100 && v->stunReplies == repliesBefore; i++) {
    v->sendRaw (v->bindingRequest (true));
    pushAudio ();
    v->pump (10ms);
  }
  ASSERT_GT (v->stunReplies, repliesBefore);
  pushAudio ();
  EXPECT_TRUE (v->pumpUntil ([&] { return v->count ("audio") > audioBefore; }, 2s));
  EXPECT_EQ (core->stats (true).viewerList[0].address, v->localAddress ().toString ());
}

/* Viewers on two sending threads: each thread runs its own rounds. And
 * with pushingThreadServes off, the sending thread runs every round. */
TEST_F (FanoutCoreTest, EachSendingThreadServesItsOwnViewersWhenThereAreMore)
{
  for (bool twoThreads : {true, false}) {
    SCOPED_TRACE (twoThreads ? "viewers on two threads" : "pushingThreadServes off");
    FanoutSettings s;
    s.threads = 2;
    if (twoThreads)
      s.viewersPerThread = 1;
    else
      s.pushingThreadServes = false;
    connectedBefore_ = 0;
    start (s);
    auto a = connectViewer ();
    auto b = connectViewer ();
    ASSERT_TRUE (a && b);
    pushVideo (true, 1000, true);
    for (int i = 0; i < 20; i++) {
      std::this_thread::sleep_for (1ms);
      pushVideo (false, 1000, true);
      pushAudio ();
    }
    for (TestViewer *v : {a.get (), b.get ()})
      EXPECT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 21 && v->count ("audio") == 20; },
          2s)) << "video " << v->count ("video") << " audio " << v->count ("audio");
    const auto st = core->stats (false);
    EXPECT_EQ (st.roundsOnPushingThread, 0u);
    EXPECT_GT (st.rounds, 0u);
    core.reset ();
  }
}

/* stop () while a thread pushes (and serves rounds itself): no round runs
 * after stop () returned, and later pushes send nothing. */
TEST_F (FanoutCoreTest, StopWhileThePushingThreadServes)
{
  start ();
  auto v = connectViewer ();
  ASSERT_TRUE (v);
  pushVideo (true, 1000, true);
  std::atomic<bool> done {false};
  std::atomic<int> pushed {0};
  std::thread pusher ([&] {
    while (!done) {
      pushVideo (false, 1000, true);
      pushAudio ();
      pushed++;
    }
  });
  ASSERT_TRUE (waitFor ([&] { return pushed > 200; }, 2s));
  core->stop ("stopped");
  const auto stopped = core->stats (false);
  std::this_thread::sleep_for (20ms);
  const auto later = core->stats (false);
  done = true;
  pusher.join ();
  EXPECT_EQ (later.packetsSent, stopped.packetsSent);
  EXPECT_EQ (later.rounds, stopped.rounds);
  EXPECT_GT (stopped.roundsOnPushingThread, 0u);
}

/* A round waits for the end of a picture (the marker bit) so that each
 * viewer's packets of it go to the kernel together, but never for an end
 * that does not come: the open picture goes out with the next packet
 * after the hold, or by itself at the thread's next housekeeping. */
TEST_F (FanoutCoreTest, APictureWhoseEndNeverComesStillGoesOut)
{
  start ();
  auto v = connectViewer ();
  ASSERT_TRUE (v);
  pushVideo (true);
  EXPECT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 1; }, 2s));
  pushVideo (false);
  pushVideo (false);
  pushVideo (false, 1000, true);
  EXPECT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 4; }, 2s))
      << v->count ("video");
  pushVideo (false);
  std::this_thread::sleep_for (5ms);
  pushVideo (false);
  EXPECT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 6; }, 2s)) << v->count ("video");
}

/* A sending thread that cannot keep up (here: a burst far faster than it
 * can serve 20 viewers) never builds an unbounded backlog: its viewers skip
 * ahead, video waits for a keyframe, and the stream continues for all. */
TEST_F (FanoutCoreTest, ViewersThatFallBehindSkipAheadAndRestartOnAKeyframe)
{
  FanoutSettings s;
  s.threads = 1;
  s.viewerQueue = 16;
  start (s);
  std::vector<std::unique_ptr<TestViewer>> viewers;
  for (int i = 0; i < 20; i++) {
    viewers.push_back (connectViewer ());
    ASSERT_TRUE (viewers.back ());
  }
  pushVideo (true);
  for (int i = 0; i < 3000; i++)
    pushVideo (false);
  ASSERT_TRUE (waitFor ([&] { return core->stats (false).dropped > 0; }, 2s));
  for (auto &v : viewers)
    v->pump (50ms);
  /* then a keyframe at a pace the thread keeps up with */
  std::vector<size_t> before;
  for (auto &v : viewers)
    before.push_back (v->count ("video"));
  pushVideo (true);
  for (int i = 0; i < 10; i++) {
    pushVideo (false);
    std::this_thread::sleep_for (2ms);
  }
  for (size_t i = 0; i < viewers.size (); i++) {
    TestViewer *v = viewers[i].get ();
    EXPECT_TRUE (v->pumpUntil ([&] { return v->count ("video") >= before[i] + 11; }, 2s))
        << "viewer " << i << " got " << v->count ("video") - before[i];
  }
  uint64_t skipped = 0;
  for (const auto &vs : core->stats (true).viewerList)
    skipped += vs.dropped;
  EXPECT_GT (skipped, 0u);
}

/* Hostile input on the port: random bytes, truncated STUN, STUN with a
 * wrong password, DTLS and SRTP garbage, a flood from one address. The
 * connected viewer keeps receiving every packet, and a new viewer can
 * still connect afterwards. */
TEST_F (FanoutCoreTest, HostileInputLeavesViewersUnaffected)
{
  start ();
  auto v = connectViewer ();
  ASSERT_TRUE (v);
  pushVideo (true);
  ASSERT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 1; }, 2s));

  /* The stream keeps flowing (a packet every 2 ms) while the attack runs;
   * the viewer reads on its own thread. */
  std::atomic<bool> done {false};
  std::atomic<int> pushed {1};
  std::thread streamer ([&] {
    while (!done) {
      pushVideo (false, 600);
      pushed++;
      std::this_thread::sleep_for (2ms);
    }
  });
  std::thread reader ([&] {
    while (!done)
      v->pump (20ms);
  });

  TestViewer attacker;  /* a socket of its own, another address */
  attacker.applyAnswer (core->addViewer (attacker.offer ()).answer);
  fanouttest::Rng rng (99);
  std::vector<uint8_t> d (1500);
  /* random datagrams, first byte across the whole range */
  for (int i = 0; i < 3000; i++) {
    const size_t n = 1 + rng.below (1400);
    rng.fill (d.data (), n);
    attacker.sendRaw (d.data (), n);
  }
  /* every truncation of a valid Binding request */
  const auto good = attacker.bindingRequest ();
  for (size_t n = 1; n < good.size (); n++)
    attacker.sendRaw (good.data (), n);
  /* wrong password for a real ufrag, and the real viewer's ufrag */
  const std::string wrong = "notThePasswordAtAll12345";
  for (int i = 0; i < 200; i++)
    attacker.sendRaw (attacker.bindingRequest (true, &wrong));
  /* DTLS records from an address no viewer validated */
  for (int i = 0; i < 500; i++) {
    const size_t n = 13 + rng.below (300);
    rng.fill (d.data (), n);
    d[0] = 22;
    d[1] = 0xfe;
    d[2] = 0xfd;
    attacker.sendRaw (d.data (), n);
  }
  /* SRTCP-looking garbage */
  for (int i = 0; i < 500; i++) {
    const size_t n = 8 + rng.below (200);
    rng.fill (d.data (), n);
    d[0] = 0x80;
    d[1] = 200 + static_cast<uint8_t> (rng.below (7));
    attacker.sendRaw (d.data (), n);
  }
  /* a flood of STUN-looking datagrams from one address */
  std::vector<uint8_t> flood = good;
  for (int i = 0; i < 60000; i++) {
    flood[8 + (i % 12)] = static_cast<uint8_t> (i);
    attacker.sendRaw (flood);
  }
  /* garbage from the viewer's own address: DTLS after the handshake, SRTCP
   * that does not authenticate */
  for (int i = 0; i < 200; i++) {
    const size_t n = 20 + rng.below (200);
    rng.fill (d.data (), n);
    d[0] = static_cast<uint8_t> (i % 2 ? 22 : 0x80);
    if (i % 2 == 0)
      d[1] = 201;
    v->sendRaw (d.data (), n);
  }
  std::this_thread::sleep_for (300ms);
  done = true;
  streamer.join ();
  reader.join ();

  /* the real viewer got everything that was sent while under attack */
  v->pump (300ms);
  const int want = pushed.load ();
  EXPECT_GE (static_cast<double> (v->count ("video")), 0.999 * want)
      << v->count ("video") << " of " << want;
  EXPECT_EQ (v->rtpAuthFailures, 0);
  auto s = core->stats (false);
  EXPECT_GT (s.rateLimited, 1000u);
  EXPECT_GT (s.invalid, 1000u);
  /* unauthenticated answers were rate-limited: at most the burst plus the rate */
  attacker.pump (200ms);
  EXPECT_LT (attacker.stunErrors, 200);
  EXPECT_EQ (s.connected, 1u);

  /* a new viewer still connects and is served */
  auto late = connectViewer ();
  ASSERT_TRUE (late);
  pushVideo (true);
  EXPECT_TRUE (late->pumpUntil ([&] { return late->count ("video") == 1; }, 2s));
}

namespace {

/* Transport-wide sequence numbers of @v's packets, in arrival order. */
std::vector<uint16_t>
transportSeqs (const TestViewer &v)
{
  std::vector<uint16_t> out;
  for (const auto &r : v.received) {
    EXPECT_TRUE (r.extension);
    EXPECT_EQ (r.extensionProfile, 0xBEDE);
    EXPECT_GE (r.transportSeq, 0);
    out.push_back (static_cast<uint16_t> (r.transportSeq));
  }
  return out;
}

}  // namespace

TEST_F (FanoutCoreTest, TransportWideSeqIsConsecutivePerViewerAcrossTracksAndRetransmissions)
{
  start ();
  fanouttest::OfferOptions noRtx;  /* its retransmission comes as the original (RTX: above) */
  noRtx.rtx = false;
  auto a = connectViewer (nullptr, noRtx);
  auto b = connectViewer ();
  ASSERT_TRUE (a && b);
  ASSERT_EQ (a->transportCcExtId (), 3);
  pushVideo (true);
  ASSERT_TRUE (a->pumpUntil ([&] { return a->count ("video") == 1; }, 2s));
  /* one video packet of viewer a is lost on the way */
  const uint16_t lost = static_cast<uint16_t> (a->received.back ().seq + 5);
  a->dropOnce.insert (lost);
  for (int i = 0; i < 20; i++) {
    pushVideo (false);
    pushAudio ();
  }
  for (TestViewer *v : {a.get (), b.get ()})
    ASSERT_TRUE (v->pumpUntil ([&] {
      return v->count ("video") == (v == a.get () ? 20u : 21u) && v->count ("audio") == 20;
    }, 3s));

  /* b: one counter over video and audio, no gap */
  std::vector<uint16_t> seqs = transportSeqs (*b);
  for (size_t i = 1; i < seqs.size (); i++)
    EXPECT_EQ (seqs[i], static_cast<uint16_t> (seqs[i - 1] + 1)) << i;
  /* a: the same, but for the packet lost */
  seqs = transportSeqs (*a);
  int gaps = 0;
  for (size_t i = 1; i < seqs.size (); i++) {
    const uint16_t step = static_cast<uint16_t> (seqs[i] - seqs[i - 1]);
    EXPECT_TRUE (step == 1 || step == 2) << i;
    gaps += step == 2;
  }
  EXPECT_EQ (gaps, 1);
  /* the extension is added, the payload left as it was */
  for (const auto &r : a->received) {
    EXPECT_EQ (r.extensionSize, 4u);
    if (r.pt == a->payloadType ("video")) {
      EXPECT_EQ (r.payload.size (), 1000u);
    }
  }

  /* the retransmission is a packet sent too: the next number */
  const uint16_t last = seqs.back ();
  ASSERT_TRUE (a->sendNack (a->ssrc ("video"), {lost}));
  ASSERT_TRUE (a->pumpUntil ([&] { return a->count ("video") == 21; }, 2s));
  const auto &again = a->received.back ();
  EXPECT_EQ (again.seq, lost);
  EXPECT_EQ (again.transportSeq, int (static_cast<uint16_t> (last + 1)));
  auto original = h264Packet (static_cast<uint16_t> (65500 + 5), 0, 0, false);
  EXPECT_TRUE (std::equal (again.payload.begin (), again.payload.end (), original.begin () + 12));
  EXPECT_EQ (again.payload.size (), 1000u);
}

TEST_F (FanoutCoreTest, SourceExtensionsAreDroppedAndAViewerWithoutTheExtmapGetsNone)
{
  start ();
  fanouttest::OfferOptions plain;
  plain.transportWideCc = false;
  auto with = connectViewer ();
  auto without = connectViewer (nullptr, plain);
  ASSERT_TRUE (with && without);
  EXPECT_EQ (without->transportCcExtId (), 0);
  /* The source's packets carry an extension of their own (id 1, 3 bytes),
   * which no viewer negotiated. */
  std::vector<std::vector<uint8_t>> sent;
  for (int i = 0; i < 5; i++) {
    auto p = h264Packet (static_cast<uint16_t> (200 + i), 3000u * i, kInSsrcVideo, i == 0, 600);
    const uint8_t ext[] = {0xbe, 0xde, 0x00, 0x01, 0x12, 0xaa, 0xbb, 0xcc};
    p[0] |= 0x10;
    p.insert (p.begin () + 12, ext, ext + sizeof (ext));
    core->push (makeBytesPacket (kVideo, p.data (), p.size (), i == 0));
    sent.emplace_back (p.begin () + 20, p.end ());
  }
  for (TestViewer *v : {with.get (), without.get ()})
    ASSERT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 5; }, 2s));
  for (size_t i = 0; i < 5; i++) {
    const auto &w = with->received[i];
    EXPECT_TRUE (w.extension);
    EXPECT_EQ (w.extensionSize, 4u) << "only the transport-wide sequence number";
    EXPECT_EQ (w.transportSeq, int (i));
    EXPECT_EQ (w.payload, sent[i]);
    const auto &o = without->received[i];
    EXPECT_FALSE (o.extension);
    EXPECT_EQ (o.payload, sent[i]);
    EXPECT_EQ (o.wireSize + 8, w.wireSize);
  }
  /* no header extension at all: nothing to rewrite, no extension added */
  pushVideo (false, 300);
  ASSERT_TRUE (without->pumpUntil ([&] { return without->count ("video") == 6; }, 2s));
  EXPECT_FALSE (without->received.back ().extension);
  EXPECT_EQ (without->received.back ().payload.size (), 300u);
}

TEST_F (FanoutCoreTest, TransportCcFeedbackIsReadIntoViewerStats)
{
  using fanouttest::TransportCcMessage;
  start ();
  auto v = connectViewer ();
  auto other = connectViewer ();
  ASSERT_TRUE (v && other);
  pushVideo (true);
  for (int i = 0; i < 9; i++)
    pushVideo (false, 400 + 50 * i);
  ASSERT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 10; }, 2s));
  std::vector<uint16_t> t = transportSeqs (*v);
  std::vector<uint64_t> w;
  for (const auto &r : v->received)
    w.push_back (r.wireSize);
  ASSERT_EQ (t.size (), 10u);

  /* 1: a run of four received, 1 ms apart */
  TransportCcMessage f1;
  f1.mediaSsrc = v->ssrc ("video");
  f1.baseSeq = t[0];
  f1.statusCount = 4;
  f1.referenceTime = 100;
  f1.chunks = {TransportCcMessage::run (1, 4)};
  for (uint8_t d : {0, 4, 4, 4})
    f1.small (d);
  /* 2: one-bit vector, the first lost */
  TransportCcMessage f2 = f1;
  f2.baseSeq = t[4];
  f2.statusCount = 3;
  f2.feedbackCount = 1;
  f2.chunks = {TransportCcMessage::vector1 ({0, 1, 1})};
  f2.deltas.clear ();
  f2.small (8);
  f2.small (4);
  /* 3: two-bit vector with large (one negative) deltas */
  TransportCcMessage f3 = f1;
  f3.baseSeq = t[7];
  f3.statusCount = 3;
  f3.feedbackCount = 2;
  f3.chunks = {TransportCcMessage::vector2 ({2, 1, 2})};
  f3.deltas.clear ();
  f3.large (-40);   /* -10 ms */
  f3.small (8);     /* +2 ms */
  f3.large (12);    /* +3 ms */

  auto viewerStats = [&] (bool mine) {
    for (const auto &vs : core->stats (true).viewerList)
      if ((vs.transportCcFeedbacks > 0) == mine)
        return vs;
    return ViewerStats ();
  };
  auto send = [&] (const TransportCcMessage &m) {
    const auto b = m.bytes ();
    ASSERT_TRUE (v->sendRtcp (b.data (), b.size ()));
  };
  send (f1);
  ASSERT_TRUE (waitFor ([&] { return viewerStats (true).transportCcFeedbacks == 1; }, 2s));
  ViewerStats s = viewerStats (true);
  EXPECT_EQ (s.transportCcReceived, 4u);
  EXPECT_EQ (s.transportCcLost, 0u);
  /* three packets arrived after the first, within 3 ms */
  EXPECT_EQ (s.transportCcBitrate, (w[1] + w[2] + w[3]) * 8 * 1000000 / 3000);

  send (f2);
  ASSERT_TRUE (waitFor ([&] { return viewerStats (true).transportCcFeedbacks == 2; }, 2s));
  s = viewerStats (true);
  EXPECT_EQ (s.transportCcReceived, 6u);
  EXPECT_EQ (s.transportCcLost, 1u);
  EXPECT_EQ (s.transportCcBitrate, w[6] * 8 * 1000000 / 1000);

  send (f3);
  ASSERT_TRUE (waitFor ([&] { return viewerStats (true).transportCcFeedbacks == 3; }, 2s));
  s = viewerStats (true);
  EXPECT_EQ (s.transportCcReceived, 9u);
  EXPECT_EQ (s.transportCcLost, 1u);
  /* arrivals -10, -8, -5 ms: the last two in 5 ms */
  EXPECT_EQ (s.transportCcBitrate, (w[8] + w[9]) * 8 * 1000000 / 5000);

  const ViewerStats untouched = viewerStats (false);
  EXPECT_EQ (untouched.transportCcReceived, 0u);
  EXPECT_EQ (untouched.transportCcBitrate, 0u);
  const FanoutStats all = core->stats (false);
  EXPECT_EQ (all.transportCcFeedbacks, 3u);
  EXPECT_EQ (all.transportCcReceived, 9u);
  EXPECT_EQ (all.transportCcLost, 1u);
}

TEST_F (FanoutCoreTest, HostileTransportCcIsRefusedAndTheViewerStaysServed)
{
  using fanouttest::TransportCcMessage;
  start ();
  auto v = connectViewer ();
  ASSERT_TRUE (v);
  pushVideo (true);
  ASSERT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 1; }, 2s));
  const uint64_t invalidBefore = core->stats (false).invalid;

  std::vector<TransportCcMessage> bad (4);
  bad[0].statusCount = 40;                                   /* chunks cover 14 */
  bad[0].chunks = {TransportCcMessage::vector1 ({1, 1})};
  bad[1].statusCount = 200;                                  /* deltas missing */
  bad[1].chunks = {TransportCcMessage::run (2, 200)};
  bad[1].large (4);
  bad[2].statusCount = 0xffff;                               /* count beyond the packet */
  bad[2].chunks = {TransportCcMessage::run (1, 8191)};
  bad[3].statusCount = 2;                                    /* reserved symbol */
  bad[3].chunks = {TransportCcMessage::vector2 ({3, 3})};
  for (const auto &m : bad) {
    const auto b = m.bytes ();
    ASSERT_TRUE (v->sendRtcp (b.data (), b.size ()));
  }
  ASSERT_TRUE (waitFor ([&] { return core->stats (false).invalid >= invalidBefore + 4; }, 2s));
  auto s = core->stats (true);
  EXPECT_EQ (s.transportCcFeedbacks, 0u);
  ASSERT_EQ (s.viewerList.size (), 1u);
  EXPECT_EQ (s.viewerList[0].transportCcFeedbacks, 0u);
  EXPECT_EQ (s.viewerList[0].state, "connected");

  /* still served, and well-formed feedback still read */
  pushVideo (false);
  ASSERT_TRUE (v->pumpUntil ([&] { return v->count ("video") == 2; }, 2s));
  TransportCcMessage good;
  good.baseSeq = static_cast<uint16_t> (v->received[0].transportSeq);
  good.statusCount = 2;
  good.chunks = {TransportCcMessage::run (1, 2)};
  good.small (0);
  good.small (4);
  const auto b = good.bytes ();
  ASSERT_TRUE (v->sendRtcp (b.data (), b.size ()));
  ASSERT_TRUE (waitFor ([&] { return core->stats (false).transportCcFeedbacks == 1; }, 2s));
  EXPECT_EQ (core->stats (true).viewerList[0].transportCcBitrate,
      v->received[1].wireSize * 8 * 1000000 / 1000);
}
