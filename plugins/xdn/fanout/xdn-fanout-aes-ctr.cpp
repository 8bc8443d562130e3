/* AES-128-CTR with AES-NI or VAES. Only the functions that use the
 * instructions are built for them (target attributes): the rest of the
 * library stays on the baseline x86-64, and the kernel is chosen at run
 * time.
 *
 * Many counter blocks go through the rounds together: an AESENC takes a
 * few cycles to give its result but the CPU starts one or two a cycle, so
 * independent blocks keep it busy where one would wait. */
#include "xdn-fanout-aes-ctr.h"

#include <openssl/crypto.h>

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace xdn::fanout {

Aes128Ctr::~Aes128Ctr ()
{
  OPENSSL_cleanse (roundKeys_, sizeof (roundKeys_));
}

#if defined(__x86_64__)

#define XDN_AESNI __attribute__ ((target ("aes,ssse3")))

namespace {

constexpr size_t kBlock = 16;
constexpr size_t kParallel = 8;

/* FIPS-197 5.2 for a 128-bit key: the next round key from @key and
 * AESKEYGENASSIST's output for it. */
XDN_AESNI inline __m128i
nextRoundKey (__m128i key, __m128i assist)
{
  assist = _mm_shuffle_epi32 (assist, 0xFF);
  key = _mm_xor_si128 (key, _mm_slli_si128 (key, 4));
  key = _mm_xor_si128 (key, _mm_slli_si128 (key, 4));
  key = _mm_xor_si128 (key, _mm_slli_si128 (key, 4));
  return _mm_xor_si128 (key, assist);
}

template <int Rcon>
XDN_AESNI inline __m128i
expand (__m128i key)
{
  return nextRoundKey (key, _mm_aeskeygenassist_si128 (key, Rcon));
}

XDN_AESNI void
expandKey (const uint8_t key[16], uint8_t out[11][16])
{
  __m128i k[11];
  k[0] = _mm_loadu_si128 (reinterpret_cast<const __m128i *> (key));
  k[1] = expand<0x01> (k[0]);
  k[2] = expand<0x02> (k[1]);
  k[3] = expand<0x04> (k[2]);
  k[4] = expand<0x08> (k[3]);
  k[5] = expand<0x10> (k[4]);
  k[6] = expand<0x20> (k[5]);
  k[7] = expand<0x40> (k[6]);
  k[8] = expand<0x80> (k[7]);
  k[9] = expand<0x1B> (k[8]);
  k[10] = expand<0x36> (k[9]);
  for (int i = 0; i < 11; i++)
    _mm_store_si128 (reinterpret_cast<__m128i *> (out[i]), k[i]);
}

/* The counter block is kept byte-reversed, so that its last 32 bits
 * (big-endian in the block) are the lowest 32-bit lane: block i is then
 * one add and one shuffle back. */
XDN_AESNI inline __m128i
byteReversal ()
{
  return _mm_set_epi8 (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

XDN_AESNI inline __m128i
reverseBytes (__m128i x)
{
  return _mm_shuffle_epi8 (x, byteReversal ());
}

XDN_AESNI inline __m128i
counterBlock (__m128i reversed, uint32_t block)
{
  return reverseBytes (_mm_add_epi32 (reversed, _mm_cvtsi32_si128 (static_cast<int> (block))));
}

/* AES-NI on XMM registers: eight blocks at a time. The round keys are
 * read from memory in each round (an L1 hit): eight blocks and eleven
 * keys would not fit in the sixteen registers. */
XDN_AESNI void
ctr (const uint8_t roundKeys[11][16], const uint8_t iv[16], uint8_t *data, size_t length)
{
  const __m128i *k = reinterpret_cast<const __m128i *> (roundKeys);
  const __m128i reversed = reverseBytes (_mm_loadu_si128 (reinterpret_cast<const __m128i *> (iv)));
  uint32_t block = 0;

  for (; length >= kParallel * kBlock; length -= kParallel * kBlock, data += kParallel * kBlock) {
    __m128i b[kParallel];
#pragma GCC unroll 8
    for (size_t j = 0; j < kParallel; j++)
      b[j] = _mm_xor_si128 (counterBlock (reversed, block++), _mm_load_si128 (k));
    for (int r = 1; r < 10; r++) {
      const __m128i key = _mm_load_si128 (k + r);
#pragma GCC unroll 8
      for (size_t j = 0; j < kParallel; j++)
        b[j] = _mm_aesenc_si128 (b[j], key);
    }
    const __m128i last = _mm_load_si128 (k + 10);
#pragma GCC unroll 8
    for (size_t j = 0; j < kParallel; j++) {
      __m128i *at = reinterpret_cast<__m128i *> (data + j * kBlock);
      _mm_storeu_si128 (at, _mm_xor_si128 (_mm_loadu_si128 (at), _mm_aesenclast_si128 (b[j], last)));
    }
  }

  for (; length > 0; block++) {
    __m128i b = _mm_xor_si128 (counterBlock (reversed, block), _mm_load_si128 (k));
    for (int r = 1; r < 10; r++)
      b = _mm_aesenc_si128 (b, _mm_load_si128 (k + r));
    b = _mm_aesenclast_si128 (b, _mm_load_si128 (k + 10));
    if (length >= kBlock) {
      __m128i *at = reinterpret_cast<__m128i *> (data);
      _mm_storeu_si128 (at, _mm_xor_si128 (_mm_loadu_si128 (at), b));
      data += kBlock;
      length -= kBlock;
    } else {
      alignas (16) uint8_t keystream[kBlock];
      _mm_store_si128 (reinterpret_cast<__m128i *> (keystream), b);
      for (size_t i = 0; i < length; i++)
        data[i] ^= keystream[i];
      OPENSSL_cleanse (keystream, sizeof (keystream));
      length = 0;
    }
  }
}

#define XDN_VAES __attribute__ ((target ("aes,ssse3,vaes,avx512f,avx512bw")))

constexpr size_t kGroup = 4 * kBlock;   /* the blocks of one ZMM register */

/* @x in each 128-bit lane. (The masked form: GCC 12 warns that the
 * unmasked one reads an undefined register.) */
XDN_VAES inline __m512i
broadcast (__m128i x)
{
  return _mm512_maskz_broadcast_i32x4 (0xFFFF, x);
}

/* @G groups of four counter blocks through the rounds together, XORed
 * into the (up to) G * 64 bytes at @data: @length bytes, the last group's
 * through masked loads and stores. */
template <int G>
XDN_VAES inline void
groupsVaes (const __m512i k[11], __m512i &counters, uint8_t *data, size_t length)
{
  const __m512i reverse = broadcast (byteReversal ());
  const __m512i four = _mm512_set_epi32 (0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4);
  __m512i b[G];
#pragma GCC unroll 8
  for (int j = 0; j < G; j++) {
    b[j] = _mm512_xor_si512 (_mm512_shuffle_epi8 (counters, reverse), k[0]);
    counters = _mm512_add_epi32 (counters, four);
  }
  for (int r = 1; r < 10; r++)
#pragma GCC unroll 8
    for (int j = 0; j < G; j++)
      b[j] = _mm512_aesenc_epi128 (b[j], k[r]);
#pragma GCC unroll 8
  for (int j = 0; j < G; j++) {
    uint8_t *at = data + j * kGroup;
    const size_t n = length - j * kGroup;
    const __mmask64 mask = n >= kGroup ? ~__mmask64 (0) : (__mmask64 (1) << n) - 1;
    _mm512_mask_storeu_epi8 (at, mask,
        _mm512_xor_si512 (_mm512_maskz_loadu_epi8 (mask, at), _mm512_aesenclast_epi128 (b[j], k[10])));
  }
}

/* VAES on ZMM registers: four blocks per instruction, up to eight
 * registers at a time so that the rounds' latency is hidden. */
XDN_VAES void
ctrVaes (const uint8_t roundKeys[11][16], const uint8_t iv[16], uint8_t *data, size_t length)
{
  __m512i k[11];
  for (int i = 0; i < 11; i++)
    k[i] = broadcast (_mm_load_si128 (reinterpret_cast<const __m128i *> (roundKeys[i])));
  const __m512i reverse = broadcast (byteReversal ());
  /* lane l of the first register is block l */
  __m512i counters = _mm512_add_epi32 (
      _mm512_shuffle_epi8 (
          broadcast (_mm_loadu_si128 (reinterpret_cast<const __m128i *> (iv))), reverse),
      _mm512_set_epi32 (0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0));

  for (; length >= 8 * kGroup; length -= 8 * kGroup, data += 8 * kGroup)
    groupsVaes<8> (k, counters, data, 8 * kGroup);
  switch ((length + kGroup - 1) / kGroup) {
    case 0: break;
    case 1: groupsVaes<1> (k, counters, data, length); break;
    case 2: groupsVaes<2> (k, counters, data, length); break;
    case 3: groupsVaes<3> (k, counters, data, length); break;
    case 4: groupsVaes<4> (k, counters, data, length); break;
    case 5: groupsVaes<5> (k, counters, data, length); break;
    case 6: groupsVaes<6> (k, counters, data, length); break;
    case 7: groupsVaes<7> (k, counters, data, length); break;
    default: groupsVaes<8> (k, counters, data, length); break;
  }
}

}  // namespace

bool
Aes128Ctr::supported (Kernel kernel)
{
  /* libgcc's checks include the OS saving the ZMM registers (XGETBV) */
  static const bool aesNi = __builtin_cpu_supports ("aes") && __builtin_cpu_supports ("ssse3");
  static const bool vaes = aesNi && __builtin_cpu_supports ("vaes") &&
      __builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("avx512bw");
  switch (kernel) {
    case Kernel::None: return false;
    case Kernel::AesNi: return aesNi;
    case Kernel::Vaes: return vaes;
  }
  return false;
}

Aes128Ctr::Kernel
Aes128Ctr::best ()
{
  static const Kernel kernel = supported (Kernel::Vaes) ? Kernel::Vaes
      : supported (Kernel::AesNi)                       ? Kernel::AesNi
                                                        : Kernel::None;
  return kernel;
}

bool
Aes128Ctr::setKey (const uint8_t key[16], Kernel kernel)
{
  kernel_ = Kernel::None;
  if (!supported (kernel))
    return false;
  expandKey (key, roundKeys_);
  kernel_ = kernel;
  return true;
}

void
Aes128Ctr::apply (const uint8_t iv[16], uint8_t *data, size_t length) const
{
  if (kernel_ == Kernel::Vaes)
    ctrVaes (roundKeys_, iv, data, length);
  else if (kernel_ == Kernel::AesNi)
    ctr (roundKeys_, iv, data, length);
}

#else

bool
Aes128Ctr::supported (Kernel)
{
  return false;
}

Aes128Ctr::Kernel
Aes128Ctr::best ()
{
  return Kernel::None;
}

bool
Aes128Ctr::setKey (const uint8_t *, Kernel)
{
  kernel_ = Kernel::None;
  return false;
}

void
Aes128Ctr::apply (const uint8_t *, uint8_t *, size_t) const
{
}

#endif

const char *
Aes128Ctr::kernelName (Kernel kernel)
{
  switch (kernel) {
    case Kernel::None: return "none";
    case Kernel::AesNi: return "aes-ni";
    case Kernel::Vaes: return "vaes";
  }
  return "unknown";
}

}  // namespace xdn::fanout
