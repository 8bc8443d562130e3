/* The WHIP/WHEP HTTP client against an in-process server on 127.0.0.1. */
#include <gtest/gtest.h>

#include <chrono>

#include "test-http-server.h"
#include "xdn-whip-client.h"

using namespace std::chrono_literals;
using xdntest::HttpRequest;
using xdntest::HttpResponse;
using xdntest::TestHttpServer;

namespace {

const char *kOffer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
const char *kAnswer = "v=0\r\no=- 2 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

xdn::WhipClientOptions
options (const std::string &url)
{
  xdn::WhipClientOptions o;
  o.url = url;
  o.timeoutSeconds = 3;
  o.deleteTimeoutSeconds = 2;
  return o;
}

}  // namespace

TEST (WhipClient, PostsTheOfferAndKeepsTheAbsoluteLocation)
{
  std::string location;
  TestHttpServer server ([&] (const HttpRequest &) {
    HttpResponse r;
    r.body = kAnswer;
    r.location = location;
    return r;
  });
  ASSERT_TRUE (server.ok ());
  location = server.url ("/sessions/abc");

  auto o = options (server.url ("/whip/live/x"));
  o.authToken = "s3cret";
  xdn::WhipClient client (o);
  std::string answer, error;
  ASSERT_TRUE (client.postOffer (kOffer, &answer, &error)) << error;
  EXPECT_EQ (answer, kAnswer);
  EXPECT_EQ (client.resourceUrl (), location);

  auto reqs = server.requests ();
  ASSERT_EQ (reqs.size (), 1u);
  EXPECT_EQ (reqs[0].method, "POST");
  EXPECT_EQ (reqs[0].path, "/whip/live/x");
  EXPECT_EQ (reqs[0].contentType, "application/sdp");
  EXPECT_EQ (reqs[0].authorization, "Bearer s3cret");
  EXPECT_EQ (reqs[0].body, kOffer);
}

TEST (WhipClient, ResolvesARelativeLocationAgainstTheEndpoint)
{
  TestHttpServer server ([] (const HttpRequest &) {
    HttpResponse r;
    r.body = kAnswer;
    r.location = "/sessions/42";
    return r;
  });
  xdn::WhipClient client (options (server.url ("/whip/live/x")));
  std::string answer, error;
  ASSERT_TRUE (client.postOffer (kOffer, &answer, &error)) << error;
  EXPECT_EQ (client.resourceUrl (), server.url ("/sessions/42"));

  TestHttpServer server2 ([] (const HttpRequest &) {
    HttpResponse r;
    r.body = kAnswer;
    r.location = "sessions/7";   /* relative to the endpoint's folder */
    return r;
  });
  xdn::WhipClient client2 (options (server2.url ("/whep/live/x")));
  ASSERT_TRUE (client2.postOffer (kOffer, &answer, &error)) << error;
  EXPECT_EQ (client2.resourceUrl (), server2.url ("/whep/live/sessions/7"));
}

TEST (WhipClient, RefusalCarriesStatusReasonAndBodyExcerpt)
{
  std::string longTail (1000, 'z');
  TestHttpServer server ([&] (const HttpRequest &) {
    HttpResponse r;
    r.status = 409;
    r.contentType = "application/json";
    r.body = "{\"error\":\"stream live/x already has a publisher\"," + longTail + "}";
    return r;
  });
  xdn::WhipClient client (options (server.url ("/whip/live/x")));
  std::string answer, error;
  EXPECT_FALSE (client.postOffer (kOffer, &answer, &error));
  EXPECT_NE (error.find ("409"), std::string::npos) << error;
  EXPECT_NE (error.find ("Conflict"), std::string::npos) << error;
  EXPECT_NE (error.find ("already has a publisher"), std::string::npos) << error;
  EXPECT_NE (error.find (server.url ("/whip/live/x")), std::string::npos) << error;
  EXPECT_LT (error.size (), 400u) << "the body is quoted, not copied whole";
  EXPECT_TRUE (client.resourceUrl ().empty ());
}

TEST (WhipClient, RefusesAnOversizedResponse)
{
  TestHttpServer server ([] (const HttpRequest &) {
    HttpResponse r;
    r.body = std::string (64 * 1024, 'a');
    r.location = "/sessions/1";
    return r;
  });
  auto o = options (server.url ("/whip/live/x"));
  o.maxResponseBytes = 4096;
  xdn::WhipClient client (o);
  std::string answer, error;
  EXPECT_FALSE (client.postOffer (kOffer, &answer, &error));
  EXPECT_NE (error.find ("larger than"), std::string::npos) << error;
  EXPECT_TRUE (answer.empty ());
}

TEST (WhipClient, UnreachableServerGivesAClearError)
{
  std::string url;
  {
    TestHttpServer server ([] (const HttpRequest &) { return HttpResponse (); });
    url = server.url ("/whip/live/x");
  }  /* nothing listens on that port any more */
  xdn::WhipClient client (options (url));
  std::string answer, error;
  auto start = std::chrono::steady_clock::now ();
  EXPECT_FALSE (client.postOffer (kOffer, &answer, &error));
  EXPECT_LT (std::chrono::steady_clock::now () - start, 5s);
  EXPECT_NE (error.find ("POST " + url + " failed"), std::string::npos) << error;
}

TEST (WhipClient, ASilentServerTimesOut)
{
  TestHttpServer server ([] (const HttpRequest &) {
    HttpResponse r;
    r.hang = true;
    return r;
  });
  auto o = options (server.url ("/whip/live/x"));
  o.timeoutSeconds = 1;
  xdn::WhipClient client (o);
  std::string answer, error;
  auto start = std::chrono::steady_clock::now ();
  EXPECT_FALSE (client.postOffer (kOffer, &answer, &error));
  EXPECT_LT (std::chrono::steady_clock::now () - start, 4s);
  EXPECT_NE (error.find ("failed"), std::string::npos) << error;
}

TEST (WhipClient, RejectsANonHttpUrl)
{
  xdn::WhipClient client (options ("srt://127.0.0.1:9000"));
  std::string answer, error;
  EXPECT_FALSE (client.postOffer (kOffer, &answer, &error));
  EXPECT_NE (error.find ("not an http(s) URL"), std::string::npos) << error;
}

TEST (WhipClient, DeletesTheSessionUrlWithTheToken)
{
  TestHttpServer server ([] (const HttpRequest &req) {
    HttpResponse r;
    if (req.method == "DELETE") {
      r.status = 200;
      return r;
    }
    r.body = kAnswer;
    r.location = "/sessions/42";
    return r;
  });
  auto o = options (server.url ("/whip/live/x"));
  o.authToken = "tok";
  xdn::WhipClient client (o);
  std::string answer, error;
  ASSERT_TRUE (client.postOffer (kOffer, &answer, &error)) << error;
  ASSERT_TRUE (client.deleteSession (&error)) << error;
  EXPECT_TRUE (client.resourceUrl ().empty ());

  auto reqs = server.requests ();
  ASSERT_EQ (reqs.size (), 2u);
  EXPECT_EQ (reqs[1].method, "DELETE");
  EXPECT_EQ (reqs[1].path, "/sessions/42");
  EXPECT_EQ (reqs[1].authorization, "Bearer tok");

  /* Nothing left to end: no second request. */
  EXPECT_TRUE (client.deleteSession (&error));
  EXPECT_EQ (server.requests ().size (), 2u);
}

TEST (WhipClient, CancelAbortsAPendingPost)
{
  TestHttpServer server ([] (const HttpRequest &) {
    HttpResponse r;
    r.hang = true;
    return r;
  });
  auto o = options (server.url ("/whip/live/x"));
  o.timeoutSeconds = 30;
  xdn::WhipClient client (o);
  std::string answer, error;
  std::thread canceller ([&] {
    server.waitForRequest ("POST", "", 5s);
    client.cancel ();
  });
  auto start = std::chrono::steady_clock::now ();
  EXPECT_FALSE (client.postOffer (kOffer, &answer, &error));
  canceller.join ();
  EXPECT_LT (std::chrono::steady_clock::now () - start, 10s);
}
