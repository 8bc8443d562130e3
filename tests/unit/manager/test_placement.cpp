#include "placement.h"

#include <gtest/gtest.h>

using namespace xdn::manager;

namespace {

NodeRecord
node (const std::string &id, const std::string &region = "")
{
  NodeRecord n;
  n.info.id = id;
  n.info.region = region;
  n.info.http = "http://" + id + ":8080/";
  n.info.srt = "srt://" + id + ":9000";
  return n;
}

}  // namespace

TEST (Placement, NothingToPickGivesNull)
{
  EXPECT_EQ (pickNode ({}, "eu"), nullptr);
}

TEST (Placement, LeastLoadedWins)
{
  NodeRecord a = node ("a"), b = node ("b");
  EXPECT_EQ (pickNode ({{&a, 3}, {&b, 1}}, ""), &b);
}

TEST (Placement, TiesGoToTheSmallerIdWhateverTheOrder)
{
  NodeRecord a = node ("node-a"), b = node ("node-b");
  EXPECT_EQ (pickNode ({{&b, 1}, {&a, 1}}, ""), &a);
  EXPECT_EQ (pickNode ({{&a, 1}, {&b, 1}}, ""), &a);
}

TEST (Placement, SecondaryLoadBreaksTies)
{
  NodeRecord a = node ("a"), b = node ("b");
  EXPECT_EQ (pickNode ({{&a, 1, 0.9}, {&b, 1, 0.1}}, ""), &b);
}

TEST (Placement, RegionIsPreferredAnyRegionIsTheFallback)
{
  NodeRecord eu = node ("z-eu", "eu"), us = node ("a-us", "us");
  EXPECT_EQ (pickNode ({{&us, 0}, {&eu, 5}}, "eu"), &eu);
  EXPECT_EQ (pickNode ({{&us, 0}}, "eu"), &us);
  EXPECT_EQ (pickNode ({{&us, 0}, {&eu, 5}}, ""), &us);
}

TEST (Placement, CarryingNodeIsPreferredOverALessLoadedOne)
{
  NodeRecord a = node ("a"), b = node ("b");
  EXPECT_EQ (pickNode ({{&a, 0.1, 0, false}, {&b, 0.9, 0, true}}, ""), &b);
}

TEST (Placement, FullNodesComeLastEvenWhenCarrying)
{
  NodeRecord a = node ("a"), b = node ("b");
  EXPECT_EQ (pickNode ({{&a, 1.0, 0, true, true}, {&b, 0.5, 0, false, false}}, ""), &b);
  /* All full: still an answer, the least bad one. */
  EXPECT_EQ (pickNode ({{&a, 1.2, 0, false, true}, {&b, 1.1, 0, false, true}}, ""), &b);
}

TEST (Placement, RegionBeatsCarrying)
{
  NodeRecord near = node ("near", "eu"), far = node ("far", "us");
  EXPECT_EQ (pickNode ({{&far, 0, 0, true}, {&near, 0, 0, false}}, "eu"), &near);
}

TEST (Placement, RolesThatTakeEachPlacement)
{
  EXPECT_TRUE (canOriginate ("origin"));
  EXPECT_TRUE (canOriginate ("all"));
  EXPECT_FALSE (canOriginate ("edge"));
  EXPECT_TRUE (canServeViewers ("edge"));
  EXPECT_TRUE (canServeViewers ("all"));
  EXPECT_FALSE (canServeViewers ("relay"));
  EXPECT_TRUE (isRelay ("relay"));
  EXPECT_FALSE (isRelay ("origin"));
}

TEST (Placement, UrlsHandedOut)
{
  NodeRecord n = node ("o1");
  EXPECT_EQ (whipUrl (n.info, "live/a"), "http://o1:8080/whip/live/a");
  EXPECT_EQ (whepUrl (n.info, "live/a"), "http://o1:8080/whep/live/a");
  EXPECT_EQ (srtPublishUrl (n.info, "live/a"), "srt://o1:9000?streamid=#!::r=live/a,m=publish");
  n.info.srt.clear ();
  EXPECT_EQ (srtPublishUrl (n.info, "live/a"), "");
}
