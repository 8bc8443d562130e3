#include <gtest/gtest.h>

#include "fanout-test-util.h"
#include "xdn-fanout-srtp.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

using namespace xdn::fanout;
using fanouttest::hex;
using fanouttest::toHex;

/* Counts allocations (OpenSSL's and C++'s) while a test asks. OpenSSL's
 * allocator can only be replaced before its first allocation: done while
 * the test program starts. (GCC takes the malloc/free pair of the replaced
 * operators for a mismatch.) */
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {

std::atomic<bool> gCounting {false};
std::atomic<long> gAllocations {0};

void *
countingMalloc (size_t n, const char *, int)
{
  if (gCounting)
    gAllocations++;
  return malloc (n);
}

void *
countingRealloc (void *p, size_t n, const char *, int)
{
  if (gCounting)
    gAllocations++;
  return realloc (p, n);
}

void
countingFree (void *p, const char *, int)
{
  free (p);
}

const bool gOpensslCounted = CRYPTO_set_mem_functions (countingMalloc, countingRealloc,
    countingFree) == 1;

}  // namespace

void *
operator new (size_t n)
{
  if (gCounting)
    gAllocations++;
  if (void *p = malloc (n ? n : 1))
    return p;
  throw std::bad_alloc ();
}

void
operator delete (void *p) noexcept
{
  free (p);
}

void
operator delete (void *p, size_t) noexcept
{
  free (p);
}

namespace {

const std::vector<uint8_t> kB3MasterKey = hex ("E1F97A0D3E018BE0D64FA32C06DE4139");
const std::vector<uint8_t> kB3MasterSalt = hex ("0EC675AD498AFEEBB6960B3AABE6");

struct KeyPair {
  std::vector<uint8_t> key, salt;
};

KeyPair
keysFor (SrtpProfile profile, uint64_t seed)
{
  const SrtpProfileParams *p = srtpProfileParams (profile);
  KeyPair k {std::vector<uint8_t> (p->masterKeyLength), std::vector<uint8_t> (p->masterSaltLength)};
  fanouttest::Rng rng (seed);
  rng.fill (k.key.data (), k.key.size ());
  rng.fill (k.salt.data (), k.salt.size ());
  return k;
}

class SrtpProfiles : public ::testing::TestWithParam<SrtpProfile> {
protected:
  void SetUp () override
  {
    keys_ = keysFor (GetParam (), 1234);
    ASSERT_TRUE (tx_.init (GetParam (), keys_.key.data (), keys_.salt.data ()));
    ASSERT_TRUE (rx_.init (GetParam (), keys_.key.data (), keys_.salt.data ()));
  }

  std::vector<uint8_t> protect (std::vector<uint8_t> p)
  {
    size_t n = p.size ();
    p.resize (n + SrtpContext::kMaxTrailer);
    size_t out = 0;
    EXPECT_EQ (tx_.protectRtp (p.data (), n, p.size (), out), SrtpStatus::Ok);
    p.resize (out);
    return p;
  }

  SrtpStatus unprotect (std::vector<uint8_t> &p)
  {
    size_t out = 0;
    SrtpStatus s = rx_.unprotectRtp (p.data (), p.size (), out);
    if (s == SrtpStatus::Ok)
      p.resize (out);
    return s;
  }

  KeyPair keys_;
  SrtpContext tx_, rx_;
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

TEST (SrtpKdf, DerivesRfc3711AppendixB3SessionKeys)
{
  uint8_t cipherKey[16], salt[14], auth[94];
  ASSERT_TRUE (srtpDeriveKey (kB3MasterKey.data (), 16, kB3MasterSalt.data (), 14,
      srtplabel::RtpEncryption, cipherKey, sizeof (cipherKey)));
  ASSERT_TRUE (srtpDeriveKey (kB3MasterKey.data (), 16, kB3MasterSalt.data (), 14,
      srtplabel::RtpSalt, salt, sizeof (salt)));
  ASSERT_TRUE (srtpDeriveKey (kB3MasterKey.data (), 16, kB3MasterSalt.data (), 14,
      srtplabel::RtpAuth, auth, sizeof (auth)));
  EXPECT_EQ (toHex (cipherKey, 16), "c61e7a93744f39ee10734afe3ff7a087");
  EXPECT_EQ (toHex (salt, 14), "30cbbc08863d8c85d49db34a9ae1");
  EXPECT_EQ (toHex (auth, 94),
      "cebe321f6ff7716b6fd4ab49af256a156d38baa48f0a0acf3c34e2359e6cdbce"
      "e049646c43d9327ad175578ef72270986371c10c9a369ac2f94a8c5fbcdddc25"
      "6d6e919a48b610ef17c2041e474035766b68642c59bbfc2f34db60dbdfb2");
}

TEST (SrtpKdf, RefusesBadLengths)
{
  uint8_t out[16];
  EXPECT_FALSE (srtpDeriveKey (kB3MasterKey.data (), 32, kB3MasterSalt.data (), 14, 0, out, 16));
  EXPECT_FALSE (srtpDeriveKey (kB3MasterKey.data (), 16, kB3MasterSalt.data (), 15, 0, out, 16));
}

TEST (SrtpAesCm, ProducesRfc3711AppendixB2Keystream)
{
  auto key = hex (fanouttest::rfc3711b2::kKey);
  auto salt = hex (fanouttest::rfc3711b2::kSalt);
  uint8_t iv[16];
  srtpAesCmIv (salt.data (), 0, 0, iv);
  EXPECT_EQ (toHex (iv, 16), "f0f1f2f3f4f5f6f7f8f9fafbfcfd0000");

  std::vector<uint8_t> ks (fanouttest::rfc3711b2::kLength, 0);
  ASSERT_TRUE (srtpAesCtr (key.data (), iv, ks.data (), ks.size ()));
  EXPECT_EQ (toHex (ks.data (), 48), fanouttest::rfc3711b2::kHead);
  EXPECT_EQ (toHex (ks.data () + ks.size () - 48, 48), fanouttest::rfc3711b2::kTail);
}

TEST (SrtpAesCm, IvPlacesSsrcAndIndex)
{
  uint8_t salt[14] = {};
  uint8_t iv[16];
  srtpAesCmIv (salt, 0x11223344, 0x0000AABBCCDDEEFFull, iv);
  EXPECT_EQ (toHex (iv, 16), "0000000011223344aabbccddeeff0000");
}

TEST (SrtpProfileTable, KnowsTheDtlsSrtpIds)
{
  EXPECT_EQ (srtpProfileFromId (0x0001), SrtpProfile::AesCm128HmacSha1_80);
  EXPECT_EQ (srtpProfileFromId (0x0002), SrtpProfile::AesCm128HmacSha1_32);
  EXPECT_EQ (srtpProfileFromId (0x0007), SrtpProfile::AeadAes128Gcm);
  EXPECT_FALSE (srtpProfileFromId (0x0008));  /* AES-256-GCM: not implemented */
  EXPECT_EQ (srtpProfileParams (SrtpProfile::AesCm128HmacSha1_32)->rtpTagLength, 4u);
  EXPECT_EQ (srtpProfileParams (SrtpProfile::AesCm128HmacSha1_32)->rtcpTagLength, 10u);
}

TEST_P (SrtpProfiles, RoundTripKeepsHeaderAndHidesPayload)
{
  for (int csrcs : {0, 2}) {
    for (bool ext : {false, true}) {
      for (size_t payload : {0, 1, 15, 16, 17, 160, 1188}) {
        auto plain = fanouttest::rtpPacket (1000, 90000, 0xCAFEBABE, payload, 96, csrcs, ext);
        size_t hl = 12 + 4 * csrcs + (ext ? 8 : 0);
        auto sealed = protect (plain);
        ASSERT_EQ (sealed.size (), plain.size () + tx_.rtpTrailer ());
        EXPECT_TRUE (std::equal (plain.begin (), plain.begin () + hl, sealed.begin ()));
        if (payload >= 16) {
          EXPECT_FALSE (std::equal (plain.begin () + hl, plain.end (), sealed.begin () + hl));
        }
        ASSERT_EQ (unprotect (sealed), SrtpStatus::Ok) << payload;
        EXPECT_EQ (sealed, plain);
        /* new sequence number each time: no replay */
        tx_.init (GetParam (), keys_.key.data (), keys_.salt.data ());
        rx_.init (GetParam (), keys_.key.data (), keys_.salt.data ());
      }
    }
  }
}

TEST_P (SrtpProfiles, TamperedPacketFailsAuthenticationAndLeavesState)
{
  auto plain = fanouttest::rtpPacket (7, 0, 0x1234, 100);
  auto sealed = protect (plain);
  for (size_t i : {size_t (1), size_t (11), size_t (40), sealed.size () - 1}) {
    auto bad = sealed;
    bad[i] ^= 0x40;
    EXPECT_EQ (unprotect (bad), SrtpStatus::AuthFail) << "byte " << i;
  }
  EXPECT_EQ (rx_.ssrcCount (), 0u) << "a failed packet creates no state";
  auto good = sealed;
  EXPECT_EQ (unprotect (good), SrtpStatus::Ok);
  EXPECT_EQ (good, plain);
}

TEST_P (SrtpProfiles, ReplayedAndTooOldPacketsAreRefused)
{
  std::vector<std::vector<uint8_t>> sealed;
  for (uint16_t seq = 100; seq < 400; seq++)
    sealed.push_back (protect (fanouttest::rtpPacket (seq, seq * 3000u, 0x55, 50)));
  auto first = sealed[0];
  auto copy = sealed[299];
  ASSERT_EQ (unprotect (copy), SrtpStatus::Ok);
  copy = sealed[299];
  EXPECT_EQ (unprotect (copy), SrtpStatus::Replayed);
  copy = sealed[299 - 127];  /* still inside the 128-packet window */
  EXPECT_EQ (unprotect (copy), SrtpStatus::Ok);
  copy = sealed[299 - 128];
  EXPECT_EQ (unprotect (copy), SrtpStatus::ReplayOld);
  EXPECT_EQ (unprotect (first), SrtpStatus::ReplayOld);
}

TEST_P (SrtpProfiles, RolloverCounterFollowsSequenceWrap)
{
  /* from sequence number 65000 for 140000 packets, every 97th sent */
  std::vector<std::vector<uint8_t>> plain, sealed;
  uint32_t last = 0;
  for (uint32_t i = 0; i < 140000; i += 97) {
    uint16_t seq = static_cast<uint16_t> (65000 + i);
    plain.push_back (fanouttest::rtpPacket (seq, i, 0xABCD, 20));
    sealed.push_back (protect (plain.back ()));
    last = 65000 + i;
  }
  ASSERT_EQ (last >> 16, 3u);
  EXPECT_EQ (tx_.rolloverCounter (0xABCD), 3u);
  for (size_t i = 0; i < sealed.size (); i++) {
    ASSERT_EQ (unprotect (sealed[i]), SrtpStatus::Ok) << "packet " << i;
    EXPECT_EQ (sealed[i], plain[i]);
  }
  EXPECT_EQ (rx_.rolloverCounter (0xABCD), 3u);
}

TEST_P (SrtpProfiles, ReorderedPacketsAcrossWrapDecrypt)
{
  /* sent 65534, 65535, 0, 1; received 65535, 0, 65534, 1 */
  std::vector<std::vector<uint8_t>> plain, sealed;
  for (uint16_t seq : {uint16_t (65534), uint16_t (65535), uint16_t (0), uint16_t (1)}) {
    plain.push_back (fanouttest::rtpPacket (seq, 0, 9, 30));
    sealed.push_back (protect (plain.back ()));
  }
  for (int i : {1, 2, 0, 3}) {
    ASSERT_EQ (unprotect (sealed[i]), SrtpStatus::Ok) << i;
    EXPECT_EQ (sealed[i], plain[i]);
  }
}

TEST_P (SrtpProfiles, RetransmissionProducesTheSameBytes)
{
  auto p10 = fanouttest::rtpPacket (10, 0, 77, 300);
  auto first = protect (p10);
  for (uint16_t seq = 11; seq < 60; seq++)
    protect (fanouttest::rtpPacket (seq, 0, 77, 300));
  EXPECT_EQ (protect (p10), first);
}

TEST_P (SrtpProfiles, DeferredTagsComputedTogetherEqualTheInPlaceOnes)
{
  /* Two contexts with the same keys: one protects in place, the other
   * leaves its tags to HmacSha1::many, across a sequence wrap. */
  SrtpContext deferred;
  ASSERT_TRUE (deferred.init (GetParam (), keys_.key.data (), keys_.salt.data ()));
  std::vector<std::vector<uint8_t>> expected, sealed;
  std::vector<HmacSha1::Job> jobs;
  sealed.reserve (40);
  for (int i = 0; i < 40; i++) {
    const uint16_t seq = static_cast<uint16_t> (65520 + i);
    auto plain = fanouttest::rtpPacket (seq, 0, 77, 100 + 25 * (i % 3));
    expected.push_back (protect (plain));
    auto p = plain;
    p.resize (plain.size () + SrtpContext::kMaxTrailer);
    size_t out = 0;
    HmacSha1::Job job;
    ASSERT_EQ (deferred.protectRtp (p.data (), plain.size (), p.size (), out, &job), SrtpStatus::Ok);
    p.resize (out);
    sealed.push_back (std::move (p));
    if (GetParam () == SrtpProfile::AeadAes128Gcm) {
      EXPECT_EQ (job.key, nullptr) << "GCM's tag is done in place";
      continue;
    }
    ASSERT_NE (job.key, nullptr);
    job.message = sealed.back ().data ();
    job.tag = sealed.back ().data () + plain.size ();
    jobs.push_back (job);
  }
  HmacSha1::many (jobs.data (), jobs.size ());
  for (int i = 0; i < 40; i++)
    EXPECT_EQ (sealed[i], expected[i]) << i;
}

TEST_P (SrtpProfiles, SourcesKeepTheirOwnCounters)
{
  auto a = protect (fanouttest::rtpPacket (65535, 0, 1, 10));
  protect (fanouttest::rtpPacket (0, 0, 1, 10));          /* ssrc 1 wraps */
  protect (fanouttest::rtpPacket (5, 0, 2, 10));          /* ssrc 2 does not */
  EXPECT_EQ (tx_.rolloverCounter (1), 1u);
  EXPECT_EQ (tx_.rolloverCounter (2), 0u);
  EXPECT_FALSE (tx_.rolloverCounter (3));
  EXPECT_EQ (tx_.ssrcCount (), 2u);
}

TEST_P (SrtpProfiles, RtcpRoundTripCountsIndexAndRefusesReplay)
{
  std::vector<std::vector<uint8_t>> sealed, plain;
  for (int i = 0; i < 300; i++) {
    plain.push_back (fanouttest::rtcpPacket (0xFEEDu, static_cast<size_t> (i % 9), static_cast<uint8_t> (i)));
    auto p = plain.back ();
    size_t n = p.size ();
    p.resize (n + SrtpContext::kMaxTrailer);
    size_t out = 0;
    ASSERT_EQ (tx_.protectRtcp (p.data (), n, p.size (), out), SrtpStatus::Ok);
    ASSERT_EQ (out, n + tx_.rtcpTrailer ());
    p.resize (out);
    /* E flag and index: after the tag for GCM, before it for AES-CM */
    const SrtpProfileParams *params = srtpProfileParams (GetParam ());
    size_t at = params->aead ? n + params->rtcpTagLength : n;
    uint32_t word = (uint32_t (p[at]) << 24) | (p[at + 1] << 16) | (p[at + 2] << 8) | p[at + 3];
    EXPECT_EQ (word, 0x80000000u | uint32_t (i + 1));
    EXPECT_TRUE (std::equal (plain.back ().begin (), plain.back ().begin () + 8, p.begin ()));
    sealed.push_back (p);
  }
  for (size_t i = 0; i < sealed.size (); i++) {
    auto p = sealed[i];
    size_t out = 0;
    ASSERT_EQ (rx_.unprotectRtcp (p.data (), p.size (), out), SrtpStatus::Ok) << i;
    p.resize (out);
    EXPECT_EQ (p, plain[i]);
  }
  auto again = sealed.back ();
  size_t out = 0;
  EXPECT_EQ (rx_.unprotectRtcp (again.data (), again.size (), out), SrtpStatus::Replayed);
  again = sealed.front ();
  EXPECT_EQ (rx_.unprotectRtcp (again.data (), again.size (), out), SrtpStatus::ReplayOld);
  /* a new packet, changed on the way */
  auto bad = plain[5];
  size_t n = bad.size ();
  bad.resize (n + SrtpContext::kMaxTrailer);
  ASSERT_EQ (tx_.protectRtcp (bad.data (), n, bad.size (), out), SrtpStatus::Ok);
  bad.resize (out);
  auto good = bad;
  bad[9] ^= 1;
  EXPECT_EQ (rx_.unprotectRtcp (bad.data (), bad.size (), out), SrtpStatus::AuthFail);
  /* the failure left no trace: the packet as sent still goes through */
  EXPECT_EQ (rx_.unprotectRtcp (good.data (), good.size (), out), SrtpStatus::Ok);
}

TEST_P (SrtpProfiles, RefusesMalformedPacketsAndShortBuffers)
{
  size_t out = 0;
  auto p = fanouttest::rtpPacket (1, 0, 1, 100);
  EXPECT_EQ (tx_.protectRtp (p.data (), p.size (), p.size (), out), SrtpStatus::NoRoom);
  EXPECT_EQ (tx_.protectRtp (p.data (), 11, 200, out), SrtpStatus::BadPacket);
  auto v1 = p;
  v1[0] = 0x40;
  v1.resize (200);
  EXPECT_EQ (tx_.protectRtp (v1.data (), 112, v1.size (), out), SrtpStatus::BadPacket);
  /* 15 CSRCs do not fit in 20 bytes */
  auto cc = fanouttest::rtpPacket (1, 0, 1, 8);
  cc[0] = 0x8F;
  cc.resize (64);
  EXPECT_EQ (tx_.protectRtp (cc.data (), 20, cc.size (), out), SrtpStatus::BadPacket);
  /* an extension longer than the packet */
  auto ext = fanouttest::rtpPacket (1, 0, 1, 40, 96, 0, true);
  ext[14] = 0xFF;
  ext.resize (ext.size () + 32);
  EXPECT_EQ (tx_.protectRtp (ext.data (), ext.size () - 32, ext.size (), out), SrtpStatus::BadPacket);

  for (size_t n = 0; n < 12 + rx_.rtpTrailer (); n++) {
    std::vector<uint8_t> shortPacket (p.begin (), p.begin () + n);
    EXPECT_EQ (rx_.unprotectRtp (shortPacket.data (), n, out), SrtpStatus::BadPacket);
  }
  for (size_t n = 0; n < 8 + rx_.rtcpTrailer (); n++) {
    std::vector<uint8_t> shortPacket (p.begin (), p.begin () + n);
    EXPECT_EQ (rx_.unprotectRtcp (shortPacket.data (), n, out), SrtpStatus::BadPacket);
  }
  SrtpContext none;
  EXPECT_EQ (none.protectRtp (p.data (), p.size (), p.size (), out), SrtpStatus::NotReady);
}

TEST_P (SrtpProfiles, RandomDatagramsNeverDecrypt)
{
  fanouttest::Rng rng (5);
  size_t out = 0;
  for (int i = 0; i < 3000; i++) {
    std::vector<uint8_t> d (rng.below (1500));
    rng.fill (d.data (), d.size ());
    if (!d.empty ())
      d[0] = static_cast<uint8_t> (0x80 | (d[0] & 0x3f));
    auto copy = d;
    EXPECT_NE (rx_.unprotectRtp (d.data (), d.size (), out), SrtpStatus::Ok);
    EXPECT_NE (rx_.unprotectRtcp (copy.data (), copy.size (), out), SrtpStatus::Ok);
  }
  EXPECT_EQ (rx_.ssrcCount (), 0u);
}

TEST_P (SrtpProfiles, ProtectAllocatesNothingPerPacket)
{
  if (!gOpensslCounted)
    GTEST_SKIP () << "OpenSSL allocated before the counter could be installed";
  std::vector<uint8_t> buf (1200 + SrtpContext::kMaxTrailer);
  auto rtcp = fanouttest::rtcpPacket (42, 20);
  rtcp.resize (rtcp.size () + SrtpContext::kMaxTrailer);
  size_t out = 0;
  /* first packets create the source's state */
  auto p = fanouttest::rtpPacket (0, 0, 42, 1188);
  std::copy (p.begin (), p.end (), buf.begin ());
  ASSERT_EQ (tx_.protectRtp (buf.data (), p.size (), buf.size (), out), SrtpStatus::Ok);
  ASSERT_EQ (tx_.protectRtcp (rtcp.data (), rtcp.size () - SrtpContext::kMaxTrailer, rtcp.size (), out),
      SrtpStatus::Ok);

  gAllocations = 0;
  gCounting = true;
  for (uint16_t seq = 1; seq < 2000; seq++) {
    buf[2] = static_cast<uint8_t> (seq >> 8);
    buf[3] = static_cast<uint8_t> (seq);
    tx_.protectRtp (buf.data (), p.size (), buf.size (), out);
    if (seq % 100 == 0)
      tx_.protectRtcp (rtcp.data (), rtcp.size () - SrtpContext::kMaxTrailer, rtcp.size (), out);
  }
  gCounting = false;
  EXPECT_EQ (gAllocations.load (), 0);

  /* the counter does see OpenSSL's and C++'s allocations */
  gAllocations = 0;
  gCounting = true;
  EVP_CIPHER_CTX_free (EVP_CIPHER_CTX_new ());
  auto *boxed = new std::vector<int> (3);
  gCounting = false;
  delete boxed;
  EXPECT_GE (gAllocations.load (), 3);
}

INSTANTIATE_TEST_SUITE_P (Profiles, SrtpProfiles,
    ::testing::Values (SrtpProfile::AesCm128HmacSha1_80, SrtpProfile::AesCm128HmacSha1_32,
        SrtpProfile::AeadAes128Gcm),
    profileName);
