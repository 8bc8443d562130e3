/* HMAC-SHA1 with the key schedule done once: the inner and outer hash
 * states after the padded key are kept, and each message starts from a
 * copy of them (no allocation per message, unlike HMAC_Init_ex or
 * EVP_MAC_init on OpenSSL 3.0, which allocate twice per reinit). */
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace xdn::fanout {

class HmacSha1 {
public:
  static constexpr size_t kDigestSize = 20;

  HmacSha1 ();
  ~HmacSha1 ();
  HmacSha1 (const HmacSha1 &) = delete;
  HmacSha1 &operator= (const HmacSha1 &) = delete;

  /* Any key length (longer than 64 bytes is hashed first, as HMAC says). */
  bool setKey (const uint8_t *key, size_t length);

  /* begin, update..., finish: one message. */
  void begin ();
  void update (const void *data, size_t length);
  void finish (uint8_t out[kDigestSize]);

  /* One message in one call. */
  void compute (const void *data, size_t length, uint8_t out[kDigestSize])
  {
    begin ();
    update (data, length);
    finish (out);
  }

  /* One message for many (): HMAC (key, message || suffix), of which the
   * first tagLength bytes go to tag. */
  struct Job {
    const HmacSha1 *key;
    const uint8_t *message;
    size_t length;
    uint8_t suffix[4];     /* SRTP: the rollover counter */
    size_t suffixLength;
    uint8_t *tag;
    size_t tagLength;      /* at most kDigestSize */
  };

  /* Computes every job. Where the CPU allows, messages of the same length
   * are hashed several at a time in vector registers, one per lane: the
   * fan-out authenticates the same packet for each of its viewers, under
   * each viewer's key. @jobs may be reordered. */
  static void many (Job *jobs, size_t n);

private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace xdn::fanout
