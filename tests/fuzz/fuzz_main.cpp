/* Drives a libFuzzer target without libFuzzer (a gcc build, the test
 * suite): replays the files given on the command line, or runs seeded
 * mutations of the valid inputs the target gives (fuzzSeeds): bit flips,
 * overwritten and inserted bytes, truncations, splices of two seeds.
 *
 *   fuzz-TARGET [--runs N] [--seed S] [FILE...] */
#include "fuzz-seeds.h"

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

using Bytes = std::vector<uint8_t>;

namespace {

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
  const std::vector<Bytes> seeds = fuzzSeeds ();
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
