/* gst_init and static registration of the relay elements, so the tests do
 * not depend on the other element families building. */
#include <gtest/gtest.h>

#include <gst/gst.h>

#include "gstxdnrelaysink.h"
#include "gstxdnrelaysrc.h"

namespace {

class GstEnvironment : public ::testing::Environment {
public:
  void SetUp () override
  {
    gst_init (nullptr, nullptr);
    GST_ELEMENT_REGISTER (xdnrelaysink, nullptr);
    GST_ELEMENT_REGISTER (xdnrelaysrc, nullptr);
  }
};

const auto *env = ::testing::AddGlobalTestEnvironment (new GstEnvironment);

}  // namespace
