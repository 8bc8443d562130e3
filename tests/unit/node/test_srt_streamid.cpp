#include "srt-streamid.h"

#include <gtest/gtest.h>

using xdn::parseSrtStreamId;
using xdn::SrtStreamId;
using Kind = xdn::SrtStreamIdError::Kind;

namespace {

Kind
kindOf (const std::string &text, SrtStreamId *out = nullptr)
{
  SrtStreamId id;
  Kind k = parseSrtStreamId (text, &id).kind;
  if (out)
    *out = id;
  return k;
}

}  // namespace

TEST (SrtStreamId, AcceptsAccessControlPublish)
{
  SrtStreamId id;
  ASSERT_EQ (kindOf ("#!::r=live/x,m=publish", &id), Kind::None);
  EXPECT_EQ (id.resource, "live/x");
  EXPECT_EQ (id.mode, SrtStreamId::Mode::Publish);
  EXPECT_TRUE (id.token.empty ());
}

TEST (SrtStreamId, KeysMayComeInAnyOrder)
{
  SrtStreamId id;
  ASSERT_EQ (kindOf ("#!::m=publish,u=alice,r=live/race-7,h=example.com", &id), Kind::None);
  EXPECT_EQ (id.resource, "live/race-7");
  EXPECT_EQ (id.user, "alice");
  EXPECT_EQ (id.host, "example.com");
}

TEST (SrtStreamId, SessionKeyIsTheToken)
{
  SrtStreamId id;
  ASSERT_EQ (kindOf ("#!::r=live/x,m=publish,s=abc.def-123", &id), Kind::None);
  EXPECT_EQ (id.token, "abc.def-123");
}

TEST (SrtStreamId, NonStandardTypeIsTheToken)
{
  SrtStreamId id;
  ASSERT_EQ (kindOf ("#!::r=live/x,m=publish,t=secret42", &id), Kind::None);
  EXPECT_EQ (id.token, "secret42");
}

TEST (SrtStreamId, SessionWinsOverTypeToken)
{
  SrtStreamId id;
  ASSERT_EQ (kindOf ("#!::r=live/x,m=publish,t=old,s=new", &id), Kind::None);
  EXPECT_EQ (id.token, "new");
}

TEST (SrtStreamId, StreamTypeIsNotAToken)
{
  SrtStreamId id;
  ASSERT_EQ (kindOf ("#!::r=live/x,m=publish,t=stream", &id), Kind::None);
  EXPECT_TRUE (id.token.empty ());
}

TEST (SrtStreamId, FileAndAuthTypesAreNotServed)
{
  EXPECT_EQ (kindOf ("#!::r=live/x,m=publish,t=file"), Kind::UnsupportedType);
  EXPECT_EQ (kindOf ("#!::r=live/x,m=publish,t=auth"), Kind::UnsupportedType);
}

TEST (SrtStreamId, IgnoresCustomKeys)
{
  SrtStreamId id;
  ASSERT_EQ (kindOf ("#!::r=live/x,m=publish,acme_region=eu", &id), Kind::None);
  EXPECT_EQ (id.resource, "live/x");
}

TEST (SrtStreamId, PlainNameMeansPublish)
{
  SrtStreamId id;
  ASSERT_EQ (kindOf ("live/x", &id), Kind::None);
  EXPECT_EQ (id.resource, "live/x");
  EXPECT_EQ (id.mode, SrtStreamId::Mode::Publish);
}

TEST (SrtStreamId, PlainNameIsValidated)
{
  EXPECT_EQ (kindOf ("../etc/passwd"), Kind::Malformed);
  EXPECT_EQ (kindOf ("live x"), Kind::Malformed);
  EXPECT_EQ (kindOf ("/live"), Kind::Malformed);
}

TEST (SrtStreamId, MissingResourceIsMalformed)
{
  EXPECT_EQ (kindOf ("#!::m=publish"), Kind::Malformed);
  EXPECT_EQ (kindOf ("#!::r=,m=publish"), Kind::Malformed);
}

TEST (SrtStreamId, MissingModeMeansRequest)
{
  SrtStreamId id;
  ASSERT_EQ (kindOf ("#!::r=live/x", &id), Kind::None);
  EXPECT_EQ (id.mode, SrtStreamId::Mode::Request);
  EXPECT_EQ (id.resource, "live/x");
}

TEST (SrtStreamId, RequestModeCarriesItsToken)
{
  SrtStreamId id;
  ASSERT_EQ (kindOf ("#!::r=live/x,m=request,s=relay-secret", &id), Kind::None);
  EXPECT_EQ (id.mode, SrtStreamId::Mode::Request);
  EXPECT_EQ (id.token, "relay-secret");
}

TEST (SrtStreamId, BidirectionalAndUnknownModesAreRefused)
{
  SrtStreamId id;
  auto e = parseSrtStreamId ("#!::r=live/x,m=bidirectional", &id);
  EXPECT_EQ (e.kind, Kind::UnsupportedMode);
  EXPECT_NE (e.reason.find ("m=publish"), std::string::npos);
  EXPECT_EQ (id.resource, "live/x");
  EXPECT_EQ (kindOf ("#!::r=live/x,m=PUBLISH"), Kind::UnsupportedMode);
  EXPECT_EQ (kindOf ("#!::r=live/x,m="), Kind::UnsupportedMode);
}

TEST (SrtStreamId, HostileNamesAreMalformed)
{
  EXPECT_EQ (kindOf ("#!::r=../x,m=publish"), Kind::Malformed);
  EXPECT_EQ (kindOf ("#!::r=live/../../x,m=publish"), Kind::Malformed);
  EXPECT_EQ (kindOf ("#!::r=live//x,m=publish"), Kind::Malformed);
  EXPECT_EQ (kindOf ("#!::r=live/x%00,m=publish"), Kind::Malformed);
  EXPECT_EQ (kindOf ("#!::r=live/<script>,m=publish"), Kind::Malformed);
  EXPECT_EQ (kindOf (std::string ("#!::r=live/x\0y,m=publish", 24)), Kind::Malformed);
  EXPECT_EQ (kindOf ("#!::r=live/x\n,m=publish"), Kind::Malformed);
}

TEST (SrtStreamId, OverlongNamesAreMalformed)
{
  EXPECT_EQ (kindOf ("#!::r=" + std::string (128, 'a') + ",m=publish"), Kind::None);
  EXPECT_EQ (kindOf ("#!::r=" + std::string (129, 'a') + ",m=publish"), Kind::Malformed);
  EXPECT_EQ (kindOf (std::string (600, 'a')), Kind::Malformed);
  EXPECT_EQ (kindOf ("#!::r=live/x,m=publish,s=" + std::string (500, 't')), Kind::Malformed);
}

TEST (SrtStreamId, GarbageIsMalformed)
{
  EXPECT_EQ (kindOf (""), Kind::Malformed);
  EXPECT_EQ (kindOf ("#!::"), Kind::Malformed);
  EXPECT_EQ (kindOf ("#!"), Kind::Malformed);
  EXPECT_EQ (kindOf ("#!:{r=live/x,m=publish}"), Kind::Malformed);
  EXPECT_EQ (kindOf ("#!::r=live/x,,m=publish"), Kind::Malformed);
  EXPECT_EQ (kindOf ("#!::r=live/x,m=publish,"), Kind::Malformed);
  EXPECT_EQ (kindOf ("#!::r=live/x,m=publish,junk"), Kind::Malformed);
  EXPECT_EQ (kindOf ("#!::=x,r=live/x,m=publish"), Kind::Malformed);
  EXPECT_EQ (kindOf ("#!::r=live/x,r=live/y,m=publish"), Kind::Malformed);
  EXPECT_EQ (kindOf ("\xff\xfe\x01"), Kind::Malformed);
}

TEST (SrtStreamId, ValueMayContainEquals)
{
  SrtStreamId id;
  ASSERT_EQ (kindOf ("#!::r=live/x,m=publish,s=YWJj==", &id), Kind::None);
  EXPECT_EQ (id.token, "YWJj==");
}

TEST (SrtStreamId, RedactionHidesTokens)
{
  EXPECT_EQ (xdn::redactSrtStreamId ("#!::r=live/x,m=publish,s=secret"), "#!::r=live/x,m=publish,s=***");
  EXPECT_EQ (xdn::redactSrtStreamId ("#!::t=secret,r=live/x"), "#!::t=***,r=live/x");
  EXPECT_EQ (xdn::redactSrtStreamId ("#!::r=live/x,m=publish"), "#!::r=live/x,m=publish");
  EXPECT_EQ (xdn::redactSrtStreamId ("live/x"), "live/x");
  EXPECT_EQ (xdn::redactSrtStreamId ("#!::r=a,,s=x,"), "#!::r=a,,s=***,");
}
