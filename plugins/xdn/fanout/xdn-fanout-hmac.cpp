/* The low-level SHA1_* calls are deprecated in OpenSSL 3.0 but they are the
 * only way to restart from a saved state without allocating: copying an
 * EVP_MD_CTX allocates its provider context. They run the same assembly
 * (SHA-NI where the CPU has it). Built without the deprecated API, the
 * class falls back to EVP_MAC, which allocates per message. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "xdn-fanout-hmac.h"
#include "xdn-fanout-sha1-x8.h"

#include <openssl/crypto.h>
#include <openssl/opensslconf.h>

#include <algorithm>
#include <cstring>

#if defined(OPENSSL_NO_DEPRECATED_3_0)
#define XDN_HMAC_EVP_MAC 1
#include <openssl/core_names.h>
#include <openssl/evp.h>
#else
#include <openssl/sha.h>
#endif

namespace xdn::fanout {

#if !defined(XDN_HMAC_EVP_MAC)

struct HmacSha1::State {
  SHA_CTX inner;  /* after (key ^ ipad) */
  SHA_CTX outer;  /* after (key ^ opad) */
  SHA_CTX work;
};

HmacSha1::HmacSha1 () : s_ (new State ())
{
  setKey (nullptr, 0);
}

HmacSha1::~HmacSha1 ()
{
  OPENSSL_cleanse (s_.get (), sizeof (State));
}

bool
HmacSha1::setKey (const uint8_t *key, size_t length)
{
  uint8_t block[64] = {};
  if (length > sizeof (block)) {
    SHA1 (key, length, block);
  } else if (length > 0) {
    memcpy (block, key, length);
  }
  uint8_t pad[64];
  for (size_t i = 0; i < 64; i++)
    pad[i] = block[i] ^ 0x36;
  SHA1_Init (&s_->inner);
  SHA1_Update (&s_->inner, pad, sizeof (pad));
  for (size_t i = 0; i < 64; i++)
    pad[i] = block[i] ^ 0x5c;
  SHA1_Init (&s_->outer);
  SHA1_Update (&s_->outer, pad, sizeof (pad));
  OPENSSL_cleanse (block, sizeof (block));
  OPENSSL_cleanse (pad, sizeof (pad));
  return true;
}

void
HmacSha1::begin ()
{
  s_->work = s_->inner;
}

void
HmacSha1::update (const void *data, size_t length)
{
  SHA1_Update (&s_->work, data, length);
}

void
HmacSha1::finish (uint8_t out[kDigestSize])
{
  uint8_t inner[kDigestSize];
  SHA1_Final (inner, &s_->work);
  s_->work = s_->outer;
  SHA1_Update (&s_->work, inner, sizeof (inner));
  SHA1_Final (out, &s_->work);
}

#else

struct HmacSha1::State {
  EVP_MAC *mac = nullptr;
  EVP_MAC_CTX *ctx = nullptr;
  ~State ()
  {
    EVP_MAC_CTX_free (ctx);
    EVP_MAC_free (mac);
  }
};

HmacSha1::HmacSha1 () : s_ (new State ())
{
  s_->mac = EVP_MAC_fetch (nullptr, "HMAC", nullptr);
  s_->ctx = s_->mac ? EVP_MAC_CTX_new (s_->mac) : nullptr;
  setKey (nullptr, 0);
}

HmacSha1::~HmacSha1 () = default;

bool
HmacSha1::setKey (const uint8_t *key, size_t length)
{
  static const uint8_t empty = 0;
  char digest[] = "SHA1";
  OSSL_PARAM params[] = {
    OSSL_PARAM_construct_utf8_string (OSSL_MAC_PARAM_DIGEST, digest, 0),
    OSSL_PARAM_construct_end (),
  };
  return s_->ctx && EVP_MAC_init (s_->ctx, key ? key : &empty, length, params) == 1;
}

void
HmacSha1::begin ()
{
  EVP_MAC_init (s_->ctx, nullptr, 0, nullptr);
}

void
HmacSha1::update (const void *data, size_t length)
{
  EVP_MAC_update (s_->ctx, static_cast<const unsigned char *> (data), length);
}

void
HmacSha1::finish (uint8_t out[kDigestSize])
{
  size_t len = 0;
  EVP_MAC_final (s_->ctx, out, &len, kDigestSize);
}

#endif

namespace {

void
manyScalar (HmacSha1::Job *jobs, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    HmacSha1::Job &j = jobs[i];
    HmacSha1 &key = const_cast<HmacSha1 &> (*j.key);
    uint8_t mac[HmacSha1::kDigestSize];
    key.begin ();
    key.update (j.message, j.length);
    key.update (j.suffix, j.suffixLength);
    key.finish (mac);
    memcpy (j.tag, mac, j.tagLength);
  }
}

#if !defined(XDN_HMAC_EVP_MAC)

/* Eight lanes take about as long as 4.4 HMACs one at a time on a CPU
 * with SHA-NI (fewer without): from five jobs of one length on, the
 * kernel with idle lanes wins. */
constexpr size_t kMinLanes = 5;

size_t
totalLength (const HmacSha1::Job &j)
{
  return j.length + j.suffixLength;
}

#endif

}  // namespace

void
HmacSha1::many (Job *jobs, size_t n)
{
#if !defined(XDN_HMAC_EVP_MAC)
  using sha1x8::kLanes;
  if (n < kMinLanes || !sha1x8::available ()) {
    manyScalar (jobs, n);
    return;
  }

  /* Lanes advance in step, so a group shares its number of blocks: jobs
   * of the same total length side by side (in the fan-out they usually
   * all are). */
  auto shorter = [] (const Job &a, const Job &b) { return totalLength (a) < totalLength (b); };
  if (!std::is_sorted (jobs, jobs + n, shorter))
    std::sort (jobs, jobs + n, shorter);

  uint32_t inner[5][kLanes], outer[5][kLanes], digest[5][kLanes];
  const uint8_t *messages[kLanes], *tails[kLanes];
  /* The last blocks of each lane: the message from its last whole block
   * on, the suffix and the padding. Lengths in a group differ by the
   * suffix at most, so two blocks always hold them; three for safety. */
  static constexpr size_t kTailBlocks = 3;
  uint8_t tailData[kLanes][kTailBlocks * 64];

  for (size_t i = 0; i < n;) {
    const size_t total = totalLength (jobs[i]);
    size_t end = i + 1;
    while (end < n && totalLength (jobs[end]) == total)
      end++;
    const size_t blocks = (total + 1 + 8 + 63) / 64;
    while (end - i >= kMinLanes) {
      const size_t lanes = std::min (end - i, kLanes);
      Job *group = jobs + i;
      size_t whole = group[0].length / 64;
      bool fits = true;
      for (size_t l = 0; l < lanes; l++) {
        whole = std::min (whole, group[l].length / 64);
        fits = fits && group[l].suffixLength <= sizeof (group[l].suffix);
      }
      const size_t tailBlocks = blocks - whole;
      if (!fits || tailBlocks > kTailBlocks)
        break;
      /* the bit length counts the key block before the message */
      const uint64_t bits = (64 + static_cast<uint64_t> (total)) * 8;
      for (size_t l = 0; l < kLanes; l++) {
        if (l >= lanes) {
          /* an idle lane hashes a copy of the last one, and is dropped */
          for (int w = 0; w < 5; w++) {
            inner[w][l] = inner[w][lanes - 1];
            outer[w][l] = outer[w][lanes - 1];
          }
          messages[l] = messages[lanes - 1];
          tails[l] = tails[lanes - 1];
          continue;
        }
        const Job &j = group[l];
        const SHA_CTX &ki = j.key->s_->inner, &ko = j.key->s_->outer;
        inner[0][l] = ki.h0, inner[1][l] = ki.h1, inner[2][l] = ki.h2;
        inner[3][l] = ki.h3, inner[4][l] = ki.h4;
        outer[0][l] = ko.h0, outer[1][l] = ko.h1, outer[2][l] = ko.h2;
        outer[3][l] = ko.h3, outer[4][l] = ko.h4;
        messages[l] = j.message;
        uint8_t *t = tailData[l];
        const size_t rest = j.length - whole * 64;
        memcpy (t, j.message + whole * 64, rest);
        memcpy (t + rest, j.suffix, j.suffixLength);
        size_t at = rest + j.suffixLength;
        t[at++] = 0x80;
        const size_t last = tailBlocks * 64 - 8;
        memset (t + at, 0, last - at);
        for (int b = 0; b < 8; b++)
          t[last + b] = static_cast<uint8_t> (bits >> (56 - 8 * b));
        tails[l] = t;
      }
      sha1x8::hmac (inner, outer, messages, whole, tails, tailBlocks, digest);
      for (size_t l = 0; l < lanes; l++) {
        uint8_t mac[kDigestSize];
        for (int w = 0; w < 5; w++) {
          mac[4 * w] = static_cast<uint8_t> (digest[w][l] >> 24);
          mac[4 * w + 1] = static_cast<uint8_t> (digest[w][l] >> 16);
          mac[4 * w + 2] = static_cast<uint8_t> (digest[w][l] >> 8);
          mac[4 * w + 3] = static_cast<uint8_t> (digest[w][l]);
        }
        memcpy (group[l].tag, mac, group[l].tagLength);
      }
      i += lanes;
    }
    manyScalar (jobs + i, end - i);
    i = end;
  }
  OPENSSL_cleanse (inner, sizeof (inner));
  OPENSSL_cleanse (outer, sizeof (outer));
#else
  manyScalar (jobs, n);
#endif
}

}  // namespace xdn::fanout
