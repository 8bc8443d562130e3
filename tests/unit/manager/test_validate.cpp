/* Hostile and malformed input to the manager's parsers. */
#include "validate.h"

#include <gtest/gtest.h>

#include <string>

using namespace xdn::manager;

TEST (ManagerValidate, NodeIds)
{
  EXPECT_TRUE (isValidNodeId ("edge-1"));
  EXPECT_TRUE (isValidNodeId ("a.b_c-D9"));
  EXPECT_TRUE (isValidNodeId (std::string (64, 'x')));
  EXPECT_FALSE (isValidNodeId (""));
  EXPECT_FALSE (isValidNodeId (std::string (65, 'x')));
  for (const char *bad : {"a/b", "a b", "a\nb", "é", "a;drop", "'", "%00", "a\\b"})
    EXPECT_FALSE (isValidNodeId (bad)) << bad;
  EXPECT_FALSE (isValidNodeId (std::string ("a\0b", 3)));
}

TEST (ManagerValidate, RolesAndRegions)
{
  for (const char *r : {"origin", "relay", "edge", "all"})
    EXPECT_TRUE (isValidRole (r));
  for (const char *r : {"", "ORIGIN", "transcoder", "edge "})
    EXPECT_FALSE (isValidRole (r)) << r;
  EXPECT_TRUE (isValidRegion (""));
  EXPECT_TRUE (isValidRegion ("eu-west-1"));
  EXPECT_FALSE (isValidRegion ("eu west"));
}

TEST (ManagerValidate, HttpUrls)
{
  for (const char *ok : {"http://127.0.0.1:8081", "https://edge.example.com", "http://[::1]:80/prefix"})
    EXPECT_EQ (httpUrlError (ok), "") << ok;
  for (const char *bad : {"", "ftp://x", "javascript:alert(1)", "file:///etc/passwd", "http://",
           "http://u:p@host", "http://host/?q=1", "http://host/#f", "http://host/a b",
           "http://host/../x", "srt://host:9000", "//host", "http://ho\tst"})
    EXPECT_NE (httpUrlError (bad), "") << bad;
  EXPECT_NE (httpUrlError ("http://h/" + std::string (600, 'a')), "");
}

TEST (ManagerValidate, SrtUrls)
{
  EXPECT_EQ (srtUrlError ("srt://127.0.0.1:9001"), "");
  EXPECT_EQ (srtUrlError ("srt://relay.example:9000/"), "");
  for (const char *bad : {"srt://host", "srt://host:0", "srt://host:99999", "http://host:9000",
           "srt://host:9000/path", "srt://host:9000?streamid=x", "srt://:9000"})
    EXPECT_NE (srtUrlError (bad), "") << bad;
}

TEST (ManagerValidate, TokensCompareExactly)
{
  EXPECT_TRUE (tokensEqual ("s3cret", "s3cret"));
  EXPECT_FALSE (tokensEqual ("s3cret", "s3cre"));
  EXPECT_FALSE (tokensEqual ("s3cret", "s3cret "));
  EXPECT_FALSE (tokensEqual ("", "x"));
  EXPECT_TRUE (tokensEqual ("", ""));
}

TEST (ManagerValidate, JsonDepthIgnoresBracketsInStrings)
{
  EXPECT_EQ (jsonDepth ("{}"), 1);
  EXPECT_EQ (jsonDepth ("{\"a\":[{\"b\":1}]}"), 3);
  EXPECT_EQ (jsonDepth ("{\"a\":\"[[[[\\\"[[\"}"), 1);
  EXPECT_EQ (jsonDepth (std::string (10000, '[')), 10000);
}

TEST (ManagerValidate, RegistrationIsReadAndUnknownFieldsIgnored)
{
  NodeInfo n;
  std::string error;
  ASSERT_TRUE (parseRegistration (R"({"id":"edge-1","role":"edge","region":"eu",
      "http":"http://127.0.0.1:8081","srt":"srt://127.0.0.1:9001",
      "capacity":{"viewers":1000,"downstream":4,"gpu":1},"future":{"x":[1,2]}})", &n, &error)) << error;
  EXPECT_EQ (n.id, "edge-1");
  EXPECT_EQ (n.role, "edge");
  EXPECT_EQ (n.region, "eu");
  EXPECT_EQ (n.capacityViewers, 1000);
  EXPECT_EQ (n.capacityDownstream, 4);
  /* An edge needs no SRT address. */
  ASSERT_TRUE (parseRegistration (R"({"id":"e","role":"edge","http":"http://h:1"})", &n, &error)) << error;
}

TEST (ManagerValidate, BadRegistrationsAreRefusedWithTheReason)
{
  struct Case {
    const char *body;
    const char *expect;
  } cases[] = {
    {"", "empty"},
    {"not json", "invalid JSON"},
    {"[1,2]", "object"},
    {"{\"id\":\"e\"", "invalid JSON"},
    {R"({"role":"edge","http":"http://h:1"})", "'id' is required"},
    {R"({"id":7,"role":"edge","http":"http://h:1"})", "'id' must be a string"},
    {R"({"id":"../etc","role":"edge","http":"http://h:1"})", "'id'"},
    {R"({"id":"e","role":"boss","http":"http://h:1"})", "'role'"},
    {R"J({"id":"e","role":"edge","http":"javascript:alert(1)"})J", "'http'"},
    {R"({"id":"e","role":"edge"})", "'http' is required"},
    {R"({"id":"o","role":"origin","http":"http://h:1"})", "'srt' is required"},
    {R"({"id":"o","role":"relay","http":"http://h:1","srt":"udp://h:1"})", "'srt'"},
    {R"({"id":"e","role":"edge","http":"http://h:1","capacity":{"viewers":-1}})", "capacity.viewers"},
    {R"({"id":"e","role":"edge","http":"http://h:1","capacity":{"viewers":1e30}})", "capacity.viewers"},
    {R"({"id":"e","role":"edge","http":"http://h:1","capacity":{"viewers":1.5}})", "integer"},
    {R"({"id":"e","role":"edge","http":"http://h:1","capacity":{"viewers":"10"}})", "integer"},
    {R"({"id":"e","role":"edge","http":"http://h:1","capacity":[]})", "'capacity' must be an object"},
    {R"({"id":"e","role":"edge","region":"eu west","http":"http://h:1"})", "'region'"},
  };
  for (const auto &tc : cases) {
    NodeInfo n;
    std::string error;
    EXPECT_FALSE (parseRegistration (tc.body, &n, &error)) << tc.body;
    EXPECT_NE (error.find (tc.expect), std::string::npos) << tc.body << " -> " << error;
  }
}

TEST (ManagerValidate, DeeplyNestedJsonIsRefusedBeforeParsing)
{
  NodeInfo n;
  std::string error;
  std::string bomb = "{\"id\":" + std::string (60000, '[') + std::string (60000, ']') + "}";
  EXPECT_FALSE (parseRegistration (bomb, &n, &error));
  EXPECT_NE (error.find ("nested"), std::string::npos) << error;
}

TEST (ManagerValidate, HeartbeatIsRead)
{
  NodeLoad load;
  std::vector<StreamReport> streams;
  std::string error;
  ASSERT_TRUE (parseHeartbeat (R"({"load":{"cpu":0.2,"viewers":3,"streams":1,"bitrateIn":1500000,
      "bitrateOut":4500000,"gpu":9},"streams":[{"name":"live/a","publishing":true,"viewers":3,
      "pulling":false,"extra":"x"}],"uptime":12})", &load, &streams, &error)) << error;
  EXPECT_DOUBLE_EQ (load.cpu, 0.2);
  EXPECT_EQ (load.viewers, 3);
  EXPECT_EQ (load.bitrateOut, 4500000);
  ASSERT_EQ (streams.size (), 1u);
  EXPECT_EQ (streams[0].name, "live/a");
  EXPECT_TRUE (streams[0].publishing);
  EXPECT_FALSE (streams[0].pulling);
  ASSERT_TRUE (parseHeartbeat ("{}", &load, &streams, &error)) << error;
  EXPECT_TRUE (streams.empty ());
}

TEST (ManagerValidate, HostileHeartbeatsAreRefused)
{
  std::string many = "{\"streams\":[";
  for (int i = 0; i < 1001; i++)
    many += (i ? "," : "") + std::string ("{\"name\":\"s") + std::to_string (i) + "\"}";
  many += "]}";
  struct Case {
    std::string body;
    const char *expect;
  } cases[] = {
    {R"({"load":{"cpu":-1}})", "load.cpu"},
    {R"({"load":{"cpu":"high"}})", "load.cpu"},
    {R"({"load":{"viewers":-5}})", "load.viewers"},
    {R"({"load":{"bitrateIn":1e300}})", "load.bitrateIn"},
    {R"({"load":5})", "'load' must be an object"},
    {R"({"streams":{}})", "'streams' must be an array"},
    {R"({"streams":[1]})", "streams[0]"},
    {R"({"streams":[{"publishing":true}]})", "streams[0].name"},
    {R"({"streams":[{"name":"../../etc/passwd","publishing":true}]})", "valid stream name"},
    {R"({"streams":[{"name":"live//a"}]})", "valid stream name"},
    {R"({"streams":[{"name":"/live/a"}]})", "valid stream name"},
    {R"({"streams":[{"name":"live/a b"}]})", "valid stream name"},
    {"{\"streams\":[{\"name\":\"" + std::string (200, 'a') + "\"}]}", "valid stream name"},
    {R"({"streams":[{"name":"live/a","publishing":"yes"}]})", "publishing"},
    {R"({"streams":[{"name":"live/a"},{"name":"live/a"}]})", "repeats"},
    {many, "more than 1000"},
  };
  for (const auto &tc : cases) {
    NodeLoad load;
    std::vector<StreamReport> streams;
    std::string error;
    EXPECT_FALSE (parseHeartbeat (tc.body, &load, &streams, &error)) << tc.body.substr (0, 80);
    EXPECT_NE (error.find (tc.expect), std::string::npos) << tc.body.substr (0, 80) << " -> " << error;
  }
}
