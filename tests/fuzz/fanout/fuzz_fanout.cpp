/* libFuzzer target for what the fan-out's UDP port reads from anyone: STUN
 * parsing and checks, the ICE-lite responder, SRTP and SRTCP unprotect.
 * Build and run (clang with libFuzzer; see docs/fanout.md):
 *   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Iplugins/xdn/fanout tests/fuzz/fanout/fuzz_fanout.cpp \
 *     plugins/xdn/fanout/xdn-fanout-{stun,ice-lite,srtp,hmac,udp}.cpp \
 *     -lcrypto -o fuzz-fanout && ./fuzz-fanout -max_total_time=60 */
#include "xdn-fanout-ice-lite.h"
#include "xdn-fanout-srtp.h"
#include "xdn-fanout-stun.h"

#include <cstring>
#include <vector>

using namespace xdn::fanout;

extern "C" int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const IceLiteCredentials viewer ("srvA", "passwordOfViewerA123456");
  static const SockAddr from = SockAddr::parse ("192.0.2.7", 40001);
  static SrtpContext contexts[3];
  static bool ready = [] {
    uint8_t keySalt[30];
    for (size_t i = 0; i < sizeof (keySalt); i++)
      keySalt[i] = static_cast<uint8_t> (i);
    return contexts[0].init (SrtpProfile::AesCm128HmacSha1_80, keySalt, keySalt + 16) &&
        contexts[1].init (SrtpProfile::AesCm128HmacSha1_32, keySalt, keySalt + 16) &&
        contexts[2].init (SrtpProfile::AeadAes128Gcm, keySalt, keySalt + 16);
  }();
  (void) ready;

  /* an exact-size copy, so that any read past the datagram is caught */
  std::vector<uint8_t> copy (data, data + size);

  StunMessage m;
  if (stunParse (copy.data (), copy.size (), m) == StunParseError::None) {
    stunCheckFingerprint (m);
    stunCheckIntegrity (m, viewer.pwd);
  }
  uint8_t reply[256];
  IceLiteLookup lookup = [] (std::string_view u) { return u == viewer.ufrag ? &viewer : nullptr; };
  iceLiteHandleRequest (copy.data (), copy.size (), from, lookup, reply, sizeof (reply));
  /* Again with a FINGERPRINT that matches, to reach the checks behind it. */
  if (size >= 28 && copy[size - 8] == 0x80 && copy[size - 7] == 0x28) {
    uint32_t crc = stunCrc32 (copy.data (), size - 8) ^ kStunFingerprintXor;
    for (int i = 0; i < 4; i++)
      copy[size - 4 + i] = static_cast<uint8_t> (crc >> (24 - 8 * i));
    iceLiteHandleRequest (copy.data (), copy.size (), from, lookup, reply, sizeof (reply));
  }

  for (auto &ctx : contexts) {
    size_t out = 0;
    std::vector<uint8_t> rtp (data, data + size), rtcp (data, data + size);
    ctx.unprotectRtp (rtp.data (), rtp.size (), out);
    ctx.unprotectRtcp (rtcp.data (), rtcp.size (), out);
  }
  return 0;
}
