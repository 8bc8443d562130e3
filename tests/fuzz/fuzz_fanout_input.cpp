/* Fuzz target: what the fan-out's UDP port reads from anyone, before it
 * knows who sent it, and what a viewer may send once it is known.
 *
 * Each input goes to the STUN parser (then the FINGERPRINT and
 * MESSAGE-INTEGRITY checks of whatever parses), the RTCP compound parser
 * (every feedback format, transport-cc included), and a DTLS server
 * session, as a first datagram and again after a real ClientHello, the
 * state in which the port meets most garbage. Nothing may crash, hang or
 * read out of bounds (build with sanitizers to see the latter).
 *
 * Built with libFuzzer (meson -Dfuzzing=true, clang):
 *   build/tests/fuzz/fuzz-fanout-input corpus/
 * Otherwise fuzz_main.cpp drives it from seeded mutations of valid
 * messages (the unit-fuzz-fanout-input test). */
#include "fuzz-seeds.h"
#include "xdn-fanout-dtls.h"
#include "xdn-fanout-rtcp.h"
#include "xdn-fanout-stun.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

using namespace xdn::fanout;
using Bytes = std::vector<uint8_t>;

namespace {

struct Peers {
  std::shared_ptr<DtlsContext> server;
  std::shared_ptr<DtlsContext> client;
  std::vector<uint8_t> clientHello;
};

const Peers &
peers ()
{
  static const Peers p = [] {
    Peers p;
    p.server = DtlsContext::create (DtlsCertificate::generate ());
    p.client = DtlsContext::create (DtlsCertificate::generate ());
    DtlsSession client (p.client, DtlsRole::Client, p.server->certificate ().fingerprint (),
        [&p] (const uint8_t *d, size_t n) {
          if (p.clientHello.empty ())
            p.clientHello.assign (d, d + n);
        });
    client.start ();
    return p;
  }();
  return p;
}

void
fuzzStun (const uint8_t *data, size_t size)
{
  StunMessage m;
  if (stunParse (data, size, m) != StunParseError::None)
    return;
  stunCheckFingerprint (m);
  stunCheckIntegrity (m, "an ICE password of the viewer");
  if (m.username) {
    std::string_view local, remote;
    stunSplitUsername (*m.username, local, remote);
  }
}

void
fuzzRtcp (const uint8_t *data, size_t size)
{
  struct Visitor : RtcpVisitor {
    void onTransportCc (const RtcpTransportCc &fb) override
    {
      fb.forEach ([this] (uint16_t seq, bool received, int64_t arrivalUs) {
        sum += seq + (received ? arrivalUs : 0);
      });
    }
    int64_t sum = 0;
  } visitor;
  rtcpParse (data, size, visitor);
}

void
fuzzDtls (const uint8_t *data, size_t size)
{
  const Peers &p = peers ();
  auto sink = [] (const uint8_t *, size_t) {};
  DtlsSession fresh (p.server, DtlsRole::Server, p.client->certificate ().fingerprint (), sink);
  fresh.start ();
  fresh.feed (data, size);

  DtlsSession answered (p.server, DtlsRole::Server, p.client->certificate ().fingerprint (), sink);
  answered.start ();
  if (!p.clientHello.empty ())
    answered.feed (p.clientHello.data (), p.clientHello.size ());
  answered.feed (data, size);
}

/* A STUN Binding request as a browser sends it, an RTCP compound packet
 * with every feedback format the fan-out reads. */
Bytes
stunSeed ()
{
  uint8_t buf[512];
  std::array<uint8_t, 12> id {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  StunBuilder b (buf, sizeof buf, kStunMethodBinding, StunClass::Request, id);
  b.addString (stunattr::Username, "serverufrag:viewerufrag");
  b.addU32 (stunattr::Priority, 1845501695);
  b.addU64 (0x802A /* ICE-CONTROLLING */, 0x1122334455667788ull);
  b.addFlag (stunattr::UseCandidate);
  b.addIntegrity ("an ICE password of the viewer");
  b.addFingerprint ();
  return Bytes (buf, buf + b.size ());
}

Bytes
rtcpSeed ()
{
  return {
    /* RR, one report block */
    0x81, 201, 0x00, 0x07, 0x11, 0x11, 0x11, 0x11,
    0x22, 0x22, 0x22, 0x22, 0x05, 0x00, 0x00, 0x03, 0x00, 0x00, 0x10, 0x00,
    0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    /* PLI */
    0x81, 206, 0x00, 0x02, 0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22,
    /* NACK: 1000 and 1002 */
    0x81, 205, 0x00, 0x03, 0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22,
    0x03, 0xe8, 0x00, 0x02,
    /* FIR */
    0x84, 206, 0x00, 0x04, 0x11, 0x11, 0x11, 0x11, 0x00, 0x00, 0x00, 0x00,
    0x22, 0x22, 0x22, 0x22, 0x07, 0x00, 0x00, 0x00,
    /* REMB: 1.5 Mbit/s for one SSRC */
    0x8f, 206, 0x00, 0x05, 0x11, 0x11, 0x11, 0x11, 0x00, 0x00, 0x00, 0x00,
    'R', 'E', 'M', 'B', 0x01, 0x16, 0xe3, 0x60, 0x22, 0x22, 0x22, 0x22,
    /* transport-cc: base 7, 4 packets, a run of "small delta" and deltas */
    0x8f, 205, 0x00, 0x05, 0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22,
    0x00, 0x07, 0x00, 0x04, 0x00, 0x00, 0x10, 0x01, 0x20, 0x04, 0x04, 0x08,
    0x02, 0x03, 0x00, 0x00,
    /* BYE */
    0x81, 203, 0x00, 0x01, 0x11, 0x11, 0x11, 0x11,
  };
}

}  // namespace

/* Those two and a DTLS ClientHello. */
std::vector<Bytes>
fuzzSeeds ()
{
  return {stunSeed (), rtcpSeed (), peers ().clientHello};
}

extern "C" int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzzStun (data, size);
  fuzzRtcp (data, size);
  fuzzDtls (data, size);
  return 0;
}
