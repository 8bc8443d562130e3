/* Aes128Ctr, each kernel the CPU has, against OpenSSL's AES-128-CTR and
 * RFC 3711's keystream. (SrtpContext runs on it where the CPU has one: the
 * SRTP tests, and the comparison with libsrtp2, cover it there.) */
#include <gtest/gtest.h>

#include "fanout-test-util.h"
#include "xdn-fanout-aes-ctr.h"
#include "xdn-fanout-srtp.h"

#include <vector>

using namespace xdn::fanout;
using fanouttest::hex;
using fanouttest::toHex;

namespace {

using Kernel = Aes128Ctr::Kernel;

class AesCtrKernels : public ::testing::TestWithParam<Kernel> {
protected:
  void SetUp () override
  {
    if (!Aes128Ctr::supported (GetParam ()))
      GTEST_SKIP () << "the CPU has no " << Aes128Ctr::kernelName (GetParam ());
  }
};

}  // namespace

TEST (Aes128Ctr, BestIsTheWidestSupportedKernel)
{
  const Kernel best = Aes128Ctr::best ();
  if (Aes128Ctr::supported (Kernel::Vaes))
    EXPECT_EQ (best, Kernel::Vaes);
  else if (Aes128Ctr::supported (Kernel::AesNi))
    EXPECT_EQ (best, Kernel::AesNi);
  else
    EXPECT_EQ (best, Kernel::None);
  Aes128Ctr ctr;
  const uint8_t key[16] = {};
  EXPECT_FALSE (ctr.setKey (key, Kernel::None));
  EXPECT_FALSE (ctr.ready ());
#if defined(__x86_64__)
  EXPECT_EQ (Aes128Ctr::supported (Kernel::AesNi), __builtin_cpu_supports ("aes") != 0);
#endif
}

TEST_P (AesCtrKernels, ProducesRfc3711AppendixB2Keystream)
{
  auto key = hex (fanouttest::rfc3711b2::kKey);
  auto salt = hex (fanouttest::rfc3711b2::kSalt);
  uint8_t iv[16];
  srtpAesCmIv (salt.data (), 0, 0, iv);
  Aes128Ctr ctr;
  ASSERT_TRUE (ctr.setKey (key.data (), GetParam ()));
  EXPECT_EQ (ctr.kernel (), GetParam ());

  /* 65282 blocks: the counter goes past 16 bits */
  std::vector<uint8_t> ks (fanouttest::rfc3711b2::kLength, 0);
  ctr.apply (iv, ks.data (), ks.size ());
  EXPECT_EQ (toHex (ks.data (), 48), fanouttest::rfc3711b2::kHead);
  EXPECT_EQ (toHex (ks.data () + ks.size () - 48, 48), fanouttest::rfc3711b2::kTail);
}

/* Every length up to past two of the widest kernel's rounds (8 x 64
 * bytes), each at an odd offset, with the bytes around left alone. */
TEST_P (AesCtrKernels, MatchesOpensslForEveryLength)
{
  fanouttest::Rng rng (3711);
  Aes128Ctr ctr;
  for (size_t length = 0; length <= 1100; length++) {
    uint8_t key[16], iv[16];
    rng.fill (key, sizeof (key));
    rng.fill (iv, sizeof (iv));
    iv[14] = iv[15] = 0;
    ASSERT_TRUE (ctr.setKey (key, GetParam ()));
    std::vector<uint8_t> ours (length + 32), theirs;
    rng.fill (ours.data (), ours.size ());
    theirs = ours;
    ctr.apply (iv, ours.data () + 7, length);
    ASSERT_TRUE (srtpAesCtr (key, iv, theirs.data () + 7, length));
    ASSERT_EQ (toHex (ours.data (), ours.size ()), toHex (theirs.data (), theirs.size ()))
        << "length " << length;
  }
}

/* Applying the keystream twice gives the bytes back. */
TEST_P (AesCtrKernels, IsItsOwnInverse)
{
  fanouttest::Rng rng (5764);
  uint8_t key[16], iv[16];
  rng.fill (key, sizeof (key));
  rng.fill (iv, sizeof (iv));
  iv[14] = iv[15] = 0;
  Aes128Ctr ctr;
  ASSERT_TRUE (ctr.setKey (key, GetParam ()));
  std::vector<uint8_t> plain (1200), data;
  rng.fill (plain.data (), plain.size ());
  data = plain;
  ctr.apply (iv, data.data (), data.size ());
  EXPECT_NE (data, plain);
  ctr.apply (iv, data.data (), data.size ());
  EXPECT_EQ (data, plain);
}

INSTANTIATE_TEST_SUITE_P (Kernels, AesCtrKernels, ::testing::Values (Kernel::AesNi, Kernel::Vaes),
    [] (const ::testing::TestParamInfo<Kernel> &info) {
      return std::string (info.param == Kernel::Vaes ? "Vaes" : "AesNi");
    });
