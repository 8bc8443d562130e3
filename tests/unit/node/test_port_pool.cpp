/* The node's WebRTC port range: parsing MIN-MAX, and the pool its fan-outs
 * take their ports from (lowest free first, a port another process holds
 * skipped, ports given back). Binding is simulated: the pool never opens a
 * socket. */
#include "port-pool.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

using namespace xdn;

TEST (PortRange, ParsesMinDashMax)
{
  int min = 0, max = 0;
  std::string error;
  ASSERT_TRUE (parsePortRange ("40000-40009", &min, &max, &error)) << error;
  EXPECT_EQ (min, 40000);
  EXPECT_EQ (max, 40009);
  ASSERT_TRUE (parsePortRange ("5000-5000", &min, &max, &error)) << error;
  EXPECT_EQ (min, 5000);
  EXPECT_EQ (max, 5000);
  ASSERT_TRUE (parsePortRange ("1-65535", &min, &max, &error)) << error;
}

TEST (PortRange, RefusesWhatIsNotARange)
{
  for (const char *bad : {"", "40000", "40000-", "-40000", "a-b", "0-10", "1-65536",
           "40000 - 40009", "+1-2", "1-2-3", "99999999999-1"}) {
    int min = -1, max = -1;
    std::string error;
    EXPECT_FALSE (parsePortRange (bad, &min, &max, &error)) << bad;
    EXPECT_NE (error.find ("MIN-MAX"), std::string::npos) << bad << ": " << error;
    EXPECT_NE (error.find (std::string ("'") + bad + "'"), std::string::npos) << error;
    EXPECT_EQ (min, -1);
  }
  int min = 0, max = 0;
  std::string error;
  EXPECT_FALSE (parsePortRange ("40009-40000", &min, &max, &error));
  EXPECT_NE (error.find ("empty"), std::string::npos) << error;
}

TEST (PortPool, WithoutARangeNothingIsHeld)
{
  PortPool pool (0, 0);
  EXPECT_FALSE (pool.limited ());
  int calls = 0;
  EXPECT_EQ (pool.acquire ([&] (int) { calls++; return true; }), 0);
  EXPECT_EQ (calls, 0);
}

TEST (PortPool, EachTakesTheLowestPortNoOtherHolds)
{
  PortPool pool (40000, 40002);
  auto any = [] (int) { return true; };
  EXPECT_EQ (pool.range (), "40000-40002");
  EXPECT_EQ (pool.acquire (any), 40000);
  EXPECT_EQ (pool.acquire (any), 40001);
  EXPECT_EQ (pool.acquire (any), 40002);
  EXPECT_EQ (pool.held (), 3u);
  /* A port given back is the lowest free one again. */
  pool.release (40001);
  EXPECT_EQ (pool.acquire (any), 40001);
}

TEST (PortPool, APortAnotherProcessHoldsIsSkipped)
{
  PortPool pool (40000, 40003);
  std::set<int> elsewhere = {40000, 40002};
  std::vector<int> tried;
  auto bind = [&] (int port) {
    tried.push_back (port);
    return elsewhere.count (port) == 0;
  };
  EXPECT_EQ (pool.acquire (bind), 40001);
  EXPECT_EQ (pool.acquire (bind), 40003);
  EXPECT_EQ (tried, (std::vector<int>{40000, 40001, 40000, 40002, 40003}));
  /* The other process let go: that port is used, and held ports are not
   * tried again. */
  elsewhere.clear ();
  tried.clear ();
  EXPECT_EQ (pool.acquire (bind), 40000);
  EXPECT_EQ (tried, (std::vector<int>{40000}));
}

TEST (PortPool, NoneLeftGivesZeroAndHoldsNothingMore)
{
  PortPool pool (40000, 40001);
  EXPECT_EQ (pool.acquire ([] (int) { return true; }), 40000);
  int calls = 0;
  EXPECT_EQ (pool.acquire ([&] (int) { calls++; return false; }), 0);
  EXPECT_EQ (calls, 1);  /* only 40001: 40000 is held */
  EXPECT_EQ (pool.held (), 1u);
  EXPECT_EQ (pool.acquire ([] (int) { return true; }), 40001);
  EXPECT_EQ (pool.acquire ([] (int) { return true; }), 0);
  pool.release (40000);
  pool.release (40000);  /* twice, and unknown ports: ignored */
  pool.release (0);
  pool.release (12345);
  EXPECT_EQ (pool.held (), 1u);
  EXPECT_EQ (pool.acquire ([] (int) { return true; }), 40000);
}
