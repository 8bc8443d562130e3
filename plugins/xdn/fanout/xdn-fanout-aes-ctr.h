/* AES-128 in counter mode on the CPU's AES instructions: the cipher of
 * SRTP's AES-CM profiles (RFC 3711 4.1.1), the one browsers negotiate by
 * default. Internal to the fan-out library.
 *
 * An SRTP packet is a few hundred bytes: with OpenSSL's EVP, setting the
 * counter block of every packet (parameter lookups by name) costs more than
 * encrypting it. Here the key schedule is made once and a packet is one
 * call that only runs the rounds. Where the CPU has no AES instructions,
 * best () is None and the caller stays on OpenSSL. */
#pragma once

#include <cstddef>
#include <cstdint>

namespace xdn::fanout {

class Aes128Ctr {
public:
  /* The instructions a context runs on. */
  enum class Kernel {
    None,   /* no AES instructions: the caller stays on OpenSSL */
    AesNi,  /* AES-NI on XMM registers (and SSSE3) */
    Vaes,   /* VAES on ZMM registers (AVX-512F and BW): four blocks each */
  };

  /* The fastest kernel the CPU (and the OS) can run; asked once. Always
   * None off x86-64. */
  static Kernel best ();
  static bool supported (Kernel kernel);
  static const char *kernelName (Kernel kernel);

  Aes128Ctr () = default;
  ~Aes128Ctr ();
  Aes128Ctr (const Aes128Ctr &) = delete;
  Aes128Ctr &operator= (const Aes128Ctr &) = delete;

  /* Expands @key for @kernel; false (and nothing set) when the kernel is
   * None or not supported. */
  bool setKey (const uint8_t key[16], Kernel kernel = best ());
  bool ready () const { return kernel_ != Kernel::None; }
  Kernel kernel () const { return kernel_; }

  /* XORs @length bytes at @data, in place, with the keystream that starts
   * at counter block @iv. The block counter is the last 32 bits of the
   * block, big-endian, and must not wrap within the call: SRTP's counter
   * blocks end in 16 zero bits and a packet is far under 2^16 blocks. */
  void apply (const uint8_t iv[16], uint8_t *data, size_t length) const;

private:
  alignas (16) uint8_t roundKeys_[11][16] = {};
  Kernel kernel_ = Kernel::None;
};

}  // namespace xdn::fanout
