/* SHA-1 of eight messages at once, one per 32-bit lane of AVX2 registers:
 * the kernel behind HmacSha1::many (). Internal to the fan-out library
 * (the unit tests use the queries below). */
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace xdn::fanout::sha1x8 {

static constexpr size_t kLanes = 8;

/* The builds of the kernel, both on eight lanes of 256-bit registers.
 * Avx512 has the same results with fewer instructions per round: one
 * rotate instead of two shifts and an or, one three-input logic
 * instruction for each round function. */
enum class Kernel { Avx2, Avx512 };

/* Whether the CPU (and the OS) can run @kernel; asked once. Always false
 * off x86-64. */
bool supported (Kernel kernel);

/* Whether any kernel can run: supported (Kernel::Avx2). */
bool available ();

/* The kernel hmac () uses on the calling thread: the fastest supported
 * one, unless a test chose another. */
Kernel kernel ();

/* For tests: makes hmac () on the calling thread use @kernel (nullopt: the
 * default again). Returns false, and changes nothing, if @kernel is not
 * supported. */
bool setKernelForTesting (std::optional<Kernel> kernel);

/* How many groups of lanes @kernel has hashed on the calling thread: lets
 * a test see which path was taken. */
uint64_t groupsHashed (Kernel kernel);

/* HMAC-SHA1 in eight lanes. Lane l starts from inner[.][l] (the state after
 * key ^ ipad), hashes @messageBlocks 64-byte blocks read from messages[l]
 * and @tailBlocks blocks from tails[l] (the end of the message, already
 * padded with the total length), then hashes the 20-byte inner digest from
 * outer[.][l]. digest[i][l] is word i of lane l's HMAC (as SHA-1 writes it
 * big-endian). Only to be called when available (). */
void hmac (const uint32_t inner[5][kLanes], const uint32_t outer[5][kLanes],
    const uint8_t *const messages[kLanes], size_t messageBlocks,
    const uint8_t *const tails[kLanes], size_t tailBlocks, uint32_t digest[5][kLanes]);

}  // namespace xdn::fanout::sha1x8
