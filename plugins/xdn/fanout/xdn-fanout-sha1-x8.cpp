/* SHA-1 in eight lanes of AVX2 registers. Only hmac () is built for AVX2
 * (a target attribute): the rest of the library stays on the baseline
 * x86-64, and the kernel is chosen at run time.
 *
 * With SHA-NI a single SHA-1 is already fast; eight lanes still win
 * (about 1.8 times the messages per second for 1200-byte packets, see
 * tests/bench/fanout/srtp_bench.cpp) because the 80 rounds are 32-bit
 * adds, logic and rotates, of which AVX2 does eight per instruction. */
#include "xdn-fanout-sha1-x8.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace xdn::fanout::sha1x8 {

namespace {
thread_local uint64_t tGroups = 0;
}  // namespace

uint64_t
groupsHashed ()
{
  return tGroups;
}

#if defined(__x86_64__)

bool
available ()
{
  /* libgcc's check includes the OS saving the YMM registers (XGETBV) */
  static const bool avx2 = __builtin_cpu_supports ("avx2");
  return avx2;
}

namespace {

#define XDN_AVX2 __attribute__ ((target ("avx2")))

template <int N>
XDN_AVX2 inline __m256i
rotl (__m256i x)
{
  return _mm256_or_si256 (_mm256_slli_epi32 (x, N), _mm256_srli_epi32 (x, 32 - N));
}

XDN_AVX2 inline __m256i
add (__m256i a, __m256i b)
{
  return _mm256_add_epi32 (a, b);
}

/* Eight rows of eight words (one row per lane) -> eight columns (one word
 * per lane in each), with each word turned from big-endian bytes. */
XDN_AVX2 inline void
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

/* One SHA-1 compression of the eight lanes' blocks in w[0..15]. */
XDN_AVX2 inline void
compress (__m256i h[5], __m256i w[16])
{
  __m256i a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
#pragma GCC unroll 80
  for (int i = 0; i < 80; i++) {
    if (i >= 16)
      w[i & 15] = rotl<1> (_mm256_xor_si256 (_mm256_xor_si256 (w[(i - 3) & 15], w[(i - 8) & 15]),
          _mm256_xor_si256 (w[(i - 14) & 15], w[i & 15])));
    __m256i f;
    uint32_t k;
    if (i < 20) {
      f = _mm256_xor_si256 (d, _mm256_and_si256 (b, _mm256_xor_si256 (c, d)));
      k = 0x5a827999;
    } else if (i < 40) {
      f = _mm256_xor_si256 (_mm256_xor_si256 (b, c), d);
      k = 0x6ed9eba1;
    } else if (i < 60) {
      f = _mm256_or_si256 (_mm256_and_si256 (b, c), _mm256_and_si256 (d, _mm256_or_si256 (b, c)));
      k = 0x8f1bbcdc;
    } else {
      f = _mm256_xor_si256 (_mm256_xor_si256 (b, c), d);
      k = 0xca62c1d6;
    }
    __m256i t = add (add (rotl<5> (a), f),
        add (e, add (w[i & 15], _mm256_set1_epi32 (static_cast<int> (k)))));
    e = d;
    d = c;
    c = rotl<30> (b);
    b = a;
    a = t;
  }
  h[0] = add (h[0], a);
  h[1] = add (h[1], b);
  h[2] = add (h[2], c);
  h[3] = add (h[3], d);
  h[4] = add (h[4], e);
}

XDN_AVX2 inline void
compressBlocks (__m256i h[5], const uint8_t *const data[kLanes], size_t blocks)
{
  __m256i w[16];
  for (size_t b = 0; b < blocks; b++) {
    loadTransposed (data, b * 64, w);
    loadTransposed (data, b * 64 + 32, w + 8);
    compress (h, w);
  }
}

XDN_AVX2 void
hmacAvx2 (const uint32_t inner[5][kLanes], const uint32_t outer[5][kLanes],
    const uint8_t *const messages[kLanes], size_t messageBlocks,
    const uint8_t *const tails[kLanes], size_t tailBlocks, uint32_t digest[5][kLanes])
{
  __m256i h[5];
  for (int i = 0; i < 5; i++)
    h[i] = _mm256_loadu_si256 (reinterpret_cast<const __m256i *> (inner[i]));
  compressBlocks (h, messages, messageBlocks);
  compressBlocks (h, tails, tailBlocks);

  /* The outer hash: one block of the inner digest (already one word per
   * lane, no transpose), 0x80 and the length 64 + 20 bytes in bits. */
  __m256i w[16];
  for (int i = 0; i < 5; i++)
    w[i] = h[i];
  w[5] = _mm256_set1_epi32 (static_cast<int> (0x80000000u));
  for (int i = 6; i < 15; i++)
    w[i] = _mm256_setzero_si256 ();
  w[15] = _mm256_set1_epi32 ((64 + 20) * 8);
  for (int i = 0; i < 5; i++)
    h[i] = _mm256_loadu_si256 (reinterpret_cast<const __m256i *> (outer[i]));
  compress (h, w);
  for (int i = 0; i < 5; i++)
    _mm256_storeu_si256 (reinterpret_cast<__m256i *> (digest[i]), h[i]);
}

}  // namespace

void
hmac (const uint32_t inner[5][kLanes], const uint32_t outer[5][kLanes],
    const uint8_t *const messages[kLanes], size_t messageBlocks,
    const uint8_t *const tails[kLanes], size_t tailBlocks, uint32_t digest[5][kLanes])
{
  tGroups++;
  hmacAvx2 (inner, outer, messages, messageBlocks, tails, tailBlocks, digest);
}

#else

bool
available ()
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
