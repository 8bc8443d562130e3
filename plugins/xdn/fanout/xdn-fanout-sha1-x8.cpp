/* SHA-1 in eight lanes of 256-bit registers. Only the kernel is built for
 * AVX2 or AVX-512 (target attributes): the rest of the library stays on
 * the baseline x86-64, and the kernel is chosen at run time.
 *
 * With SHA-NI a single SHA-1 is already fast; eight lanes still win
 * (for 1200-byte packets about 1.8 times the messages per second on AVX2,
 * 2.1 times on AVX-512, see tests/bench/fanout/srtp_bench.cpp) because
 * the 80 rounds are 32-bit adds, logic and rotates, of which AVX2 does
 * eight per instruction. AVX-512 (F and VL, on the same eight lanes)
 * makes a rotate one instruction instead of three and each round
 * function one instead of two to four. */
#include "xdn-fanout-sha1-x8.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace xdn::fanout::sha1x8 {

namespace {
thread_local uint64_t tGroups[2] = {0, 0};
/* -1: the default kernel; else a Kernel chosen by a test */
thread_local int tKernel = -1;
}  // namespace

uint64_t
groupsHashed (Kernel kernel)
{
  return tGroups[static_cast<int> (kernel)];
}

bool
available ()
{
  return supported (Kernel::Avx2);
}

Kernel
kernel ()
{
  static const Kernel fastest = supported (Kernel::Avx512) ? Kernel::Avx512 : Kernel::Avx2;
  return tKernel < 0 ? fastest : static_cast<Kernel> (tKernel);
}

bool
setKernelForTesting (std::optional<Kernel> kernel)
{
  if (kernel && !supported (*kernel))
    return false;
  tKernel = kernel ? static_cast<int> (*kernel) : -1;
  return true;
}

#if defined(__x86_64__)

bool
supported (Kernel kernel)
{
  /* libgcc's checks include the OS saving the YMM (and for AVX-512 the
   * ZMM and mask) registers, XGETBV */
  static const bool avx2 = __builtin_cpu_supports ("avx2");
  static const bool avx512 =
      avx2 && __builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("avx512vl");
  return kernel == Kernel::Avx512 ? avx512 : avx2;
}

namespace {

#define XDN_AVX2 __attribute__ ((target ("avx2")))
#define XDN_AVX512 __attribute__ ((target ("avx2,avx512f,avx512vl")))

/* The kernel is written once, as templates over one of the two structs of
 * operations below, always inlined into hmacAvx2 () or hmacAvx512 ().
 * GCC inlines a function only into one whose instruction set includes the
 * callee's, and a template parameter cannot choose a target: the templates
 * are built for AVX2, which both kernels include, and the AVX-512
 * operations, which cannot be inlined into them, are inlined into
 * hmacAvx512 () once the templates are (flatten). */
#define XDN_KERNEL XDN_AVX2 inline __attribute__ ((always_inline))

struct Avx2Ops {
  static XDN_AVX2 inline __m256i
  add (__m256i a, __m256i b)
  {
    return _mm256_add_epi32 (a, b);
  }

  static XDN_AVX2 inline __m256i
  broadcast (uint32_t x)
  {
    return _mm256_set1_epi32 (static_cast<int> (x));
  }

  static XDN_AVX2 inline __m256i
  zero ()
  {
    return _mm256_setzero_si256 ();
  }

  static XDN_AVX2 inline __m256i
  load (const uint32_t *p)
  {
    return _mm256_loadu_si256 (reinterpret_cast<const __m256i *> (p));
  }

  static XDN_AVX2 inline void
  store (uint32_t *p, __m256i x)
  {
    _mm256_storeu_si256 (reinterpret_cast<__m256i *> (p), x);
  }

  template <int N>
  static XDN_AVX2 inline __m256i
  rotl (__m256i x)
  {
    return _mm256_or_si256 (_mm256_slli_epi32 (x, N), _mm256_srli_epi32 (x, 32 - N));
  }

  /* the round functions: rounds 0-19, 20-39 and 60-79, 40-59 */
  static XDN_AVX2 inline __m256i
  choose (__m256i b, __m256i c, __m256i d)
  {
    return _mm256_xor_si256 (d, _mm256_and_si256 (b, _mm256_xor_si256 (c, d)));
  }

  static XDN_AVX2 inline __m256i
  parity (__m256i b, __m256i c, __m256i d)
  {
    return _mm256_xor_si256 (_mm256_xor_si256 (b, c), d);
  }

  static XDN_AVX2 inline __m256i
  majority (__m256i b, __m256i c, __m256i d)
  {
    return _mm256_or_si256 (_mm256_and_si256 (b, c), _mm256_and_si256 (d, _mm256_or_si256 (b, c)));
  }

  /* the message schedule: w[i] from w[i-3], w[i-8], w[i-14], w[i-16] */
  static XDN_AVX2 inline __m256i
  schedule (__m256i w3, __m256i w8, __m256i w14, __m256i w16)
  {
    return rotl<1> (_mm256_xor_si256 (_mm256_xor_si256 (w3, w8), _mm256_xor_si256 (w14, w16)));
  }

  /* Eight rows of eight words (one row per lane) -> eight columns (one word
   * per lane in each), with each word turned from big-endian bytes. */
  static XDN_AVX2 inline void
  loadTransposed (const uint8_t *const rows[kLanes], size_t offset, __m256i out[8])
  {
    const __m256i bswap = _mm256_setr_epi8 (3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12,
        3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
    __m256i r[8];
    for (size_t l = 0; l < kLanes; l++)
      r[l] = _mm256_shuffle_epi8 (
          _mm256_loadu_si256 (reinterpret_cast<const __m256i *> (rows[l] + offset)), bswap);
    /* pairs of rows interleaved, then quads, then the 128-bit halves */
    __m256i t0 = _mm256_unpacklo_epi32 (r[0], r[1]), t1 = _mm256_unpackhi_epi32 (r[0], r[1]);
    __m256i t2 = _mm256_unpacklo_epi32 (r[2], r[3]), t3 = _mm256_unpackhi_epi32 (r[2], r[3]);
    __m256i t4 = _mm256_unpacklo_epi32 (r[4], r[5]), t5 = _mm256_unpackhi_epi32 (r[4], r[5]);
    __m256i t6 = _mm256_unpacklo_epi32 (r[6], r[7]), t7 = _mm256_unpackhi_epi32 (r[6], r[7]);
    __m256i u0 = _mm256_unpacklo_epi64 (t0, t2), u1 = _mm256_unpackhi_epi64 (t0, t2);
    __m256i u2 = _mm256_unpacklo_epi64 (t1, t3), u3 = _mm256_unpackhi_epi64 (t1, t3);
    __m256i u4 = _mm256_unpacklo_epi64 (t4, t6), u5 = _mm256_unpackhi_epi64 (t4, t6);
    __m256i u6 = _mm256_unpacklo_epi64 (t5, t7), u7 = _mm256_unpackhi_epi64 (t5, t7);
    out[0] = _mm256_permute2x128_si256 (u0, u4, 0x20);
    out[1] = _mm256_permute2x128_si256 (u1, u5, 0x20);
    out[2] = _mm256_permute2x128_si256 (u2, u6, 0x20);
    out[3] = _mm256_permute2x128_si256 (u3, u7, 0x20);
    out[4] = _mm256_permute2x128_si256 (u0, u4, 0x31);
    out[5] = _mm256_permute2x128_si256 (u1, u5, 0x31);
    out[6] = _mm256_permute2x128_si256 (u2, u6, 0x31);
    out[7] = _mm256_permute2x128_si256 (u3, u7, 0x31);
  }
};

/* The same on AVX-512F+VL: VPROLD for the rotates and VPTERNLOGD for the
 * three-input logic, whose immediate is the truth table of (b, c, d):
 * 0xca choose, 0x96 parity, 0xe8 majority. The loads, adds and the
 * transpose are AVX2's. */
struct Avx512Ops : Avx2Ops {
  template <int N>
  static XDN_AVX512 inline __m256i
  rotl (__m256i x)
  {
    return _mm256_rol_epi32 (x, N);
  }

  static XDN_AVX512 inline __m256i
  choose (__m256i b, __m256i c, __m256i d)
  {
    return _mm256_ternarylogic_epi32 (b, c, d, 0xca);
  }

  static XDN_AVX512 inline __m256i
  parity (__m256i b, __m256i c, __m256i d)
  {
    return _mm256_ternarylogic_epi32 (b, c, d, 0x96);
  }

  static XDN_AVX512 inline __m256i
  majority (__m256i b, __m256i c, __m256i d)
  {
    return _mm256_ternarylogic_epi32 (b, c, d, 0xe8);
  }

  static XDN_AVX512 inline __m256i
  schedule (__m256i w3, __m256i w8, __m256i w14, __m256i w16)
  {
    return rotl<1> (_mm256_xor_si256 (_mm256_ternarylogic_epi32 (w3, w8, w14, 0x96), w16));
  }
};

/* One SHA-1 compression of the eight lanes' blocks in w[0..15]. */
template <class Ops>
XDN_KERNEL void
compress (__m256i h[5], __m256i w[16])
{
  __m256i a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
#pragma GCC unroll 80
  for (int i = 0; i < 80; i++) {
    if (i >= 16)
      w[i & 15] = Ops::schedule (w[(i - 3) & 15], w[(i - 8) & 15], w[(i - 14) & 15], w[i & 15]);
    __m256i f;
    uint32_t k;
    if (i < 20) {
      f = Ops::choose (b, c, d);
      k = 0x5a827999;
    } else if (i < 40) {
      f = Ops::parity (b, c, d);
      k = 0x6ed9eba1;
    } else if (i < 60) {
      f = Ops::majority (b, c, d);
      k = 0x8f1bbcdc;
    } else {
      f = Ops::parity (b, c, d);
      k = 0xca62c1d6;
    }
    /* a is the only input that the previous round has just made: add it
     * last, so that a round waits for one rotate and one add */
    __m256i t = Ops::add (Ops::template rotl<5> (a),
        Ops::add (f, Ops::add (e, Ops::add (w[i & 15], Ops::broadcast (k)))));
    e = d;
    d = c;
    c = Ops::template rotl<30> (b);
    b = a;
    a = t;
  }
  h[0] = Ops::add (h[0], a);
  h[1] = Ops::add (h[1], b);
  h[2] = Ops::add (h[2], c);
  h[3] = Ops::add (h[3], d);
  h[4] = Ops::add (h[4], e);
}

template <class Ops>
XDN_KERNEL void
compressBlocks (__m256i h[5], const uint8_t *const data[kLanes], size_t blocks)
{
  __m256i w[16];
  for (size_t b = 0; b < blocks; b++) {
    Ops::loadTransposed (data, b * 64, w);
    Ops::loadTransposed (data, b * 64 + 32, w + 8);
    compress<Ops> (h, w);
  }
}

template <class Ops>
XDN_KERNEL void
hmacLanes (const uint32_t inner[5][kLanes], const uint32_t outer[5][kLanes],
    const uint8_t *const messages[kLanes], size_t messageBlocks,
    const uint8_t *const tails[kLanes], size_t tailBlocks, uint32_t digest[5][kLanes])
{
  __m256i h[5];
  for (int i = 0; i < 5; i++)
    h[i] = Ops::load (inner[i]);
  compressBlocks<Ops> (h, messages, messageBlocks);
  compressBlocks<Ops> (h, tails, tailBlocks);

  /* The outer hash: one block of the inner digest (already one word per
   * lane, no transpose), 0x80 and the length 64 + 20 bytes in bits. */
  __m256i w[16];
  for (int i = 0; i < 5; i++)
    w[i] = h[i];
  w[5] = Ops::broadcast (0x80000000u);
  for (int i = 6; i < 15; i++)
    w[i] = Ops::zero ();
  w[15] = Ops::broadcast ((64 + 20) * 8);
  for (int i = 0; i < 5; i++)
    h[i] = Ops::load (outer[i]);
  compress<Ops> (h, w);
  for (int i = 0; i < 5; i++)
    Ops::store (digest[i], h[i]);
}

/* flatten: every operation inlined, whatever the inliner's limits, so
 * that the rounds have no calls */
XDN_AVX2 __attribute__ ((flatten)) void
hmacAvx2 (const uint32_t inner[5][kLanes], const uint32_t outer[5][kLanes],
    const uint8_t *const messages[kLanes], size_t messageBlocks,
    const uint8_t *const tails[kLanes], size_t tailBlocks, uint32_t digest[5][kLanes])
{
  hmacLanes<Avx2Ops> (inner, outer, messages, messageBlocks, tails, tailBlocks, digest);
}

XDN_AVX512 __attribute__ ((flatten)) void
hmacAvx512 (const uint32_t inner[5][kLanes], const uint32_t outer[5][kLanes],
    const uint8_t *const messages[kLanes], size_t messageBlocks,
    const uint8_t *const tails[kLanes], size_t tailBlocks, uint32_t digest[5][kLanes])
{
  hmacLanes<Avx512Ops> (inner, outer, messages, messageBlocks, tails, tailBlocks, digest);
}

}  // namespace

void
hmac (const uint32_t inner[5][kLanes], const uint32_t outer[5][kLanes],
    const uint8_t *const messages[kLanes], size_t messageBlocks,
    const uint8_t *const tails[kLanes], size_t tailBlocks, uint32_t digest[5][kLanes])
{
  const Kernel k = kernel ();
  tGroups[static_cast<int> (k)]++;
  if (k == Kernel::Avx512)
    hmacAvx512 (inner, outer, messages, messageBlocks, tails, tailBlocks, digest);
  else
    hmacAvx2 (inner, outer, messages, messageBlocks, tails, tailBlocks, digest);
}

#else

bool
supported (Kernel)
{
  return false;
}

void
hmac (const uint32_t[5][kLanes], const uint32_t[5][kLanes], const uint8_t *const[kLanes], size_t,
    const uint8_t *const[kLanes], size_t, uint32_t[5][kLanes])
{
}

#endif

}  // namespace xdn::fanout::sha1x8
