#include <gtest/gtest.h>

#include "xdn-stream-name.h"

using xdn::isValidStreamName;

TEST (StreamName, AcceptsThePathLikeNamesOfTheModel)
{
  EXPECT_TRUE (isValidStreamName ("demo"));
  EXPECT_TRUE (isValidStreamName ("live/race-7"));
  EXPECT_TRUE (isValidStreamName ("a_b.c-d/E9"));
  EXPECT_TRUE (isValidStreamName (std::string (128, 'x')));
}

TEST (StreamName, RejectsHostileNamesWithAReason)
{
  EXPECT_FALSE (isValidStreamName (""));
  EXPECT_FALSE (isValidStreamName (std::string (129, 'x')));
  EXPECT_FALSE (isValidStreamName ("live/../etc"));
  EXPECT_FALSE (isValidStreamName ("/abs"));
  EXPECT_FALSE (isValidStreamName ("trailing/"));
  EXPECT_FALSE (isValidStreamName ("a//b"));
  EXPECT_FALSE (isValidStreamName ("sp ace"));
  EXPECT_FALSE (isValidStreamName ("q?x=1"));
  EXPECT_FALSE (isValidStreamName (std::string ("nul\0x", 5)));
  EXPECT_EQ (xdn::streamNameError ("a/../b"), "contains '..'");
}
