#include <gtest/gtest.h>

#include "fanout-test-util.h"
#include "xdn-fanout-hmac.h"
#include "xdn-fanout-sha1-x8.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

using namespace xdn::fanout;
using fanouttest::hex;
using fanouttest::toHex;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes
bytes (const std::string &s)
{
  return Bytes (s.begin (), s.end ());
}

/* OpenSSL's one-shot HMAC of message || suffix. */
Bytes
reference (const Bytes &key, const uint8_t *message, size_t length, const uint8_t *suffix,
    size_t suffixLength)
{
  Bytes data (message, message + length);
  data.insert (data.end (), suffix, suffix + suffixLength);
  uint8_t out[EVP_MAX_MD_SIZE];
  unsigned int outLength = 0;
  static const uint8_t empty = 0;
  HMAC (EVP_sha1 (), key.empty () ? &empty : key.data (), static_cast<int> (key.size ()),
      data.empty () ? &empty : data.data (), data.size (), out, &outLength);
  return Bytes (out, out + outLength);
}

/* Jobs as the fan-out makes them: each viewer its own key, the tags packed
 * one after the other in one buffer (with a guard after the last), so a
 * lane writing past its tag would show. */
class Batch {
public:
  struct Spec {
    size_t keyLength;
    const uint8_t *message;
    size_t length;
    size_t suffixLength;
    size_t tagLength;
  };

  Batch (const std::vector<Spec> &specs, fanouttest::Rng &rng)
  {
    size_t tagBytes = 0;
    for (const Spec &s : specs)
      tagBytes += s.tagLength;
    tags_.assign (tagBytes + kGuard, 0xa5);
    expected_ = tags_;
    size_t at = 0;
    for (const Spec &s : specs) {
      Bytes key (s.keyLength);
      rng.fill (key.data (), key.size ());
      keys_.push_back (std::make_unique<HmacSha1> ());
      keys_.back ()->setKey (key.data (), key.size ());
      HmacSha1::Job j {};
      j.key = keys_.back ().get ();
      j.message = s.message;
      j.length = s.length;
      rng.fill (j.suffix, sizeof (j.suffix));
      j.suffixLength = s.suffixLength;
      j.tag = tags_.data () + at;
      j.tagLength = s.tagLength;
      Bytes mac = reference (key, s.message, s.length, j.suffix, s.suffixLength);
      std::copy (mac.begin (), mac.begin () + s.tagLength, expected_.begin () + at);
      at += s.tagLength;
      jobs_.push_back (j);
    }
  }

  void run () { HmacSha1::many (jobs_.data (), jobs_.size ()); }
  const Bytes &tags () const { return tags_; }
  const Bytes &expected () const { return expected_; }

private:
  static constexpr size_t kGuard = 24;
  std::vector<std::unique_ptr<HmacSha1>> keys_;
  std::vector<HmacSha1::Job> jobs_;
  Bytes tags_, expected_;
};

constexpr size_t kTagLengths[] = {10, 4, 20};

/* Every length up to 300 (each block boundary and the padding's), then a
 * spread up to the largest RTP packets. */
std::vector<size_t>
testedLengths ()
{
  std::vector<size_t> lengths;
  for (size_t l = 0; l <= 300; l++)
    lengths.push_back (l);
  for (size_t l : {311, 319, 320, 383, 384, 447, 448, 500, 511, 512, 513, 575, 576, 700, 1000,
           1023, 1024, 1100, 1196, 1200, 1204, 1259, 1260, 1400, 1472, 1500})
    lengths.push_back (l);
  return lengths;
}

struct Rfc2202Case {
  Bytes key, data;
  const char *digest;
};

std::vector<Rfc2202Case>
rfc2202 ()
{
  Bytes key4;
  for (uint8_t b = 1; b <= 25; b++)
    key4.push_back (b);
  return {
    {Bytes (20, 0x0b), bytes ("Hi There"), "b617318655057264e28bc0b6fb378c8ef146be00"},
    {bytes ("Jefe"), bytes ("what do ya want for nothing?"),
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
    {Bytes (20, 0xaa), Bytes (50, 0xdd), "125d7342b9ac11cd91a39af48aa17b4f63f175d3"},
    {key4, Bytes (50, 0xcd), "4c9007f4026250c6bc8414f9bf50c86c2d7235da"},
    {Bytes (20, 0x0c), bytes ("Test With Truncation"), "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"},
    {Bytes (80, 0xaa), bytes ("Test Using Larger Than Block-Size Key - Hash Key First"),
        "aa4ae5e15272d00e95705637ce8a3b55ed402112"},
    {Bytes (80, 0xaa),
        bytes ("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"),
        "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"},
  };
}

/* Where HmacSha1::many () runs the checks below: as the CPU chooses (on a
 * CPU without AVX2, the scalar path only), and on each build of the vector
 * kernel the CPU can run. */
struct Variant {
  const char *name;
  std::optional<sha1x8::Kernel> kernel;
};

/* for gtest's messages */
void
PrintTo (const Variant &variant, std::ostream *os)
{
  *os << variant.name;
}

class HmacSha1Many : public ::testing::TestWithParam<Variant> {
protected:
  void SetUp () override
  {
    const std::optional<sha1x8::Kernel> kernel = GetParam ().kernel;
    if (kernel && !sha1x8::supported (*kernel))
      GTEST_SKIP () << "the CPU cannot run the " << GetParam ().name << " kernel";
    ASSERT_TRUE (sha1x8::setKernelForTesting (kernel));
  }

  void TearDown () override { sha1x8::setKernelForTesting (std::nullopt); }
};

}  // namespace

INSTANTIATE_TEST_SUITE_P (Kernels, HmacSha1Many,
    ::testing::Values (Variant {"Default", std::nullopt}, Variant {"Avx2", sha1x8::Kernel::Avx2},
        Variant {"Avx512", sha1x8::Kernel::Avx512}),
    [] (const ::testing::TestParamInfo<Variant> &info) { return std::string (info.param.name); });

/* The seven cases at once (lengths differ: the scalar path), then each
 * eight times (one vector group), the last byte of the data given as the
 * suffix for good measure. */
TEST_P (HmacSha1Many, MatchesRfc2202)
{
  const auto cases = rfc2202 ();
  std::vector<std::unique_ptr<HmacSha1>> keys;
  for (const auto &c : cases) {
    keys.push_back (std::make_unique<HmacSha1> ());
    ASSERT_TRUE (keys.back ()->setKey (c.key.data (), c.key.size ()));
  }
  uint8_t tags[7][HmacSha1::kDigestSize] = {};
  std::vector<HmacSha1::Job> jobs;
  for (size_t i = 0; i < cases.size (); i++)
    jobs.push_back ({keys[i].get (), cases[i].data.data (), cases[i].data.size (), {}, 0, tags[i],
        HmacSha1::kDigestSize});
  HmacSha1::many (jobs.data (), jobs.size ());
  for (size_t i = 0; i < cases.size (); i++)
    EXPECT_EQ (toHex (tags[i], HmacSha1::kDigestSize), cases[i].digest) << "case " << i + 1;

  for (size_t i = 0; i < cases.size (); i++) {
    uint8_t group[8][HmacSha1::kDigestSize] = {};
    jobs.clear ();
    for (size_t l = 0; l < 8; l++) {
      HmacSha1::Job j {keys[i].get (), cases[i].data.data (), cases[i].data.size () - 1, {}, 1,
          group[l], HmacSha1::kDigestSize};
      j.suffix[0] = cases[i].data.back ();
      jobs.push_back (j);
    }
    HmacSha1::many (jobs.data (), jobs.size ());
    for (size_t l = 0; l < 8; l++)
      EXPECT_EQ (toHex (group[l], HmacSha1::kDigestSize), cases[i].digest)
          << "case " << i + 1 << " lane " << l;
  }
}

/* Same-length batches of every size from 1 to 20 (whole groups of eight,
 * remainders hashed in idle-padded groups or one by one), each job under
 * its own key (some longer than a block), the same message for all as in
 * the fan-out. */
TEST_P (HmacSha1Many, MatchesOpensslForEveryLengthAndBatchSize)
{
  fanouttest::Rng rng (2202);
  Bytes message (1500);
  rng.fill (message.data (), message.size ());
  for (size_t length : testedLengths ()) {
    for (size_t suffixLength : {0, 4}) {
      for (size_t n = 1; n <= 20; n++) {
        std::vector<Batch::Spec> specs;
        for (size_t k = 0; k < n; k++)
          specs.push_back ({rng.below (100), message.data (), length, suffixLength,
              kTagLengths[k % 3]});
        Batch batch (specs, rng);
        batch.run ();
        ASSERT_EQ (toHex (batch.tags ()), toHex (batch.expected ()))
            << "length " << length << " suffix " << suffixLength << " jobs " << n;
      }
    }
  }
}

/* Lengths mixed in one call, each job its own message: jobs of one total
 * length (message + suffix) go in one group even where the message
 * lengths differ and straddle a block boundary (60 + 4 and 64 + 0). */
TEST_P (HmacSha1Many, MatchesOpensslWithMixedLengths)
{
  fanouttest::Rng rng (3711);
  std::vector<Bytes> messages;
  for (int round = 0; round < 400; round++) {
    const size_t n = round < 380 ? 1 + rng.below (20) : 64 + rng.below (200);
    /* a few totals near each other so that groups form */
    const size_t base = rng.below (4) == 0 ? 60 + 64 * rng.below (20) : rng.below (1500);
    messages.clear ();
    std::vector<size_t> suffixLengths;
    for (size_t k = 0; k < n; k++) {
      const size_t total = base + 4 * rng.below (3);
      suffixLengths.push_back (total >= 4 && rng.below (2) ? 4 : 0);
      messages.emplace_back (total - suffixLengths.back ());
      rng.fill (messages.back ().data (), messages.back ().size ());
    }
    std::vector<Batch::Spec> specs;
    for (size_t k = 0; k < n; k++)
      specs.push_back ({rng.below (80), messages[k].data (), messages[k].size (), suffixLengths[k],
          kTagLengths[rng.below (3)]});
    Batch batch (specs, rng);
    batch.run ();
    ASSERT_EQ (toHex (batch.tags ()), toHex (batch.expected ())) << "round " << round;
  }
}

/* Same-length groups of eight go through the vector kernel, the one the
 * test chose or else the default (the results are checked above; here,
 * which kernel ran). */
TEST_P (HmacSha1Many, TakesTheChosenKernel)
{
  if (!sha1x8::available ())
    GTEST_SKIP () << "no AVX2: the scalar path only";
  const sha1x8::Kernel chosen = GetParam ().kernel.value_or (sha1x8::kernel ());
  const sha1x8::Kernel other =
      chosen == sha1x8::Kernel::Avx2 ? sha1x8::Kernel::Avx512 : sha1x8::Kernel::Avx2;
  EXPECT_EQ (sha1x8::kernel (), chosen);

  fanouttest::Rng rng (80);
  Bytes message (1200);
  rng.fill (message.data (), message.size ());
  std::vector<Batch::Spec> specs;
  for (size_t k = 0; k < 16; k++)
    specs.push_back ({16, message.data (), message.size (), 4, 10});
  Batch batch (specs, rng);
  const uint64_t before = sha1x8::groupsHashed (chosen);
  const uint64_t otherBefore = sha1x8::groupsHashed (other);
  batch.run ();
  EXPECT_EQ (sha1x8::groupsHashed (chosen) - before, 2u);
  EXPECT_EQ (sha1x8::groupsHashed (other), otherBefore);
  EXPECT_EQ (toHex (batch.tags ()), toHex (batch.expected ()));
}

TEST (HmacSha1Kernel, SupportedWhereTheCpuHasTheInstructions)
{
#if defined(__x86_64__)
  const bool avx2 = __builtin_cpu_supports ("avx2");
  const bool avx512 =
      avx2 && __builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("avx512vl");
#else
  const bool avx2 = false, avx512 = false;
#endif
  EXPECT_EQ (sha1x8::available (), avx2);
  EXPECT_EQ (sha1x8::supported (sha1x8::Kernel::Avx2), avx2);
  EXPECT_EQ (sha1x8::supported (sha1x8::Kernel::Avx512), avx512);
  /* a kernel the CPU cannot run is refused */
  EXPECT_EQ (sha1x8::setKernelForTesting (sha1x8::Kernel::Avx512), avx512);
  EXPECT_TRUE (sha1x8::setKernelForTesting (std::nullopt));
}

/* Without a test's choice (a fresh thread: the choice is per thread), the
 * AVX-512 kernel hashes the groups wherever the CPU has it. */
TEST (HmacSha1Kernel, TakesAvx512ByDefaultWhereSupported)
{
  if (!sha1x8::available ())
    GTEST_SKIP () << "no AVX2: the scalar path only";
  const sha1x8::Kernel expected = sha1x8::supported (sha1x8::Kernel::Avx512)
      ? sha1x8::Kernel::Avx512
      : sha1x8::Kernel::Avx2;

  fanouttest::Rng rng (81);
  Bytes message (160);
  rng.fill (message.data (), message.size ());
  std::vector<Batch::Spec> specs;
  for (size_t k = 0; k < 8; k++)
    specs.push_back ({16, message.data (), message.size (), 4, 10});
  Batch batch (specs, rng);
  sha1x8::Kernel kernel = sha1x8::Kernel::Avx2;
  uint64_t avx2Groups = 0, avx512Groups = 0;
  std::thread thread ([&] {
    kernel = sha1x8::kernel ();
    batch.run ();
    avx2Groups = sha1x8::groupsHashed (sha1x8::Kernel::Avx2);
    avx512Groups = sha1x8::groupsHashed (sha1x8::Kernel::Avx512);
  });
  thread.join ();
  EXPECT_EQ (kernel, expected);
  EXPECT_EQ (avx512Groups, expected == sha1x8::Kernel::Avx512 ? 1u : 0u);
  EXPECT_EQ (avx2Groups, expected == sha1x8::Kernel::Avx2 ? 1u : 0u);
  EXPECT_EQ (toHex (batch.tags ()), toHex (batch.expected ()));
}
