/* Drives a libFuzzer target without libFuzzer (a gcc build, the test
 * suite): replays the files given on the command line, or runs seeded
 * mutations of valid messages the fan-out's port reads (a STUN Binding
 * request as a browser sends it, an RTCP compound packet with every
 * feedback format the fan-out reads, a DTLS ClientHello): bit flips,
 * overwritten and inserted bytes, truncations, splices of two seeds.
 *
 *   fuzz-fanout-input [--runs N] [--seed S] [FILE...] */
#include "xdn-fanout-dtls.h"
#include "xdn-fanout-stun.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

using namespace xdn::fanout;
using Bytes = std::vector<uint8_t>;

namespace {

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

Bytes
clientHelloSeed ()
{
  auto server = DtlsContext::create (DtlsCertificate::generate ());
  auto client = DtlsContext::create (DtlsCertificate::generate ());
  Bytes hello;
  DtlsSession session (client, DtlsRole::Client, server->certificate ().fingerprint (),
      [&hello] (const uint8_t *d, size_t n) {
        if (hello.empty ())
          hello.assign (d, d + n);
      });
  session.start ();
  return hello;
}

Bytes
mutate (const std::vector<Bytes> &seeds, std::mt19937 &rng)
{
  Bytes b = seeds[rng () % seeds.size ()];
  const unsigned edits = 1 + rng () % 8;
  for (unsigned i = 0; i < edits; i++) {
    switch (rng () % 6) {
      case 0:  /* flip a bit */
        if (!b.empty ())
          b[rng () % b.size ()] ^= static_cast<uint8_t> (1u << (rng () % 8));
        break;
      case 1:  /* an interesting byte */
        if (!b.empty ()) {
          static const uint8_t values[] = {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff};
          b[rng () % b.size ()] = values[rng () % sizeof values];
        }
        break;
      case 2:  /* truncate */
        b.resize (b.empty () ? 0 : rng () % b.size ());
        break;
      case 3:  /* insert random bytes */
        {
          const size_t at = b.empty () ? 0 : rng () % (b.size () + 1);
          Bytes extra (1 + rng () % 16);
          for (auto &x : extra)
            x = static_cast<uint8_t> (rng ());
          b.insert (b.begin () + static_cast<long> (at), extra.begin (), extra.end ());
        }
        break;
      case 4:  /* splice with another seed */
        {
          const Bytes &other = seeds[rng () % seeds.size ()];
          const size_t keep = b.empty () ? 0 : rng () % b.size ();
          const size_t from = other.empty () ? 0 : rng () % other.size ();
          b.resize (keep);
          b.insert (b.end (), other.begin () + static_cast<long> (from), other.end ());
        }
        break;
      default:  /* a 16-bit length field set large */
        if (b.size () >= 4) {
          const size_t at = rng () % (b.size () - 1);
          b[at] = 0xff;
          b[at + 1] = static_cast<uint8_t> (rng ());
        }
        break;
    }
  }
  return b;
}

}  // namespace

int
main (int argc, char **argv)
{
  unsigned long runs = 20000, seed = 1;
  std::vector<std::string> files;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp (argv[i], "--runs") && i + 1 < argc)
      runs = std::strtoul (argv[++i], nullptr, 10);
    else if (!std::strcmp (argv[i], "--seed") && i + 1 < argc)
      seed = std::strtoul (argv[++i], nullptr, 10);
    else
      files.push_back (argv[i]);
  }
  if (!files.empty ()) {
    for (const auto &f : files) {
      std::ifstream in (f, std::ios::binary);
      if (!in) {
        std::fprintf (stderr, "cannot read %s\n", f.c_str ());
        return 2;
      }
      Bytes b ((std::istreambuf_iterator<char> (in)), std::istreambuf_iterator<char> ());
      LLVMFuzzerTestOneInput (b.data (), b.size ());
    }
    std::printf ("%zu inputs replayed\n", files.size ());
    return 0;
  }
  const std::vector<Bytes> seeds = {stunSeed (), rtcpSeed (), clientHelloSeed ()};
  for (const auto &s : seeds)
    LLVMFuzzerTestOneInput (s.data (), s.size ());
  std::mt19937 rng (static_cast<uint32_t> (seed));
  for (unsigned long i = 0; i < runs; i++) {
    const Bytes b = mutate (seeds, rng);
    LLVMFuzzerTestOneInput (b.data (), b.size ());
  }
  std::printf ("%lu mutated inputs (seed %lu) and %zu seeds, no crash\n", runs, seed, seeds.size ());
  return 0;
}
