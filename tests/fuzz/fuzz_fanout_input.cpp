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
#include "xdn-fanout-dtls.h"
#include "xdn-fanout-rtcp.h"
#include "xdn-fanout-stun.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

using namespace xdn::fanout;

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

}  // namespace

extern "C" int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzzStun (data, size);
  fuzzRtcp (data, size);
  fuzzDtls (data, size);
  return 0;
}
