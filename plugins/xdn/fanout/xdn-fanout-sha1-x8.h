/* SHA-1 of eight messages at once, one per 32-bit lane of AVX2 registers:
 * the kernel behind HmacSha1::many (). Internal to the fan-out library
 * (the unit tests use the two queries below). */
#pragma once

#include <cstddef>
#include <cstdint>

namespace xdn::fanout::sha1x8 {

static constexpr size_t kLanes = 8;

/* Whether the CPU (and the OS) can run the kernel; asked once. Always false
 * off x86-64. */
bool available ();

/* How many groups of lanes the kernel has hashed on the calling thread:
 * lets a test see that the vector path was taken. */
uint64_t groupsHashed ();

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
