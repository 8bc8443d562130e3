/* The OpenSSL SRTP transform against libsrtp 2 (the system's): the same
 * keys and packets must give the same bytes, and each must read the
 * other's output, across sequence number wraps and for several sources. */
#include <gtest/gtest.h>

#include "fanout-test-util.h"
#include "xdn-fanout-srtp.h"

#include <srtp2/srtp.h>

#include <cstring>

using namespace xdn::fanout;
using fanouttest::toHex;

namespace {

class LibSrtp {
public:
  LibSrtp (SrtpProfile profile, const std::vector<uint8_t> &key, const std::vector<uint8_t> &salt,
      bool outbound)
  {
    static const bool initialised = srtp_init () == srtp_err_status_ok;
    EXPECT_TRUE (initialised);
    srtp_policy_t policy;
    memset (&policy, 0, sizeof (policy));
    switch (profile) {
      case SrtpProfile::AesCm128HmacSha1_80:
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80 (&policy.rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80 (&policy.rtcp);
        break;
      case SrtpProfile::AesCm128HmacSha1_32:
        /* RFC 5764 4.1.2: SRTCP keeps the 80-bit tag */
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32 (&policy.rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80 (&policy.rtcp);
        break;
      case SrtpProfile::AeadAes128Gcm:
        srtp_crypto_policy_set_aes_gcm_128_16_auth (&policy.rtp);
        srtp_crypto_policy_set_aes_gcm_128_16_auth (&policy.rtcp);
        break;
    }
    keySalt_ = key;
    keySalt_.insert (keySalt_.end (), salt.begin (), salt.end ());
    keySalt_.resize (64);  /* libsrtp may read a full key buffer */
    policy.key = keySalt_.data ();
    policy.ssrc.type = outbound ? ssrc_any_outbound : ssrc_any_inbound;
    policy.window_size = 128;
    policy.allow_repeat_tx = 1;
    status_ = srtp_create (&session_, &policy);
  }
  ~LibSrtp ()
  {
    if (session_)
      srtp_dealloc (session_);
  }
  bool ok () const { return status_ == srtp_err_status_ok; }
  srtp_err_status_t status () const { return status_; }

  std::vector<uint8_t> protectRtp (std::vector<uint8_t> p)
  {
    int len = static_cast<int> (p.size ());
    p.resize (p.size () + SRTP_MAX_TRAILER_LEN + 16);
    EXPECT_EQ (srtp_protect (session_, p.data (), &len), srtp_err_status_ok);
    p.resize (static_cast<size_t> (len));
    return p;
  }
  std::vector<uint8_t> protectRtcp (std::vector<uint8_t> p)
  {
    int len = static_cast<int> (p.size ());
    p.resize (p.size () + SRTP_MAX_TRAILER_LEN + 16);
    EXPECT_EQ (srtp_protect_rtcp (session_, p.data (), &len), srtp_err_status_ok);
    p.resize (static_cast<size_t> (len));
    return p;
  }
  srtp_err_status_t unprotectRtp (std::vector<uint8_t> &p)
  {
    int len = static_cast<int> (p.size ());
    srtp_err_status_t s = srtp_unprotect (session_, p.data (), &len);
    if (s == srtp_err_status_ok)
      p.resize (static_cast<size_t> (len));
    return s;
  }
  srtp_err_status_t unprotectRtcp (std::vector<uint8_t> &p)
  {
    int len = static_cast<int> (p.size ());
    srtp_err_status_t s = srtp_unprotect_rtcp (session_, p.data (), &len);
    if (s == srtp_err_status_ok)
      p.resize (static_cast<size_t> (len));
    return s;
  }

private:
  std::vector<uint8_t> keySalt_;
  srtp_t session_ = nullptr;
  srtp_err_status_t status_ = srtp_err_status_fail;
};

std::vector<uint8_t>
ours (SrtpContext &c, std::vector<uint8_t> p, bool rtcp)
{
  size_t n = p.size (), out = 0;
  p.resize (n + SrtpContext::kMaxTrailer);
  SrtpStatus s = rtcp ? c.protectRtcp (p.data (), n, p.size (), out)
                      : c.protectRtp (p.data (), n, p.size (), out);
  EXPECT_EQ (s, SrtpStatus::Ok) << srtpStatusName (s);
  p.resize (out);
  return p;
}

class AgainstLibSrtp : public ::testing::TestWithParam<SrtpProfile> {
protected:
  void SetUp () override
  {
    const SrtpProfileParams *params = srtpProfileParams (GetParam ());
    fanouttest::Rng rng (0x5eed + static_cast<int> (GetParam ()));
    key_.resize (params->masterKeyLength);
    salt_.resize (params->masterSaltLength);
    rng.fill (key_.data (), key_.size ());
    rng.fill (salt_.data (), salt_.size ());
  }
  std::vector<uint8_t> key_, salt_;
};

std::string
profileName (const ::testing::TestParamInfo<SrtpProfile> &info)
{
  switch (info.param) {
    case SrtpProfile::AesCm128HmacSha1_80: return "AesCm80";
    case SrtpProfile::AesCm128HmacSha1_32: return "AesCm32";
    case SrtpProfile::AeadAes128Gcm: return "AeadGcm128";
  }
  return "unknown";
}

}  // namespace

TEST_P (AgainstLibSrtp, RtpIsBitForBitTheSameAcrossSequenceWrap)
{
  LibSrtp ref (GetParam (), key_, salt_, true);
  ASSERT_TRUE (ref.ok ()) << "srtp_create: " << ref.status ();
  SrtpContext mine;
  ASSERT_TRUE (mine.init (GetParam (), key_.data (), salt_.data ()));
  fanouttest::Rng rng (11);
  /* two sources interleaved, both wrapping; sizes from 0 to 1400 */
  const uint32_t ssrcs[] = {0x11111111, 0xDEADBEEF};
  const uint16_t starts[] = {65300, 64500};
  int compared = 0;
  for (int i = 0; i < 3000; i++) {
    int which = i % 2;
    uint16_t seq = static_cast<uint16_t> (starts[which] + i / 2);
    auto plain = fanouttest::rtpPacket (seq, 90u * i, ssrcs[which], rng.below (1401),
        static_cast<uint8_t> (96 + which), static_cast<int> (rng.below (3)), rng.below (2) == 1,
        rng.byte ());
    auto a = ours (mine, plain, false);
    auto b = ref.protectRtp (plain);
    ASSERT_EQ (toHex (a), toHex (b)) << "packet " << i << " seq " << seq;
    compared++;
  }
  EXPECT_EQ (mine.rolloverCounter (ssrcs[0]), 1u);
  EXPECT_EQ (mine.rolloverCounter (ssrcs[1]), 1u);
  EXPECT_EQ (compared, 3000);
}

TEST_P (AgainstLibSrtp, RetransmissionMatchesLibSrtpRepeat)
{
  LibSrtp ref (GetParam (), key_, salt_, true);
  ASSERT_TRUE (ref.ok ());
  SrtpContext mine;
  ASSERT_TRUE (mine.init (GetParam (), key_.data (), salt_.data ()));
  for (uint16_t seq = 65530; seq != 20; seq++) {
    auto p = fanouttest::rtpPacket (seq, 0, 3, 200);
    ASSERT_EQ (ours (mine, p, false), ref.protectRtp (p));
  }
  /* sent again after the wrap, from before it */
  for (uint16_t seq : {uint16_t (65533), uint16_t (2), uint16_t (65535)}) {
    auto p = fanouttest::rtpPacket (seq, 0, 3, 200);
    EXPECT_EQ (ours (mine, p, false), ref.protectRtp (p)) << seq;
  }
}

TEST_P (AgainstLibSrtp, RtcpIsBitForBitTheSame)
{
  LibSrtp ref (GetParam (), key_, salt_, true);
  ASSERT_TRUE (ref.ok ());
  SrtpContext mine;
  ASSERT_TRUE (mine.init (GetParam (), key_.data (), salt_.data ()));
  /* past index 255 so that every byte of the index has been non-zero */
  for (int i = 0; i < 600; i++) {
    uint32_t ssrc = i % 3 ? 0x01020304 : 0xA0B0C0D0;
    auto plain = fanouttest::rtcpPacket (ssrc, static_cast<size_t> (i % 11), static_cast<uint8_t> (i));
    auto a = ours (mine, plain, true);
    auto b = ref.protectRtcp (plain);
    ASSERT_EQ (toHex (a), toHex (b)) << "packet " << i;
  }
}

TEST_P (AgainstLibSrtp, EachReadsTheOther)
{
  LibSrtp refTx (GetParam (), key_, salt_, true);
  LibSrtp refRx (GetParam (), key_, salt_, false);
  ASSERT_TRUE (refTx.ok () && refRx.ok ());
  SrtpContext mineTx, mineRx;
  ASSERT_TRUE (mineTx.init (GetParam (), key_.data (), salt_.data ()));
  ASSERT_TRUE (mineRx.init (GetParam (), key_.data (), salt_.data ()));
  /* ours -> libsrtp on ssrc 5, libsrtp -> ours on ssrc 6, across a wrap */
  for (int i = 0; i < 1200; i++) {
    uint16_t seq = static_cast<uint16_t> (65000 + i);
    auto p5 = fanouttest::rtpPacket (seq, 0, 5, 100 + i % 50);
    auto s5 = ours (mineTx, p5, false);
    ASSERT_EQ (refRx.unprotectRtp (s5), srtp_err_status_ok) << i;
    EXPECT_EQ (s5, p5);

    auto p6 = fanouttest::rtpPacket (seq, 0, 6, 100 + i % 50);
    auto s6 = refTx.protectRtp (p6);
    size_t out = 0;
    ASSERT_EQ (mineRx.unprotectRtp (s6.data (), s6.size (), out), SrtpStatus::Ok) << i;
    s6.resize (out);
    EXPECT_EQ (s6, p6);

    if (i % 10 == 0) {
      auto r5 = fanouttest::rtcpPacket (5, i % 7);
      auto sr5 = ours (mineTx, r5, true);
      ASSERT_EQ (refRx.unprotectRtcp (sr5), srtp_err_status_ok) << i;
      EXPECT_EQ (sr5, r5);
      auto r6 = fanouttest::rtcpPacket (6, i % 7);
      auto sr6 = refTx.protectRtcp (r6);
      ASSERT_EQ (mineRx.unprotectRtcp (sr6.data (), sr6.size (), out), SrtpStatus::Ok) << i;
      sr6.resize (out);
      EXPECT_EQ (sr6, r6);
    }
  }
}

INSTANTIATE_TEST_SUITE_P (Profiles, AgainstLibSrtp,
    ::testing::Values (SrtpProfile::AesCm128HmacSha1_80, SrtpProfile::AesCm128HmacSha1_32,
        SrtpProfile::AeadAes128Gcm),
    profileName);
