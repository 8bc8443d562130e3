/* DTLS-SRTP sessions (xdn-fanout-dtls.h), server and client wired back to
 * back in the test: every datagram passes through queues the test reads,
 * drops or damages. */
#include <gtest/gtest.h>

#include "dtls-test-util.h"
#include "fanout-test-util.h"
#include "xdn-fanout-dtls.h"

#include <malloc.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdio>
#include <cstring>

using namespace xdn::fanout;
using namespace fanouttest;

namespace {

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

/* Protects @plain with @tx, unprotects it with @rx; true when it comes
 * back the same. */
bool
srtpRoundTrip (SrtpContext &tx, SrtpContext &rx, const std::vector<uint8_t> &plain, bool rtcp)
{
  std::vector<uint8_t> p = plain;
  p.resize (plain.size () + SrtpContext::kMaxTrailer);
  size_t out = 0;
  SrtpStatus s = rtcp ? tx.protectRtcp (p.data (), plain.size (), p.size (), out)
                      : tx.protectRtp (p.data (), plain.size (), p.size (), out);
  if (s != SrtpStatus::Ok)
    return false;
  p.resize (out);
  size_t back = 0;
  s = rtcp ? rx.unprotectRtcp (p.data (), p.size (), back) : rx.unprotectRtp (p.data (), p.size (), back);
  if (s != SrtpStatus::Ok)
    return false;
  p.resize (back);
  return p == plain;
}

size_t
heapInUse ()
{
  struct mallinfo2 mi = mallinfo2 ();
  return mi.uordblks + mi.hblkhd;
}

/* False under a sanitizer's allocator, which malloc's counters miss. */
bool
heapMeasurable ()
{
  size_t before = heapInUse ();
  std::vector<uint8_t> *block = new std::vector<uint8_t> (256 * 1024, 1);
  size_t during = heapInUse ();
  delete block;
  return during >= before + 256 * 1024;
}

DtlsSessionOptions
fastTimers ()
{
  DtlsSessionOptions o;
  o.initialRetransmit = std::chrono::milliseconds (20);
  return o;
}

}  // namespace

/* ---- fingerprints and certificates ---- */

TEST (DtlsFingerprint, ParsesSdpTextAndPrintsItBack)
{
  std::string text = "sha-256 " + std::string ("4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:"
                                               "19:E5:7C:AB:3E:4B:65:C4:4E:58:6F:AE:1F:3B:9B:7B");
  auto fp = DtlsFingerprint::parse (text);
  ASSERT_TRUE (fp);
  EXPECT_EQ (fp->algorithm, "sha-256");
  ASSERT_EQ (fp->digest.size (), 32u);
  EXPECT_EQ (fp->digest[0], 0x4A);
  EXPECT_EQ (fp->digest[31], 0x7B);
  EXPECT_EQ (fp->toString (), text);

  /* hash name and hex in any case, extra blanks */
  std::string lower = text;
  for (char &c : lower)
    c = static_cast<char> (std::tolower (static_cast<unsigned char> (c)));
  auto fp2 = DtlsFingerprint::parse ("  SHA-256   " + lower.substr (8) + "\r\n");
  ASSERT_TRUE (fp2);
  EXPECT_EQ (*fp2, *fp);

  auto sha1 = DtlsFingerprint::parse ("sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33");
  ASSERT_TRUE (sha1);
  EXPECT_EQ (sha1->digest.size (), 20u);
}

TEST (DtlsFingerprint, RefusesMalformedText)
{
  const char *bad[] = {
    "",
    "sha-256",
    "sha-256 ",
    "md5 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF",
    /* one byte short, one byte long */
    "sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22",
    "sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44",
    /* not hex, wrong separator, single digits */
    "sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:3G",
    "sha-1 00-11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33",
    "sha-1 0:011:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33",
    "sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:",
  };
  for (const char *text : bad)
    EXPECT_FALSE (DtlsFingerprint::parse (text)) << text;
}

TEST (DtlsCertificate, IsAnEcdsaP256SelfSignedCertificate)
{
  std::string error;
  auto cert = DtlsCertificate::generate (&error);
  ASSERT_TRUE (cert) << error;
  EVP_PKEY *pub = X509_get0_pubkey (cert->x509 ());
  ASSERT_NE (pub, nullptr);
  EXPECT_EQ (EVP_PKEY_get_base_id (pub), EVP_PKEY_EC);
  char group[64] = {};
  size_t len = 0;
  ASSERT_EQ (EVP_PKEY_get_group_name (pub, group, sizeof (group), &len), 1);
  EXPECT_STREQ (group, "prime256v1");
  /* self-signed: verifies with its own key */
  EXPECT_EQ (X509_verify (cert->x509 (), pub), 1);
  EXPECT_EQ (X509_get_signature_nid (cert->x509 ()), NID_ecdsa_with_SHA256);
  /* valid now */
  EXPECT_LT (X509_cmp_current_time (X509_get0_notBefore (cert->x509 ())), 0);
  EXPECT_GT (X509_cmp_current_time (X509_get0_notAfter (cert->x509 ())), 0);

  /* the fingerprint is the SHA-256 of the DER certificate */
  unsigned char *der = nullptr;
  int derLen = i2d_X509 (cert->x509 (), &der);
  ASSERT_GT (derLen, 0);
  unsigned char digest[32];
  unsigned int dlen = 0;
  EVP_Digest (der, static_cast<size_t> (derLen), digest, &dlen, EVP_sha256 (), nullptr);
  OPENSSL_free (der);
  EXPECT_EQ (cert->fingerprint ().algorithm, "sha-256");
  EXPECT_EQ (cert->fingerprint ().digest, std::vector<uint8_t> (digest, digest + 32));
  EXPECT_EQ (DtlsFingerprint::parse (cert->fingerprint ().toString ()), cert->fingerprint ());

  /* two certificates differ */
  auto other = DtlsCertificate::generate ();
  ASSERT_TRUE (other);
  EXPECT_NE (other->fingerprint (), cert->fingerprint ());
}

TEST (DtlsCertificate, ProcessCertificateIsMadeOnce)
{
  auto a = DtlsCertificate::processCertificate ();
  auto b = DtlsCertificate::processCertificate ();
  ASSERT_TRUE (a);
  EXPECT_EQ (a.get (), b.get ());
}

TEST (DtlsCertificate, PemRoundTripKeepsTheFingerprint)
{
  auto cert = serverCertificate ();
  std::string pem = cert->pem ();
  EXPECT_NE (pem.find ("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_NE (pem.find ("PRIVATE KEY"), std::string::npos);
  std::string error;
  auto back = DtlsCertificate::fromPem (pem, &error);
  ASSERT_TRUE (back) << error;
  EXPECT_EQ (back->fingerprint (), cert->fingerprint ());

  EXPECT_FALSE (DtlsCertificate::fromPem ("not pem", &error));
  EXPECT_FALSE (error.empty ());
  /* a key that is not the certificate's */
  std::string mixed = pem.substr (0, pem.find ("-----BEGIN PRIVATE KEY"))
      + clientCertificate ()->pem ().substr (clientCertificate ()->pem ().find ("-----BEGIN PRIVATE KEY"));
  EXPECT_FALSE (DtlsCertificate::fromPem (mixed, &error));
  EXPECT_NE (error.find ("not the certificate's"), std::string::npos) << error;
}

TEST (DtlsContext, RefusesNoCertificateAndNoProfile)
{
  std::string error;
  EXPECT_FALSE (DtlsContext::create (nullptr, kDtlsDefaultSrtpProfiles, &error));
  EXPECT_FALSE (DtlsContext::create (serverCertificate (), {}, &error));
  EXPECT_FALSE (DtlsContext::create (serverCertificate (), {static_cast<SrtpProfile> (8)}, &error));
  EXPECT_TRUE (DtlsContext::create (serverCertificate (), kDtlsDefaultSrtpProfiles, &error)) << error;
}

/* ---- handshakes and keys ---- */

class DtlsProfiles : public ::testing::TestWithParam<SrtpProfile> {};

TEST_P (DtlsProfiles, HandshakeGivesBothSidesTheSameSrtpKeys)
{
  auto serverCtx = contextFor (serverCertificate (), {GetParam ()});
  auto clientCtx = contextFor (clientCertificate (), {GetParam ()});
  ASSERT_TRUE (serverCtx && clientCtx);
  DtlsPair pair (serverCtx, clientCtx);
  EXPECT_EQ (pair.server->state (), DtlsState::New);
  ASSERT_TRUE (pair.handshake ()) << pair.server->error () << " / " << pair.client->error ();

  const auto &sk = pair.server->srtpKeys ();
  const auto &ck = pair.client->srtpKeys ();
  ASSERT_TRUE (sk && ck);
  EXPECT_EQ (sk->profile, GetParam ());
  EXPECT_EQ (ck->profile, GetParam ());
  EXPECT_EQ (sk->role, DtlsRole::Server);
  EXPECT_EQ (ck->role, DtlsRole::Client);
  /* the same material on both sides, split the same way */
  EXPECT_EQ (sk->client.key, ck->client.key);
  EXPECT_EQ (sk->client.salt, ck->client.salt);
  EXPECT_EQ (sk->server.key, ck->server.key);
  EXPECT_EQ (sk->server.salt, ck->server.salt);
  EXPECT_NE (sk->client.key, sk->server.key);
  /* one side's write key is the other's read key */
  EXPECT_EQ (ck->local ().key, sk->remote ().key);
  EXPECT_EQ (sk->local ().key, ck->remote ().key);
  EXPECT_EQ (ck->local ().key, ck->client.key);
  EXPECT_EQ (sk->local ().key, sk->server.key);
  /* a GCM salt is 12 bytes: the last two stay zero */
  const SrtpProfileParams *params = srtpProfileParams (GetParam ());
  if (params->masterSaltLength == 12) {
    EXPECT_EQ (sk->client.salt[12], 0);
    EXPECT_EQ (sk->client.salt[13], 0);
    EXPECT_EQ (sk->server.salt[12] | sk->server.salt[13], 0);
  }

  /* each side knows the other by its fingerprint */
  EXPECT_EQ (pair.server->remoteFingerprint (), clientCertificate ()->fingerprint ());
  EXPECT_EQ (pair.client->remoteFingerprint (), serverCertificate ()->fingerprint ());
  EXPECT_FALSE (pair.server->nextTimeout ());
  EXPECT_FALSE (pair.client->nextTimeout ());
}

TEST_P (DtlsProfiles, SrtpRoundTripsWithTheExportedKeys)
{
  auto serverCtx = contextFor (serverCertificate (), {GetParam ()});
  auto clientCtx = contextFor (clientCertificate (), {GetParam ()});
  DtlsPair pair (serverCtx, clientCtx);
  ASSERT_TRUE (pair.handshake ());

  /* the edge sends media and reads the viewer's RTCP; the viewer the
   * other way round */
  SrtpContext edgeOut, edgeIn, viewerOut, viewerIn;
  ASSERT_TRUE (pair.server->srtpKeys ()->initOutbound (edgeOut));
  ASSERT_TRUE (pair.server->srtpKeys ()->initInbound (edgeIn));
  ASSERT_TRUE (pair.client->srtpKeys ()->initOutbound (viewerOut));
  ASSERT_TRUE (pair.client->srtpKeys ()->initInbound (viewerIn));
  for (uint16_t seq = 0; seq < 50; seq++) {
    auto rtp = rtpPacket (static_cast<uint16_t> (65500 + seq), 9000u * seq, 0x11223344, 1100);
    EXPECT_TRUE (srtpRoundTrip (edgeOut, viewerIn, rtp, false)) << seq;
  }
  EXPECT_TRUE (srtpRoundTrip (edgeOut, viewerIn, rtcpPacket (0x11223344, 4), true));
  EXPECT_TRUE (srtpRoundTrip (viewerOut, edgeIn, rtcpPacket (0x55667788, 2), true));
  EXPECT_TRUE (srtpRoundTrip (viewerOut, edgeIn, rtpPacket (1, 160, 0x55667788, 160), false));

  /* and not with the wrong direction's key */
  SrtpContext wrong;
  ASSERT_TRUE (pair.server->srtpKeys ()->initOutbound (wrong));
  EXPECT_FALSE (srtpRoundTrip (viewerOut, wrong, rtpPacket (2, 320, 0x55667788, 160), false));
}

INSTANTIATE_TEST_SUITE_P (AllProfiles, DtlsProfiles,
    ::testing::Values (SrtpProfile::AesCm128HmacSha1_80, SrtpProfile::AesCm128HmacSha1_32,
        SrtpProfile::AeadAes128Gcm),
    profileName);

TEST (DtlsSession, ServerPicksItsFirstProfileAmongTheClientsOffer)
{
  auto serverCtx = contextFor (serverCertificate ());  /* 80, 32, GCM */
  struct Case {
    std::vector<SrtpProfile> offer;
    SrtpProfile expected;
  } cases[] = {
    {{SrtpProfile::AeadAes128Gcm, SrtpProfile::AesCm128HmacSha1_80}, SrtpProfile::AesCm128HmacSha1_80},
    {{SrtpProfile::AeadAes128Gcm, SrtpProfile::AesCm128HmacSha1_32}, SrtpProfile::AesCm128HmacSha1_32},
    {{SrtpProfile::AeadAes128Gcm}, SrtpProfile::AeadAes128Gcm},
    {kDtlsDefaultSrtpProfiles, SrtpProfile::AesCm128HmacSha1_80},
  };
  for (const Case &c : cases) {
    DtlsPair pair (serverCtx, contextFor (clientCertificate (), c.offer));
    ASSERT_TRUE (pair.handshake ()) << pair.server->error ();
    EXPECT_EQ (pair.server->srtpKeys ()->profile, c.expected);
    EXPECT_EQ (pair.client->srtpKeys ()->profile, c.expected);
  }
}

TEST (DtlsSession, NoCommonSrtpProfileFailsBothSides)
{
  DtlsPair pair (contextFor (serverCertificate (), {SrtpProfile::AesCm128HmacSha1_80}),
      contextFor (clientCertificate (), {SrtpProfile::AeadAes128Gcm}));
  EXPECT_FALSE (pair.handshake ());
  EXPECT_EQ (pair.server->state (), DtlsState::Failed);
  EXPECT_EQ (pair.client->state (), DtlsState::Failed);
  EXPECT_NE (pair.client->error ().find ("SRTP profile"), std::string::npos)
      << pair.client->error ();
  EXPECT_FALSE (pair.server->srtpKeys ());
  EXPECT_FALSE (pair.client->srtpKeys ());
}

TEST (DtlsSession, EveryHandshakeHasItsOwnKeys)
{
  auto serverCtx = contextFor (serverCertificate ());
  auto clientCtx = contextFor (clientCertificate ());
  DtlsPair a (serverCtx, clientCtx), b (serverCtx, clientCtx);
  ASSERT_TRUE (a.handshake () && b.handshake ());
  EXPECT_NE (a.server->srtpKeys ()->client.key, b.server->srtpKeys ()->client.key);
  EXPECT_NE (a.server->srtpKeys ()->server.salt, b.server->srtpKeys ()->server.salt);
}

TEST (DtlsSession, ServerRefusesAClientWhoseCertificateIsNotTheSdpFingerprint)
{
  auto serverCtx = contextFor (serverCertificate ());
  auto clientCtx = contextFor (clientCertificate ());
  auto other = DtlsCertificate::generate ();
  Queue toServer, toClient;
  /* the server expects someone else's certificate */
  DtlsSession server (serverCtx, DtlsRole::Server, other->fingerprint (),
      [&] (const uint8_t *d, size_t n) { toClient.emplace_back (d, d + n); });
  DtlsSession client (clientCtx, DtlsRole::Client, serverCertificate ()->fingerprint (),
      [&] (const uint8_t *d, size_t n) { toServer.emplace_back (d, d + n); });
  client.start ();
  for (int round = 0; round < 10 && (!toServer.empty () || !toClient.empty ()); round++) {
    Queue s, c;
    s.swap (toServer);
    for (auto &d : s)
      server.feed (d.data (), d.size ());
    c.swap (toClient);
    for (auto &d : c)
      client.feed (d.data (), d.size ());
  }
  EXPECT_EQ (server.state (), DtlsState::Failed);
  EXPECT_NE (server.error ().find ("does not match the SDP's " + other->fingerprint ().toString ()),
      std::string::npos) << server.error ();
  EXPECT_NE (server.error ().find (clientCertificate ()->fingerprint ().toString ()),
      std::string::npos) << server.error ();
  EXPECT_FALSE (server.srtpKeys ());
  /* the server's alert fails the client too */
  EXPECT_EQ (client.state (), DtlsState::Failed);
  EXPECT_FALSE (client.srtpKeys ());
  EXPECT_FALSE (client.error ().empty ());
}

TEST (DtlsSession, ClientRefusesAServerWhoseCertificateIsNotTheSdpFingerprint)
{
  auto serverCtx = contextFor (serverCertificate ());
  auto clientCtx = contextFor (clientCertificate ());
  auto other = DtlsCertificate::generate ();
  Queue toServer, toClient;
  DtlsSession server (serverCtx, DtlsRole::Server, clientCertificate ()->fingerprint (),
      [&] (const uint8_t *d, size_t n) { toClient.emplace_back (d, d + n); });
  DtlsSession client (clientCtx, DtlsRole::Client, other->fingerprint (),
      [&] (const uint8_t *d, size_t n) { toServer.emplace_back (d, d + n); });
  client.start ();
  for (int round = 0; round < 10 && (!toServer.empty () || !toClient.empty ()); round++) {
    Queue s, c;
    s.swap (toServer);
    for (auto &d : s)
      server.feed (d.data (), d.size ());
    c.swap (toClient);
    for (auto &d : c)
      client.feed (d.data (), d.size ());
  }
  EXPECT_EQ (client.state (), DtlsState::Failed);
  EXPECT_NE (client.error ().find ("peer certificate fingerprint"), std::string::npos)
      << client.error ();
  EXPECT_FALSE (client.srtpKeys ());
  EXPECT_NE (server.state (), DtlsState::Connected);
}

TEST (DtlsSession, RefusesAFingerprintThatIsNoDigest)
{
  DtlsFingerprint bad {"sha-256", {1, 2, 3}};
  DtlsSession s (contextFor (serverCertificate ()), DtlsRole::Server, bad, nullptr);
  EXPECT_EQ (s.state (), DtlsState::Failed);
  EXPECT_FALSE (s.error ().empty ());
}

TEST (DtlsSession, RecordsOfAFlightArePackedUpToTheMtu)
{
  auto serverCtx = contextFor (serverCertificate ());
  auto clientCtx = contextFor (clientCertificate ());
  DtlsPair pair (serverCtx, clientCtx);
  pair.server->start ();
  pair.client->start ();
  ASSERT_EQ (pair.toServer.size (), 1u);  /* ClientHello */
  Queue hello = pair.toServer;
  pair.pump (1);
  /* the server's first flight (ServerHello, Certificate, ServerKeyExchange,
   * CertificateRequest, ServerHelloDone: five records) fits one datagram */
  EXPECT_EQ (pair.server->stats ().datagramsOut, 1u);
  pair.pump ();
  ASSERT_EQ (pair.client->state (), DtlsState::Connected);
  EXPECT_LE (pair.server->stats ().datagramsOut, 2u);
  EXPECT_LE (pair.client->stats ().datagramsOut, 2u);

  /* with a small MTU the flight is split, no datagram over it */
  DtlsSessionOptions small;
  small.mtu = 300;
  DtlsPair tiny (serverCtx, clientCtx, small);
  size_t largest = 0;
  tiny.server->start ();
  tiny.client->start ();
  for (int round = 0; round < 20 && (!tiny.toServer.empty () || !tiny.toClient.empty ()); round++) {
    for (auto &d : tiny.toServer)
      largest = std::max (largest, d.size ());
    for (auto &d : tiny.toClient)
      largest = std::max (largest, d.size ());
    tiny.pump (1);
  }
  EXPECT_EQ (tiny.server->state (), DtlsState::Connected) << tiny.server->error ();
  EXPECT_LE (largest, 300u);
  EXPECT_GT (tiny.server->stats ().datagramsOut, 2u);
}

/* ---- retransmission, timeouts, close ---- */

TEST (DtlsSession, LostFinalFlightIsSentAgainWhenTheClientRepeatsItsOwn)
{
  DtlsPair pair (contextFor (serverCertificate ()), contextFor (clientCertificate ()), fastTimers ());
  pair.server->start ();
  pair.client->start ();
  pair.pump (1);      /* ClientHello -> server flight -> client */
  ASSERT_FALSE (pair.toServer.empty ());
  Queue flight2 = pair.toServer;
  pair.toServer.clear ();
  for (auto &d : flight2)
    pair.server->feed (d.data (), d.size ());
  ASSERT_EQ (pair.server->state (), DtlsState::Connected);
  /* the server's ChangeCipherSpec and Finished are lost */
  ASSERT_FALSE (pair.toClient.empty ());
  pair.toClient.clear ();
  ASSERT_EQ (pair.client->state (), DtlsState::Handshaking);

  /* the client's timer sends its flight again; the server answers it */
  auto next = pair.client->nextTimeout ();
  ASSERT_TRUE (next);
  runTimers (*pair.client, [&] { return !pair.toServer.empty (); }, std::chrono::seconds (2));
  ASSERT_FALSE (pair.toServer.empty ());
  EXPECT_EQ (pair.client->stats ().retransmits, 1u);
  pair.pump ();
  EXPECT_EQ (pair.client->state (), DtlsState::Connected) << pair.client->error ();
  EXPECT_EQ (pair.server->srtpKeys ()->client.key, pair.client->srtpKeys ()->client.key);
}

TEST (DtlsSession, LostClientHelloIsSentAgainOnTheTimer)
{
  DtlsPair pair (contextFor (serverCertificate ()), contextFor (clientCertificate ()), fastTimers ());
  pair.server->start ();
  pair.client->start ();
  ASSERT_EQ (pair.toServer.size (), 1u);
  pair.toServer.clear ();
  runTimers (*pair.client, [&] { return !pair.toServer.empty (); }, std::chrono::seconds (2));
  ASSERT_EQ (pair.toServer.size (), 1u);
  pair.pump ();
  EXPECT_EQ (pair.client->state (), DtlsState::Connected);
  EXPECT_EQ (pair.server->state (), DtlsState::Connected);
}

TEST (DtlsSession, UnansweredClientGivesUpAfterItsRetransmissions)
{
  DtlsSessionOptions o = fastTimers ();
  o.maxRetransmits = 3;
  Queue sent;
  DtlsSession client (contextFor (clientCertificate ()), DtlsRole::Client,
      serverCertificate ()->fingerprint (),
      [&] (const uint8_t *d, size_t n) { sent.emplace_back (d, d + n); }, o);
  auto begin = std::chrono::steady_clock::now ();
  client.start ();
  runTimers (client, [&] { return client.state () != DtlsState::Handshaking; },
      std::chrono::seconds (5));
  EXPECT_EQ (client.state (), DtlsState::Failed);
  EXPECT_NE (client.error ().find ("after 3 retransmissions"), std::string::npos) << client.error ();
  /* the ClientHello, then three more: 20 + 40 + 80 ms, failing at +160 */
  EXPECT_EQ (sent.size (), 4u);
  EXPECT_EQ (client.stats ().retransmits, 3u);
  /* the same ClientHello each time, under a new record sequence number
   * (bytes 5-10 of the record header) */
  for (auto &d : sent) {
    ASSERT_EQ (d.size (), sent[0].size ());
    EXPECT_TRUE (std::equal (d.begin () + 11, d.end (), sent[0].begin () + 11));
  }
  auto took = std::chrono::steady_clock::now () - begin;
  EXPECT_LT (took, std::chrono::seconds (2));
  EXPECT_GE (took, std::chrono::milliseconds (250));
  EXPECT_FALSE (client.nextTimeout ());
}

TEST (DtlsSession, HandshakeGivesUpAtItsTimeLimit)
{
  DtlsSessionOptions o = fastTimers ();
  o.maxRetransmits = 1000;
  o.handshakeTimeout = std::chrono::milliseconds (300);
  Queue sent;
  DtlsSession client (contextFor (clientCertificate ()), DtlsRole::Client,
      serverCertificate ()->fingerprint (),
      [&] (const uint8_t *d, size_t n) { sent.emplace_back (d, d + n); }, o);
  auto begin = std::chrono::steady_clock::now ();
  client.start ();
  runTimers (client, [&] { return client.state () != DtlsState::Handshaking; },
      std::chrono::seconds (5));
  auto took = std::chrono::steady_clock::now () - begin;
  EXPECT_EQ (client.state (), DtlsState::Failed);
  EXPECT_NE (client.error ().find ("within 300 ms"), std::string::npos) << client.error ();
  EXPECT_GE (took, std::chrono::milliseconds (300));
  EXPECT_LT (took, std::chrono::seconds (2));
  /* 20, 40, 80, 160 ms: at most four retransmissions fit */
  EXPECT_LE (sent.size (), 5u);
  EXPECT_GE (sent.size (), 3u);
}

TEST (DtlsSession, ServerWithoutAClientHelloTimesOut)
{
  DtlsSessionOptions o;
  o.handshakeTimeout = std::chrono::milliseconds (100);
  DtlsSession server (contextFor (serverCertificate ()), DtlsRole::Server,
      clientCertificate ()->fingerprint (), nullptr, o);
  EXPECT_FALSE (server.nextTimeout ());
  server.start ();
  auto next = server.nextTimeout ();
  ASSERT_TRUE (next);
  EXPECT_LE (*next, std::chrono::steady_clock::now () + std::chrono::milliseconds (100));
  EXPECT_EQ (server.onTimeout (), DtlsState::Handshaking);  /* early: nothing */
  runTimers (server, [&] { return server.state () != DtlsState::Handshaking; },
      std::chrono::seconds (2));
  EXPECT_EQ (server.state (), DtlsState::Failed);
  EXPECT_EQ (server.stats ().datagramsOut, 0u);
}

TEST (DtlsSession, ServerFlightIsRetransmittedUntilTheClientAnswers)
{
  DtlsSessionOptions o = fastTimers ();
  o.maxRetransmits = 2;
  DtlsPair pair (contextFor (serverCertificate ()), contextFor (clientCertificate ()), o);
  pair.server->start ();
  pair.client->start ();
  for (auto &d : pair.toServer)
    pair.server->feed (d.data (), d.size ());
  pair.toServer.clear ();
  ASSERT_EQ (pair.toClient.size (), 1u);
  Datagram flight = pair.toClient[0];
  runTimers (*pair.server, [&] { return pair.server->state () != DtlsState::Handshaking; },
      std::chrono::seconds (2));
  EXPECT_EQ (pair.server->state (), DtlsState::Failed);
  EXPECT_EQ (pair.toClient.size (), 3u);
  for (auto &d : pair.toClient)
    EXPECT_EQ (d.size (), flight.size ());
}

TEST (DtlsSession, CloseNotifyClosesThePeer)
{
  DtlsPair pair (contextFor (serverCertificate ()), contextFor (clientCertificate ()));
  ASSERT_TRUE (pair.handshake ());
  pair.client->close ();
  EXPECT_EQ (pair.client->state (), DtlsState::Closed);
  ASSERT_EQ (pair.toServer.size (), 1u);
  EXPECT_EQ (pair.toServer[0][0], 21);  /* an alert record */
  pair.pump ();
  EXPECT_EQ (pair.server->state (), DtlsState::Closed);
  /* keys stay readable; nothing more is read or sent */
  EXPECT_TRUE (pair.server->srtpKeys ());
  uint8_t junk[40] = {23, 0xfe, 0xfd};
  EXPECT_EQ (pair.server->feed (junk, sizeof (junk)), DtlsState::Closed);
  EXPECT_EQ (pair.server->stats ().dropped, 1u);
  pair.server->close ();
  EXPECT_TRUE (pair.toClient.empty ());

  /* and the other way round */
  DtlsPair other (contextFor (serverCertificate ()), contextFor (clientCertificate ()));
  ASSERT_TRUE (other.handshake ());
  other.server->close ();
  ASSERT_EQ (other.toClient.size (), 1u);
  other.pump ();
  EXPECT_EQ (other.client->state (), DtlsState::Closed);
}

/* ---- hostile input ---- */

TEST (DtlsSession, GarbageDatagramsAreDroppedAndTheHandshakeStillWorks)
{
  auto serverCtx = contextFor (serverCertificate ());
  auto clientCtx = contextFor (clientCertificate ());
  DtlsPair pair (serverCtx, clientCtx);
  pair.server->start ();
  Rng rng (99);
  std::vector<uint8_t> d (1500);
  for (int i = 0; i < 20000; i++) {
    size_t n = rng.below (1500) + 1;
    rng.fill (d.data (), n);
    /* DTLS first bytes (RFC 7983), handshake content type, DTLS 1.2 */
    if (i % 2 == 0) {
      d[0] = static_cast<uint8_t> (20 + rng.below (44));
      if (n > 3 && i % 4 == 0) {
        d[0] = 22;
        d[1] = 0xfe;
        d[2] = 0xfd;
      }
    }
    /* not an alert: a plain-text fatal alert in epoch 0 ends any DTLS
     * handshake, as the protocol says */
    if (d[0] == 21)
      d[0] = 22;
    pair.server->feed (d.data (), n);
    ASSERT_NE (pair.server->state (), DtlsState::Connected);
  }
  EXPECT_EQ (pair.server->state (), DtlsState::Handshaking) << pair.server->error ();
  EXPECT_EQ (pair.server->stats ().datagramsOut, 0u);
  pair.toClient.clear ();
  pair.client->start ();
  pair.pump ();
  EXPECT_EQ (pair.server->state (), DtlsState::Connected) << pair.server->error ();
  EXPECT_EQ (pair.client->state (), DtlsState::Connected) << pair.client->error ();

  /* garbage after the handshake changes nothing either */
  for (int i = 0; i < 5000; i++) {
    size_t n = rng.below (300) + 1;
    rng.fill (d.data (), n);
    d[0] = static_cast<uint8_t> (i % 2 ? 23 : 22);
    pair.server->feed (d.data (), n);
  }
  EXPECT_EQ (pair.server->state (), DtlsState::Connected);
  EXPECT_EQ (pair.server->stats ().applicationData, 0u);
}

TEST (DtlsSession, TruncatedRecordsAreDropped)
{
  DtlsPair pair (contextFor (serverCertificate ()), contextFor (clientCertificate ()));
  pair.server->start ();
  pair.client->start ();
  /* every truncation of the ClientHello, then the whole one */
  ASSERT_EQ (pair.toServer.size (), 1u);
  Datagram hello = pair.toServer[0];
  for (size_t n = 1; n < hello.size (); n++)
    pair.server->feed (hello.data (), n);
  EXPECT_EQ (pair.server->stats ().datagramsOut, 0u);
  pair.pump (1);
  ASSERT_EQ (pair.client->state (), DtlsState::Handshaking);
  /* every truncation of the client's second flight, then the flight */
  Queue flight = pair.toServer;
  pair.toServer.clear ();
  for (auto &d : flight)
    for (size_t n = 1; n < d.size (); n++)
      pair.server->feed (d.data (), n);
  ASSERT_NE (pair.server->state (), DtlsState::Failed) << pair.server->error ();
  pair.toServer = flight;
  pair.pump ();
  EXPECT_EQ (pair.server->state (), DtlsState::Connected) << pair.server->error ();
  EXPECT_EQ (pair.client->state (), DtlsState::Connected) << pair.client->error ();
  /* a datagram larger than any record is not read */
  std::vector<uint8_t> huge (DtlsSession::kMaxDatagram + 1, 22);
  uint64_t dropped = pair.server->stats ().dropped;
  pair.server->feed (huge.data (), huge.size ());
  EXPECT_EQ (pair.server->stats ().dropped, dropped + 1);
  EXPECT_EQ (pair.server->state (), DtlsState::Connected);
}

TEST (DtlsSession, ClientHelloFloodKeepsTheServerBounded)
{
  auto serverCtx = contextFor (serverCertificate ());
  auto clientCtx = contextFor (clientCertificate ());
  DtlsPair pair (serverCtx, clientCtx);
  pair.server->start ();
  pair.client->start ();
  Datagram hello = pair.toServer[0];

  /* ClientHellos of other clients (other randoms, other keys) */
  Queue others;
  for (int i = 0; i < 200; i++) {
    DtlsSession c (clientCtx, DtlsRole::Client, serverCertificate ()->fingerprint (),
        [&] (const uint8_t *d, size_t n) { others.emplace_back (d, d + n); });
    c.start ();
  }
  ASSERT_EQ (others.size (), 200u);

  pair.server->feed (hello.data (), hello.size ());
  EXPECT_EQ (pair.server->stats ().datagramsOut, 1u);
  const bool measurable = heapMeasurable ();
  size_t before = heapInUse ();
  for (int i = 0; i < 10000; i++) {
    const Datagram &d = i % 2 ? hello : others[i % others.size ()];
    pair.server->feed (d.data (), d.size ());
  }
  size_t after = heapInUse ();
  /* a repeated or foreign ClientHello is not answered: no amplification */
  EXPECT_EQ (pair.server->stats ().datagramsOut, 1u);
  EXPECT_EQ (pair.server->state (), DtlsState::Handshaking) << pair.server->error ();
  if (measurable) {
    EXPECT_LT (after, before + 16 * 1024) << "heap grew by " << (after - before);
  }

  /* the real client still gets through */
  pair.pump ();
  EXPECT_EQ (pair.server->state (), DtlsState::Connected) << pair.server->error ();
  EXPECT_EQ (pair.client->state (), DtlsState::Connected) << pair.client->error ();
}

TEST (DtlsSession, ReplayedFinishedCannotMakeTheServerAReflector)
{
  DtlsPair pair (contextFor (serverCertificate ()), contextFor (clientCertificate ()));
  pair.server->start ();
  pair.client->start ();
  pair.pump (1);
  Queue flight2 = pair.toServer;
  pair.pump ();
  ASSERT_EQ (pair.server->state (), DtlsState::Connected);
  uint64_t sent = pair.server->stats ().datagramsOut;
  /* someone replays the client's last flight over and over */
  for (int i = 0; i < 200; i++)
    for (auto &d : flight2)
      pair.server->feed (d.data (), d.size ());
  EXPECT_LE (pair.server->stats ().datagramsOut, sent + DtlsSession::kMaxPostHandshakeDatagrams);
  EXPECT_EQ (pair.server->state (), DtlsState::Connected);
}

/* ---- memory ---- */

TEST (DtlsSession, ReleasedSessionKeepsItsKeysAndReadsNothing)
{
  DtlsPair pair (contextFor (serverCertificate ()), contextFor (clientCertificate ()));
  EXPECT_FALSE (pair.server->releaseHandshakeState ());  /* not connected yet */
  ASSERT_TRUE (pair.handshake ());
  DtlsSrtpKeys keys = *pair.server->srtpKeys ();
  ASSERT_TRUE (pair.server->releaseHandshakeState ());
  EXPECT_TRUE (pair.server->released ());
  EXPECT_FALSE (pair.server->releaseHandshakeState ());
  EXPECT_EQ (pair.server->state (), DtlsState::Connected);
  ASSERT_TRUE (pair.server->srtpKeys ());
  EXPECT_EQ (pair.server->srtpKeys ()->server.key, keys.server.key);
  SrtpContext edgeOut, viewerIn;
  ASSERT_TRUE (pair.server->srtpKeys ()->initOutbound (edgeOut));
  ASSERT_TRUE (pair.client->srtpKeys ()->initInbound (viewerIn));
  EXPECT_TRUE (srtpRoundTrip (edgeOut, viewerIn, rtpPacket (7, 0, 0xabcdef01, 900), false));

  /* the client's close_notify is not read; close sends nothing */
  pair.client->close ();
  ASSERT_EQ (pair.toServer.size (), 1u);
  pair.pump ();
  EXPECT_EQ (pair.server->state (), DtlsState::Connected);
  EXPECT_EQ (pair.server->stats ().dropped, 1u);
  pair.server->close ();
  EXPECT_EQ (pair.server->state (), DtlsState::Closed);
  EXPECT_TRUE (pair.toClient.empty ());
}

/* The figure docs/fanout.md gives: heap in use (malloc's count, its own
 * overhead included) per connected session with no traffic, over 1,000
 * sessions driven from this one thread. */
TEST (DtlsSession, IdleConnectedSessionIsSmall)
{
  if (!heapMeasurable ())
    GTEST_SKIP () << "malloc's counters do not see this allocator";
  constexpr int kSessions = 1000;
  auto serverCtx = contextFor (serverCertificate ());
  auto clientCtx = contextFor (clientCertificate ());
  {
    /* first-use allocations of OpenSSL (tables, caches) out of the count */
    DtlsPair warm (serverCtx, clientCtx);
    ASSERT_TRUE (warm.handshake ());
  }
  std::vector<std::unique_ptr<DtlsPair>> pairs;
  pairs.reserve (kSessions);
  size_t base = heapInUse ();
  for (int i = 0; i < kSessions; i++) {
    pairs.push_back (std::make_unique<DtlsPair> (serverCtx, clientCtx));
    ASSERT_TRUE (pairs.back ()->handshake ()) << i;
    Queue ().swap (pairs.back ()->toServer);
    Queue ().swap (pairs.back ()->toClient);
  }
  size_t withBoth = heapInUse ();
  for (auto &p : pairs)
    p->client.reset ();
  size_t serversOnly = heapInUse ();
  for (auto &p : pairs)
    ASSERT_TRUE (p->server->releaseHandshakeState ());
  size_t released = heapInUse ();
  /* the pair's own bytes (two empty queues and pointers) are not DTLS */
  const size_t pairOverhead = sizeof (DtlsPair);
  size_t server = (serversOnly - base) / kSessions - pairOverhead;
  size_t client = (withBoth - serversOnly) / kSessions;
  size_t serverReleased = (released - base) / kSessions - pairOverhead;
  printf ("[ dtls     ] heap per idle connected session over %d: server %zu bytes, "
          "client %zu, server after releaseHandshakeState %zu\n",
      kSessions, server, client, serverReleased);
  RecordProperty ("server_bytes_per_session", static_cast<int> (server));
  RecordProperty ("client_bytes_per_session", static_cast<int> (client));
  RecordProperty ("released_bytes_per_session", static_cast<int> (serverReleased));
  /* OpenSSL's SSL object, its 21 KB handshake buffer, record keys, the
   * peer's certificate; no record buffers (SSL_free_buffers) */
  EXPECT_LT (server, 48u * 1024);
  EXPECT_LT (client, 48u * 1024);
  EXPECT_LT (serverReleased, 1024u);
}
