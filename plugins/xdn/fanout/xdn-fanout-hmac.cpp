/* The low-level SHA1_* calls are deprecated in OpenSSL 3.0 but they are the
 * only way to restart from a saved state without allocating: copying an
 * EVP_MD_CTX allocates its provider context. They run the same assembly
 * (SHA-NI where the CPU has it). Built without the deprecated API, the
 * class falls back to EVP_MAC, which allocates per message. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "xdn-fanout-hmac.h"

#include <openssl/crypto.h>
#include <openssl/opensslconf.h>

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

}  // namespace xdn::fanout
