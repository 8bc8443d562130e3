#include <gtest/gtest.h>

#include "fanout-test-util.h"
#include "xdn-fanout-ice-lite.h"
#include "xdn-fanout-stun.h"

#include <map>
#include <memory>

using namespace xdn::fanout;
using fanouttest::hex;

namespace {

const std::array<uint8_t, 12> kTxid = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

/* The server side: two viewers with their own credentials. */
class Viewers {
public:
  Viewers ()
  {
    add ("srvA", "passwordOfViewerA123456");
    add ("srvB", "passwordOfViewerB654321");
  }
  void add (const std::string &ufrag, const std::string &pwd)
  {
    creds_[ufrag] = std::make_unique<IceLiteCredentials> (ufrag, pwd);
  }
  IceLiteLookup lookup ()
  {
    return [this] (std::string_view u) -> const IceLiteCredentials * {
      auto it = creds_.find (std::string (u));
      return it == creds_.end () ? nullptr : it->second.get ();
    };
  }

private:
  std::map<std::string, std::unique_ptr<IceLiteCredentials>> creds_;
};

struct Request {
  std::string username = "srvA:cli1";
  std::string password = "passwordOfViewerA123456";
  bool priority = true;
  bool controlling = true;
  bool controlled = false;
  bool useCandidate = true;
  bool integrity = true;
  bool fingerprint = true;
  uint16_t unknownAttribute = 0;
  StunClass cls = StunClass::Request;
  uint16_t method = kStunMethodBinding;
};

/* A Binding request as a browser sends one. */
std::vector<uint8_t>
build (const Request &r)
{
  uint8_t buf[512];
  StunBuilder b (buf, sizeof (buf), r.method, r.cls, kTxid);
  if (!r.username.empty ())
    b.addString (stunattr::Username, r.username);
  if (r.unknownAttribute)
    b.addU32 (r.unknownAttribute, 0);
  if (r.controlling)
    b.addU64 (stunattr::IceControlling, 0x1122334455667788ull);
  if (r.controlled)
    b.addU64 (stunattr::IceControlled, 0x1122334455667788ull);
  if (r.useCandidate)
    b.addFlag (stunattr::UseCandidate);
  if (r.priority)
    b.addU32 (stunattr::Priority, 0x6e7f1eff);
  if (r.integrity)
    b.addIntegrity (r.password);
  if (r.fingerprint)
    b.addFingerprint ();
  EXPECT_TRUE (b.ok ());
  return std::vector<uint8_t> (buf, buf + b.size ());
}

struct Outcome {
  std::vector<uint8_t> request;  /* the result's views point into it */
  BindingResult result;
  std::vector<uint8_t> reply;
  StunMessage parsed;  /* of reply, views into it */
};

std::unique_ptr<Outcome>
handle (Viewers &v, const std::vector<uint8_t> &req,
    const SockAddr &from = SockAddr::parse ("192.0.2.7", 40001))
{
  auto o = std::make_unique<Outcome> ();
  o->request = req;
  uint8_t buf[256];
  o->result = iceLiteHandleRequest (o->request.data (), o->request.size (), from, v.lookup (), buf,
      sizeof (buf));
  if (o->result.action == BindingAction::Reply) {
    o->reply.assign (buf, buf + o->result.replySize);
    EXPECT_EQ (stunParse (o->reply.data (), o->reply.size (), o->parsed), StunParseError::None);
    EXPECT_EQ (o->parsed.transactionId, kTxid);
    EXPECT_TRUE (stunCheckFingerprint (o->parsed)) << "every reply carries FINGERPRINT";
  }
  return o;
}

}  // namespace

TEST (IceLite, AnswersAuthenticatedRequestWithMappedAddress)
{
  Viewers v;
  auto from = SockAddr::parse ("192.0.2.7", 40001);
  auto o = handle (v, build (Request ()), from);
  ASSERT_EQ (o->result.action, BindingAction::Reply);
  EXPECT_EQ (o->result.errorCode, 0);
  EXPECT_TRUE (o->result.authenticated);
  ASSERT_NE (o->result.credentials, nullptr);
  EXPECT_EQ (o->result.credentials->ufrag, "srvA");
  EXPECT_EQ (o->result.localUfrag, "srvA");
  EXPECT_EQ (o->result.remoteUfrag, "cli1");
  EXPECT_TRUE (o->result.useCandidate);
  EXPECT_EQ (o->result.priority, 0x6e7f1effu);

  EXPECT_EQ (o->parsed.cls, StunClass::SuccessResponse);
  EXPECT_EQ (o->parsed.method, kStunMethodBinding);
  ASSERT_TRUE (o->parsed.xorMappedAddress);
  EXPECT_EQ (*o->parsed.xorMappedAddress, from);
  /* signed with the viewer's own password, the one the request used */
  EXPECT_TRUE (stunCheckIntegrity (o->parsed, "passwordOfViewerA123456"));
  EXPECT_FALSE (stunCheckIntegrity (o->parsed, "passwordOfViewerB654321"));
}

TEST (IceLite, AnswersIpv6SenderWithIpv6MappedAddress)
{
  Viewers v;
  auto from = SockAddr::parse ("2001:db8::42", 5000);
  auto o = handle (v, build (Request ()), from);
  ASSERT_EQ (o->result.action, BindingAction::Reply);
  ASSERT_TRUE (o->parsed.xorMappedAddress);
  EXPECT_EQ (*o->parsed.xorMappedAddress, from);
}

TEST (IceLite, TellsViewersApartByUfrag)
{
  Viewers v;
  Request r;
  r.username = "srvB:cli9";
  r.password = "passwordOfViewerB654321";
  r.useCandidate = false;
  auto o = handle (v, build (r));
  ASSERT_EQ (o->result.errorCode, 0);
  EXPECT_EQ (o->result.credentials->ufrag, "srvB");
  EXPECT_FALSE (o->result.useCandidate);
  EXPECT_TRUE (stunCheckIntegrity (o->parsed, "passwordOfViewerB654321"));
}

TEST (IceLite, WrongPasswordGets401WithoutIntegrity)
{
  Viewers v;
  Request r;
  r.password = "passwordOfViewerB654321";  /* B's password on A's ufrag */
  auto o = handle (v, build (r));
  ASSERT_EQ (o->result.action, BindingAction::Reply);
  EXPECT_EQ (o->result.errorCode, 401);
  EXPECT_FALSE (o->result.authenticated);
  EXPECT_EQ (o->parsed.cls, StunClass::ErrorResponse);
  EXPECT_EQ (*o->parsed.errorCode, 401);
  EXPECT_EQ (o->parsed.integrityOffset, 0u);
}

TEST (IceLite, UnknownUfragGets401)
{
  Viewers v;
  Request r;
  r.username = "nobody:cli1";
  auto o = handle (v, build (r));
  EXPECT_EQ (o->result.errorCode, 401);
  EXPECT_FALSE (o->result.authenticated);
  r.username = "srvAcli1";  /* no colon */
  EXPECT_EQ (handle (v, build (r))->result.errorCode, 401);
}

TEST (IceLite, MissingUsernameOrIntegrityGets400)
{
  Viewers v;
  Request r;
  r.username.clear ();
  EXPECT_EQ (handle (v, build (r))->result.errorCode, 400);
  r = Request ();
  r.integrity = false;
  auto o = handle (v, build (r));
  EXPECT_EQ (o->result.errorCode, 400);
  EXPECT_FALSE (o->result.authenticated);
}

TEST (IceLite, MissingPriorityGets400)
{
  Viewers v;
  Request r;
  r.priority = false;
  auto o = handle (v, build (r));
  EXPECT_EQ (o->result.errorCode, 400);
  /* authenticated by then: the error is signed */
  EXPECT_TRUE (stunCheckIntegrity (o->parsed, "passwordOfViewerA123456"));
}

TEST (IceLite, PeerClaimingControlledRoleGets487)
{
  Viewers v;
  Request r;
  r.controlling = false;
  r.controlled = true;
  auto o = handle (v, build (r));
  ASSERT_EQ (o->result.action, BindingAction::Reply);
  EXPECT_EQ (o->result.errorCode, 487);
  EXPECT_TRUE (o->result.authenticated);
  EXPECT_EQ (*o->parsed.errorCode, 487);
  EXPECT_EQ (o->parsed.errorReason, "Role Conflict");
  EXPECT_TRUE (stunCheckIntegrity (o->parsed, "passwordOfViewerA123456"));
}

TEST (IceLite, Rfc5769SampleRequestClaimsControlledAndGets487)
{
  /* RFC 5769 2.1 carries ICE-CONTROLLED: a lite agent answers 487. */
  Viewers v;
  v.add ("evtj", "VOkJxbRl1RmTxUk/WvJxBt");
  auto req = hex ("00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86"
                  "fa 87 df ae 80 22 00 10 53 54 55 4e 20 74 65 73"
                  "74 20 63 6c 69 65 6e 74 00 24 00 04 6e 00 01 ff"
                  "80 29 00 08 93 2f f9 b1 51 26 3b 36 00 06 00 09"
                  "65 76 74 6a 3a 68 36 76 59 20 20 20 00 08 00 14"
                  "9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49"
                  "c1 b5 71 a2 80 28 00 04 e5 7a 3b cf");
  uint8_t buf[256];
  auto r = iceLiteHandleRequest (req.data (), req.size (), SockAddr::parse ("192.0.2.1", 32853),
      v.lookup (), buf, sizeof (buf));
  ASSERT_EQ (r.action, BindingAction::Reply);
  EXPECT_TRUE (r.authenticated);
  EXPECT_EQ (r.errorCode, 487);
  EXPECT_EQ (r.remoteUfrag, "h6vY");
}

TEST (IceLite, UnknownRequiredAttributeGets420ListingIt)
{
  Viewers v;
  Request r;
  r.unknownAttribute = 0x0777;
  auto o = handle (v, build (r));
  EXPECT_EQ (o->result.errorCode, 420);
  /* UNKNOWN-ATTRIBUTES lists it */
  const uint8_t *p = o->reply.data () + 20;
  bool listed = false;
  while (p + 4 <= o->reply.data () + o->reply.size ()) {
    uint16_t type = (p[0] << 8) | p[1], len = (p[2] << 8) | p[3];
    if (type == stunattr::UnknownAttributes && len == 2 && p[4] == 0x07 && p[5] == 0x77)
      listed = true;
    p += 4 + ((len + 3) & ~3);
  }
  EXPECT_TRUE (listed);
}

TEST (IceLite, OtherMethodsGet400)
{
  Viewers v;
  Request r;
  r.method = 0x003;  /* TURN Allocate */
  EXPECT_EQ (handle (v, build (r))->result.errorCode, 400);
}

TEST (IceLite, DropsWithoutReplying)
{
  Viewers v;
  Request r;
  r.fingerprint = false;
  auto o = handle (v, build (r));
  EXPECT_EQ (o->result.action, BindingAction::Drop);
  EXPECT_STREQ (o->result.dropReason, "fingerprint");

  auto bad = build (Request ());
  bad.back () ^= 1;  /* FINGERPRINT wrong */
  EXPECT_EQ (handle (v, bad)->result.action, BindingAction::Drop);

  r = Request ();
  r.cls = StunClass::SuccessResponse;
  o = handle (v, build (r));
  EXPECT_EQ (o->result.action, BindingAction::Drop);
  EXPECT_STREQ (o->result.dropReason, "not-a-request");

  r.cls = StunClass::Indication;  /* keepalive */
  EXPECT_EQ (handle (v, build (r))->result.action, BindingAction::Drop);

  auto good = build (Request ());
  for (size_t n = 0; n < good.size (); n++) {
    std::vector<uint8_t> cut (good.begin (), good.begin () + n);
    auto c = handle (v, cut);
    EXPECT_EQ (c->result.action, BindingAction::Drop) << "cut at " << n;
    EXPECT_FALSE (c->result.authenticated);
  }

  /* DTLS and RTP on the same port are not STUN */
  auto dtls = hex ("16 fe fd 00 00 00 00 00 00 00 00 00 20 01 00 00 14 00 00 00 00 00");
  EXPECT_EQ (handle (v, dtls)->result.action, BindingAction::Drop);
}

TEST (IceLite, HostileDatagramsNeverAuthenticate)
{
  Viewers v;
  auto good = build (Request ());
  fanouttest::Rng rng (99);
  for (int round = 0; round < 5000; round++) {
    auto m = good;
    m[20 + rng.below (m.size () - 20)] ^= static_cast<uint8_t> (1 + rng.below (255));
    auto o = handle (v, m);
    /* every change past the header breaks FINGERPRINT or integrity */
    EXPECT_FALSE (o->result.authenticated && o->result.errorCode == 0) << "round " << round;
  }
}

TEST (IceLite, SmallReplyBufferDropsInsteadOfOverrunning)
{
  Viewers v;
  auto req = build (Request ());
  uint8_t buf[40];
  auto r = iceLiteHandleRequest (req.data (), req.size (), SockAddr::parse ("192.0.2.7", 1),
      v.lookup (), buf, sizeof (buf));
  EXPECT_EQ (r.action, BindingAction::Drop);
  EXPECT_STREQ (r.dropReason, "reply-too-large");
}
