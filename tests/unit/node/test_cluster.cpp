/* The node's plain cluster pieces: roles, addresses, backoff, the linger of
 * an idle pull, the CPU load. */
#include "cluster.h"

#include <gtest/gtest.h>

#include <glib.h>
#include <unistd.h>

using namespace xdn;

TEST (NodeRoles, ParseTheFourRolesAndNothingElse)
{
  NodeRole r;
  for (auto [text, role] : {std::pair{"all", NodeRole::All}, {"origin", NodeRole::Origin},
           {"relay", NodeRole::Relay}, {"edge", NodeRole::Edge}}) {
    ASSERT_TRUE (parseNodeRole (text, &r)) << text;
    EXPECT_EQ (r, role);
    EXPECT_STREQ (nodeRoleName (r), text);
  }
  EXPECT_FALSE (parseNodeRole ("transcoder", &r));
  EXPECT_FALSE (parseNodeRole ("Edge", &r));
  EXPECT_FALSE (parseNodeRole ("", &r));
}

TEST (NodeRoles, AllIsOriginPlusEdge)
{
  RoleAbilities all = roleAbilities (NodeRole::All);
  EXPECT_TRUE (all.ingest && all.serveRequest && all.whep && all.pullForViewers);
  EXPECT_FALSE (all.pullForRequest);

  RoleAbilities origin = roleAbilities (NodeRole::Origin);
  EXPECT_TRUE (origin.ingest && origin.serveRequest && origin.whep);
  EXPECT_FALSE (origin.pullForViewers || origin.pullForRequest);

  RoleAbilities relay = roleAbilities (NodeRole::Relay);
  EXPECT_TRUE (relay.serveRequest && relay.pullForRequest);
  EXPECT_FALSE (relay.ingest || relay.whep || relay.pullForViewers);

  RoleAbilities edge = roleAbilities (NodeRole::Edge);
  EXPECT_TRUE (edge.whep && edge.pullForViewers);
  EXPECT_FALSE (edge.ingest || edge.serveRequest || edge.pullForRequest);
}

TEST (ClusterIds, AcceptNamesAndRefuseTheRest)
{
  EXPECT_EQ (clusterIdError ("edge-1"), "");
  EXPECT_EQ (clusterIdError ("eu_west.2"), "");
  EXPECT_EQ (clusterIdError (std::string (64, 'a')), "");
  EXPECT_NE (clusterIdError (""), "");
  EXPECT_NE (clusterIdError (std::string (65, 'a')), "");
  EXPECT_NE (clusterIdError ("edge 1"), "");
  EXPECT_NE (clusterIdError ("edge/1"), "");
  EXPECT_NE (clusterIdError ("ed\"ge"), "");
}

TEST (SrtUri, ParsesHostAndPort)
{
  std::string host;
  int port = 0;
  ASSERT_TRUE (parseSrtUri ("srt://127.0.0.1:9001", &host, &port));
  EXPECT_EQ (host, "127.0.0.1");
  EXPECT_EQ (port, 9001);
  ASSERT_TRUE (parseSrtUri ("srt://origin-1.example.com:9000/", &host, &port));
  EXPECT_EQ (host, "origin-1.example.com");
  ASSERT_TRUE (parseSrtUri ("srt://[::1]:9000?latency=20", &host, &port));
  EXPECT_EQ (host, "::1");
  EXPECT_EQ (port, 9000);
}

TEST (SrtUri, RefusesWhatIsNotSrtHostPort)
{
  for (const char *bad : {"", "srt://", "srt://host", "srt://host:", "srt://:9000",
           "srt://host:0", "srt://host:65536", "srt://host:90a", "http://host:9000",
           "srt://ho st:9000", "srt://host:9000/path", "srt://a:b:9000", "srt://[::1]9000"})
    EXPECT_FALSE (parseSrtUri (bad, nullptr, nullptr)) << bad;
}

TEST (HttpUrl, NeedsSchemeAndHost)
{
  EXPECT_TRUE (isHttpUrl ("http://127.0.0.1:8090"));
  EXPECT_TRUE (isHttpUrl ("https://manager.example.com"));
  EXPECT_FALSE (isHttpUrl ("http://"));
  EXPECT_FALSE (isHttpUrl ("ftp://x"));
  EXPECT_FALSE (isHttpUrl ("127.0.0.1:8090"));
  EXPECT_FALSE (isHttpUrl ("http:///x"));
}

TEST (AnnounceAddress, PrefersPublicThenListenThenIceThenHostname)
{
  EXPECT_EQ (announceAddress ("203.0.113.7", "10.0.0.5", "10.0.0.6", "box"), "203.0.113.7");
  EXPECT_EQ (announceAddress ("", "10.0.0.5", "10.0.0.6", "box"), "10.0.0.5");
  EXPECT_EQ (announceAddress ("", "0.0.0.0", "10.0.0.6", "box"), "10.0.0.6");
  EXPECT_EQ (announceAddress ("", "::", "", "box"), "box");
  EXPECT_EQ (urlHost ("::1"), "[::1]");
  EXPECT_EQ (urlHost ("10.0.0.1"), "10.0.0.1");
}

TEST (Backoff, DoublesUpToTheMaximumAndResets)
{
  Backoff b (100, 2000);
  std::vector<int> delays;
  for (int i = 0; i < 7; i++)
    delays.push_back (b.next ());
  EXPECT_EQ (delays, (std::vector<int>{100, 200, 400, 800, 1600, 2000, 2000}));
  EXPECT_EQ (b.attempts (), 7);
  b.reset ();
  EXPECT_EQ (b.next (), 100);
}

TEST (Backoff, JitterStaysWithinItsSpread)
{
  double r = 0.0;
  Backoff b (1000, 1000, 0.2, [&] { return r; });
  EXPECT_EQ (b.next (), 800);   /* r = 0: -20 % */
  r = 0.5;
  EXPECT_EQ (b.next (), 1000);
  r = 0.999999;
  EXPECT_NEAR (b.next (), 1200, 1);
  Backoff real (1000, 1000, 0.2);
  for (int i = 0; i < 100; i++) {
    int d = real.next ();
    EXPECT_GE (d, 800);
    EXPECT_LE (d, 1200);
  }
}

TEST (LingerTimer, ExpiresLingerAfterTheLastSubscriberLeft)
{
  const int64_t s = 1000000;
  LingerTimer t (10 * s, 0);
  EXPECT_FALSE (t.update (2, 1 * s));
  EXPECT_FALSE (t.update (1, 20 * s));  /* subscribers: never expires */
  EXPECT_FALSE (t.update (0, 21 * s));  /* last one left at 21 s */
  EXPECT_TRUE (t.idle ());
  EXPECT_EQ (t.idleSince (), 21 * s);
  EXPECT_FALSE (t.update (0, 30 * s));
  EXPECT_TRUE (t.update (0, 31 * s));
}

TEST (LingerTimer, ASubscriberComingBackRestartsTheLinger)
{
  const int64_t s = 1000000;
  LingerTimer t (10 * s, 0);
  EXPECT_FALSE (t.update (0, 5 * s));
  EXPECT_FALSE (t.update (1, 9 * s));
  EXPECT_FALSE (t.update (0, 12 * s));
  EXPECT_FALSE (t.update (0, 21 * s));
  EXPECT_TRUE (t.update (0, 22 * s));
}

TEST (LingerTimer, NobodyEverCameExpiresFromTheStart)
{
  const int64_t s = 1000000;
  LingerTimer t (3 * s, 100 * s);
  EXPECT_FALSE (t.update (0, 102 * s));
  EXPECT_TRUE (t.update (0, 103 * s));
  LingerTimer zero (0, 0);
  EXPECT_TRUE (zero.update (0, 0));
}

TEST (CpuLoad, ReadsUtimeAndStimeAfterTheCommand)
{
  /* A command with spaces and parentheses. */
  const std::string stat =
      "4242 (xdn (node) 1) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 0 0";
  uint64_t ticks = 0;
  ASSERT_TRUE (parseProcStatTicks (stat, &ticks));
  EXPECT_EQ (ticks, 300u);
  EXPECT_FALSE (parseProcStatTicks ("4242 (x) S 1 2", &ticks));
  EXPECT_FALSE (parseProcStatTicks ("garbage", &ticks));
  EXPECT_FALSE (parseProcStatTicks ("1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 5 0", &ticks));
}

TEST (CpuLoad, IsTheShareOfTheMachine)
{
  /* 50 ticks at 100 Hz = 0.5 s of CPU over 1 s on 2 cores. */
  EXPECT_DOUBLE_EQ (cpuShare (100, 150, 1.0, 100, 2), 0.25);
  EXPECT_DOUBLE_EQ (cpuShare (100, 500, 1.0, 100, 2), 1.0);  /* clamped */
  EXPECT_DOUBLE_EQ (cpuShare (100, 90, 1.0, 100, 2), 0.0);   /* went back */
  EXPECT_DOUBLE_EQ (cpuShare (100, 150, 0.0, 100, 2), 0.0);
}

TEST (CpuLoad, SamplerSeesThisProcessWork)
{
  CpuSampler sampler;
  EXPECT_EQ (sampler.sample (), 0.0);
  /* Burn about 150 ms of CPU. */
  volatile double x = 0;
  const int64_t start = g_get_monotonic_time ();
  while (g_get_monotonic_time () - start < 150000)
    x = x + 1.0;
  double share = sampler.sample ();
  EXPECT_GT (share, 0.0);
  EXPECT_LE (share, 1.0);
}
