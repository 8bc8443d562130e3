#include <gtest/gtest.h>

#include "fanout-test-util.h"
#include "xdn-fanout-stun.h"

#include <openssl/hmac.h>

#include <cstring>

using namespace xdn::fanout;
using fanouttest::hex;

namespace {

/* RFC 5769 2.1-2.3 (short-term credentials, password below). */
const char *kRfcPassword = "VOkJxbRl1RmTxUk/WvJxBt";

const std::vector<uint8_t> kSampleRequest = hex (
    "00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86"
    "fa 87 df ae 80 22 00 10 53 54 55 4e 20 74 65 73"
    "74 20 63 6c 69 65 6e 74 00 24 00 04 6e 00 01 ff"
    "80 29 00 08 93 2f f9 b1 51 26 3b 36 00 06 00 09"
    "65 76 74 6a 3a 68 36 76 59 20 20 20 00 08 00 14"
    "9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49"
    "c1 b5 71 a2 80 28 00 04 e5 7a 3b cf");

const std::vector<uint8_t> kSampleIpv4Response = hex (
    "01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86"
    "fa 87 df ae 80 22 00 0b 74 65 73 74 20 76 65 63"
    "74 6f 72 20 00 20 00 08 00 01 a1 47 e1 12 a6 43"
    "00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9"
    "2a f9 ba 53 f0 6b e7 d7 80 28 00 04 c0 7d 4c 96");

const std::vector<uint8_t> kSampleIpv6Response = hex (
    "01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86"
    "fa 87 df ae 80 22 00 0b 74 65 73 74 20 76 65 63"
    "74 6f 72 20 00 20 00 14 00 02 a1 47 01 13 a9 fa"
    "a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9 00 08 00 14"
    "a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75"
    "bf e3 ed 41 80 28 00 04 c8 fb 0b 4c");

const std::array<uint8_t, 12> kTxid = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87,
  0xdf, 0xae};

StunParseError
parse (const std::vector<uint8_t> &m, StunMessage &out)
{
  return stunParse (m.data (), m.size (), out);
}

/* HMAC-SHA1 by OpenSSL's one-shot call, independent of the code under test. */
std::vector<uint8_t>
opensslHmac (const std::string &key, const uint8_t *data, size_t len)
{
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int outLen = 0;
  HMAC (EVP_sha1 (), key.data (), static_cast<int> (key.size ()), data, len, out, &outLen);
  return std::vector<uint8_t> (out, out + outLen);
}

}  // namespace

TEST (Stun, ParsesRfc5769SampleRequest)
{
  StunMessage m;
  ASSERT_EQ (parse (kSampleRequest, m), StunParseError::None);
  EXPECT_EQ (m.method, kStunMethodBinding);
  EXPECT_EQ (m.cls, StunClass::Request);
  EXPECT_EQ (m.transactionId, kTxid);
  ASSERT_TRUE (m.username);
  EXPECT_EQ (*m.username, "evtj:h6vY");
  ASSERT_TRUE (m.priority);
  EXPECT_EQ (*m.priority, 0x6e0001ffu);
  ASSERT_TRUE (m.iceControlled);
  EXPECT_EQ (*m.iceControlled, 0x932ff9b151263b36ull);
  EXPECT_FALSE (m.iceControlling);
  EXPECT_FALSE (m.useCandidate);
  EXPECT_EQ (m.unknownRequiredCount, 0u);
  EXPECT_EQ (m.integrityOffset, 0x4cu);
  EXPECT_EQ (m.fingerprintOffset, 0x64u);
}

TEST (Stun, ChecksRfc5769SampleRequestIntegrityAndFingerprint)
{
  StunMessage m;
  ASSERT_EQ (parse (kSampleRequest, m), StunParseError::None);
  EXPECT_TRUE (stunCheckFingerprint (m));
  EXPECT_TRUE (stunCheckIntegrity (m, kRfcPassword));
  EXPECT_FALSE (stunCheckIntegrity (m, "VOkJxbRl1RmTxUk/WvJxBu"));
  EXPECT_FALSE (stunCheckIntegrity (m, ""));

  /* The vector's MAC is what OpenSSL's own HMAC gives for it: over the
   * message up to MESSAGE-INTEGRITY, the header length counting up to its
   * end (0x50) and not FINGERPRINT. */
  std::vector<uint8_t> covered (kSampleRequest.begin (), kSampleRequest.begin () + 0x4c);
  covered[3] = 0x50;
  EXPECT_EQ (opensslHmac (kRfcPassword, covered.data (), covered.size ()),
      std::vector<uint8_t> (kSampleRequest.begin () + 0x50, kSampleRequest.begin () + 0x64));
}

TEST (Stun, ParsesRfc5769Ipv4Response)
{
  StunMessage m;
  ASSERT_EQ (parse (kSampleIpv4Response, m), StunParseError::None);
  EXPECT_EQ (m.cls, StunClass::SuccessResponse);
  ASSERT_TRUE (m.xorMappedAddress);
  EXPECT_EQ (m.xorMappedAddress->toString (), "192.0.2.1:32853");
  EXPECT_EQ (*m.xorMappedAddress, SockAddr::parse ("192.0.2.1", 32853));
  EXPECT_TRUE (stunCheckIntegrity (m, kRfcPassword));
  EXPECT_TRUE (stunCheckFingerprint (m));
}

TEST (Stun, ParsesRfc5769Ipv6Response)
{
  StunMessage m;
  ASSERT_EQ (parse (kSampleIpv6Response, m), StunParseError::None);
  ASSERT_TRUE (m.xorMappedAddress);
  EXPECT_EQ (*m.xorMappedAddress, SockAddr::parse ("2001:db8:1234:5678:11:2233:4455:6677", 32853));
  EXPECT_TRUE (stunCheckIntegrity (m, kRfcPassword));
  EXPECT_TRUE (stunCheckFingerprint (m));
}

TEST (Stun, ChangedByteFailsIntegrityAndFingerprint)
{
  for (size_t i = 20; i < 0x4c; i++) {
    auto bad = kSampleRequest;
    bad[i] ^= 0x01;
    StunMessage m;
    if (parse (bad, m) != StunParseError::None)
      continue;  /* an attribute header changed: refused earlier */
    EXPECT_FALSE (stunCheckIntegrity (m, kRfcPassword)) << "byte " << i;
    EXPECT_FALSE (stunCheckFingerprint (m)) << "byte " << i;
  }
}

TEST (Stun, BuilderOutputVerifiesWithIndependentHmacAndCrc)
{
  uint8_t buf[256];
  StunBuilder b (buf, sizeof (buf), kStunMethodBinding, StunClass::Request, kTxid);
  b.addString (stunattr::Software, "STUN test client");
  b.addU32 (stunattr::Priority, 0x6e0001ff);
  b.addU64 (stunattr::IceControlled, 0x932ff9b151263b36ull);
  b.addString (stunattr::Username, "evtj:h6vY");
  b.addIntegrity (kRfcPassword);
  b.addFingerprint ();
  ASSERT_TRUE (b.ok ());
  /* Same layout as the RFC's sample (which pads with spaces, we with 0). */
  ASSERT_EQ (b.size (), kSampleRequest.size ());
  std::vector<uint8_t> out (buf, buf + b.size ());
  EXPECT_EQ (std::vector<uint8_t> (out.begin (), out.begin () + 0x49),
      std::vector<uint8_t> (kSampleRequest.begin (), kSampleRequest.begin () + 0x49));

  std::vector<uint8_t> covered (out.begin (), out.begin () + 0x4c);
  covered[3] = 0x50;
  EXPECT_EQ (opensslHmac (kRfcPassword, covered.data (), covered.size ()),
      std::vector<uint8_t> (out.begin () + 0x50, out.begin () + 0x64));
  uint32_t crc = stunCrc32 (out.data (), 0x64) ^ kStunFingerprintXor;
  EXPECT_EQ (crc, (uint32_t (out[0x68]) << 24) | (out[0x69] << 16) | (out[0x6a] << 8) | out[0x6b]);

  StunMessage m;
  ASSERT_EQ (parse (out, m), StunParseError::None);
  EXPECT_TRUE (stunCheckIntegrity (m, kRfcPassword));
  EXPECT_TRUE (stunCheckFingerprint (m));
}

TEST (Stun, Crc32IsTheIsoHdlcCrc)
{
  const char *check = "123456789";
  EXPECT_EQ (stunCrc32 (reinterpret_cast<const uint8_t *> (check), 9), 0xCBF43926u);
}

TEST (Stun, XorAddressesRoundTrip)
{
  for (auto addr : {SockAddr::parse ("203.0.113.9", 61000), SockAddr::parse ("::1", 1),
           SockAddr::parse ("2001:db8::7", 50000)}) {
    uint8_t buf[128];
    StunBuilder b (buf, sizeof (buf), kStunMethodBinding, StunClass::SuccessResponse, kTxid);
    ASSERT_TRUE (b.addXorAddress (stunattr::XorMappedAddress, addr));
    StunMessage m;
    ASSERT_EQ (stunParse (buf, b.size (), m), StunParseError::None);
    ASSERT_TRUE (m.xorMappedAddress);
    EXPECT_EQ (*m.xorMappedAddress, addr) << addr.toString ();
  }
}

TEST (Stun, ErrorCodeRoundTrips)
{
  uint8_t buf[128];
  StunBuilder b (buf, sizeof (buf), kStunMethodBinding, StunClass::ErrorResponse, kTxid);
  ASSERT_TRUE (b.addErrorCode (487, "Role Conflict"));
  StunMessage m;
  ASSERT_EQ (stunParse (buf, b.size (), m), StunParseError::None);
  EXPECT_EQ (m.cls, StunClass::ErrorResponse);
  ASSERT_TRUE (m.errorCode);
  EXPECT_EQ (*m.errorCode, 487);
  EXPECT_EQ (m.errorReason, "Role Conflict");
  EXPECT_FALSE (b.addErrorCode (700, "x"));
}

TEST (Stun, BuilderRefusesAnAttributePastItsBuffer)
{
  uint8_t buf[32];
  StunBuilder b (buf, sizeof (buf), kStunMethodBinding, StunClass::Request, kTxid);
  EXPECT_TRUE (b.addU32 (stunattr::Priority, 1));   /* 28 bytes */
  EXPECT_FALSE (b.addU32 (stunattr::Priority, 2));  /* would be 36 */
  EXPECT_FALSE (b.ok ());
  EXPECT_EQ (b.size (), 0u);
  EXPECT_FALSE (b.addFingerprint ());
  uint8_t tiny[10];
  StunBuilder t (tiny, sizeof (tiny), kStunMethodBinding, StunClass::Request, kTxid);
  EXPECT_FALSE (t.ok ());
}

TEST (Stun, SplitsUsernameAtFirstColon)
{
  std::string_view l, r;
  ASSERT_TRUE (stunSplitUsername ("evtj:h6vY", l, r));
  EXPECT_EQ (l, "evtj");
  EXPECT_EQ (r, "h6vY");
  ASSERT_TRUE (stunSplitUsername ("a:b:c", l, r));
  EXPECT_EQ (l, "a");
  EXPECT_EQ (r, "b:c");
  EXPECT_FALSE (stunSplitUsername ("nocolon", l, r));
  EXPECT_FALSE (stunSplitUsername (":remote", l, r));
  EXPECT_FALSE (stunSplitUsername ("local:", l, r));
  EXPECT_FALSE (stunSplitUsername ("", l, r));
}

TEST (Stun, RefusesEveryTruncation)
{
  for (size_t n = 0; n < kSampleRequest.size (); n++) {
    /* a copy of exactly n bytes, so a read past it is caught by ASan */
    std::vector<uint8_t> cut (kSampleRequest.begin (), kSampleRequest.begin () + n);
    StunMessage m;
    EXPECT_NE (parse (cut, m), StunParseError::None) << "length " << n;
  }
}

TEST (Stun, RefusesTruncationWithPatchedLength)
{
  /* Cut at every 4-byte boundary with the header length made to match:
   * either parses (the cut fell between attributes) or is refused. */
  for (size_t n = 20; n < kSampleRequest.size (); n += 4) {
    std::vector<uint8_t> cut (kSampleRequest.begin (), kSampleRequest.begin () + n);
    cut[2] = static_cast<uint8_t> ((n - 20) >> 8);
    cut[3] = static_cast<uint8_t> (n - 20);
    StunMessage m;
    StunParseError e = parse (cut, m);
    if (e == StunParseError::None) {
      EXPECT_FALSE (stunCheckFingerprint (m));
    } else {
      EXPECT_EQ (e, StunParseError::AttributeOverrun) << "length " << n;
    }
  }
}

TEST (Stun, RefusesBadHeaders)
{
  StunMessage m;
  auto bad = kSampleRequest;
  bad[4] = 0x21 ^ 0xff;
  EXPECT_EQ (parse (bad, m), StunParseError::BadMagicCookie);

  bad = kSampleRequest;
  bad[0] |= 0x80;  /* RTP and DTLS start this way */
  EXPECT_EQ (parse (bad, m), StunParseError::NotStun);

  bad = kSampleRequest;
  bad[3] = 0x59;  /* not a multiple of 4 */
  EXPECT_EQ (parse (bad, m), StunParseError::BadLength);

  bad = kSampleRequest;
  bad[3] = 0x5c;  /* longer than the datagram */
  EXPECT_EQ (parse (bad, m), StunParseError::BadLength);

  bad = kSampleRequest;
  bad.push_back (0);
  bad.push_back (0);
  bad.push_back (0);
  bad.push_back (0);  /* datagram longer than the message */
  EXPECT_EQ (parse (bad, m), StunParseError::BadLength);

  EXPECT_FALSE (stunLooksLike (kSampleRequest.data (), 19));
  EXPECT_TRUE (stunLooksLike (kSampleRequest.data (), kSampleRequest.size ()));
}

TEST (Stun, RefusesAttributeOverruns)
{
  StunMessage m;
  /* SOFTWARE claims 0x100 bytes */
  auto bad = kSampleRequest;
  bad[22] = 0x01;
  bad[23] = 0x00;
  EXPECT_EQ (parse (bad, m), StunParseError::AttributeOverrun);

  /* last attribute (FINGERPRINT) claims 8 bytes */
  bad = kSampleRequest;
  bad[0x67] = 0x08;
  EXPECT_EQ (parse (bad, m), StunParseError::AttributeOverrun);

  /* the largest length there is */
  bad = kSampleRequest;
  bad[22] = 0xff;
  bad[23] = 0xff;
  EXPECT_EQ (parse (bad, m), StunParseError::AttributeOverrun);
}

TEST (Stun, RefusesBadAttributeValues)
{
  StunMessage m;
  /* PRIORITY of 8 bytes (swallows ICE-CONTROLLED's header): wrong size */
  auto bad = kSampleRequest;
  bad[0x2b] = 0x08;
  EXPECT_EQ (parse (bad, m), StunParseError::BadAttributeValue);

  /* XOR-MAPPED-ADDRESS with family 3 */
  auto v4 = kSampleIpv4Response;
  v4[0x29] = 0x03;
  EXPECT_EQ (parse (v4, m), StunParseError::BadAttributeValue);

  /* MESSAGE-INTEGRITY of 16 bytes */
  uint8_t buf[64];
  StunBuilder b (buf, sizeof (buf), kStunMethodBinding, StunClass::Request, kTxid);
  uint8_t mac[16] = {};
  b.addBytes (stunattr::MessageIntegrity, mac, sizeof (mac));
  EXPECT_EQ (stunParse (buf, b.size (), m), StunParseError::BadAttributeValue);
}

TEST (Stun, RefusesAttributesAfterFingerprint)
{
  uint8_t buf[64];
  StunBuilder b (buf, sizeof (buf), kStunMethodBinding, StunClass::Request, kTxid);
  b.addFingerprint ();
  b.addU32 (stunattr::Priority, 1);
  StunMessage m;
  EXPECT_EQ (stunParse (buf, b.size (), m), StunParseError::MisplacedAttribute);
}

TEST (Stun, IgnoresAttributesAfterIntegrityButFingerprint)
{
  uint8_t buf[128];
  StunBuilder b (buf, sizeof (buf), kStunMethodBinding, StunClass::Request, kTxid);
  b.addString (stunattr::Username, "a:b");
  b.addIntegrity ("pw");
  b.addU32 (stunattr::Priority, 7);     /* after MESSAGE-INTEGRITY: ignored */
  b.addU32 (0x0777, 1);                 /* unknown, but ignored there too */
  b.addFingerprint ();
  StunMessage m;
  ASSERT_EQ (stunParse (buf, b.size (), m), StunParseError::None);
  EXPECT_FALSE (m.priority);
  EXPECT_EQ (m.unknownRequiredCount, 0u);
  EXPECT_TRUE (stunCheckIntegrity (m, "pw"));
  EXPECT_TRUE (stunCheckFingerprint (m));
}

TEST (Stun, ReportsUnknownComprehensionRequiredAttributes)
{
  uint8_t buf[128];
  StunBuilder b (buf, sizeof (buf), kStunMethodBinding, StunClass::Request, kTxid);
  b.addU32 (0x0777, 1);   /* comprehension-required */
  b.addU32 (0xC001, 1);   /* comprehension-optional: not reported */
  StunMessage m;
  ASSERT_EQ (stunParse (buf, b.size (), m), StunParseError::None);
  ASSERT_EQ (m.unknownRequiredCount, 1u);
  EXPECT_EQ (m.unknownRequired[0], 0x0777);
}

TEST (Stun, KeepsTheFirstOfRepeatedAttributes)
{
  uint8_t buf[128];
  StunBuilder b (buf, sizeof (buf), kStunMethodBinding, StunClass::Request, kTxid);
  b.addString (stunattr::Username, "first:x");
  b.addString (stunattr::Username, "second:y");
  b.addU32 (stunattr::Priority, 1);
  b.addU32 (stunattr::Priority, 2);
  StunMessage m;
  ASSERT_EQ (stunParse (buf, b.size (), m), StunParseError::None);
  EXPECT_EQ (*m.username, "first:x");
  EXPECT_EQ (*m.priority, 1u);
}

TEST (Stun, SurvivesRandomMutations)
{
  /* Random byte changes, cuts and lengths: parse and check must refuse or
   * accept without reading outside the datagram (run under ASan to see). */
  fanouttest::Rng rng (42);
  size_t accepted = 0;
  for (int round = 0; round < 20000; round++) {
    const auto &base = round % 2 ? kSampleRequest : kSampleIpv6Response;
    std::vector<uint8_t> m (base.begin (), base.begin () + 20 + rng.below (base.size () - 19));
    int changes = 1 + static_cast<int> (rng.below (6));
    for (int c = 0; c < changes; c++)
      m[rng.below (m.size ())] = rng.byte ();
    if (rng.below (2)) {
      m[2] = static_cast<uint8_t> ((m.size () - 20) >> 8);
      m[3] = static_cast<uint8_t> (m.size () - 20);
    }
    StunMessage msg;
    if (stunParse (m.data (), m.size (), msg) == StunParseError::None) {
      accepted++;
      stunCheckFingerprint (msg);
      stunCheckIntegrity (msg, kRfcPassword);
    }
  }
  SUCCEED () << accepted << " mutated messages parsed";
}

TEST (Stun, SurvivesRandomDatagrams)
{
  fanouttest::Rng rng (7);
  uint8_t d[600];
  for (int round = 0; round < 20000; round++) {
    size_t n = rng.below (sizeof (d));
    std::vector<uint8_t> m (n);
    rng.fill (m.data (), n);
    if (n >= 8 && rng.below (2)) {
      m[0] &= 0x3f;
      m[4] = 0x21, m[5] = 0x12, m[6] = 0xa4, m[7] = 0x42;
    }
    StunMessage msg;
    if (stunParse (m.data (), m.size (), msg) == StunParseError::None)
      stunCheckFingerprint (msg);
  }
  (void) d;
}
