/* Batched UDP sends for the fan-out: datagrams to many viewers are queued
 * and handed to the kernel with one sendmmsg per batch; with UDP GSO
 * (UDP_SEGMENT, Linux 4.18+) consecutive datagrams of one size to one
 * viewer (the packets of a video frame) go as a single message the kernel
 * splits. One sender per sending thread; it does not own the socket. */
#pragma once

#include "xdn-fanout-addr.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>

namespace xdn::fanout {

class UdpBatchSender {
public:
  /* Datagrams queued before flush () must be called. */
  static constexpr size_t kMaxBatch = 256;
  /* The kernel's limit of segments in one GSO send (UDP_MAX_SEGMENTS). */
  static constexpr size_t kMaxGsoSegments = 64;

  explicit UdpBatchSender (int fd) : fd_ (fd) {}
  UdpBatchSender (const UdpBatchSender &) = delete;
  UdpBatchSender &operator= (const UdpBatchSender &) = delete;

  /* Whether @fd's kernel takes UDP_SEGMENT (tries setting it). */
  static bool gsoSupported (int fd);
  /* Use GSO for runs of same-size datagrams to one address (off by default;
   * turn on only where gsoSupported). */
  void setGso (bool on) { gso_ = on; }
  bool gso () const { return gso_; }

  /* Queues one datagram; @data must stay valid until flush (). False when
   * the batch is full (flush, then queue again) or the address is not IPv4
   * or IPv6. */
  bool queue (const SockAddr &to, const uint8_t *data, size_t size);
  size_t queued () const { return count_; }

  /* Sends everything queued, in as few system calls as it can. Datagrams
   * the kernel refuses (a full socket buffer: EAGAIN, ENOBUFS; or an error
   * for one address) are dropped and counted; the batch is empty after.
   * Returns the number of datagrams sent. */
  size_t flush ();

  struct Stats {
    uint64_t datagrams = 0;   /* handed to the kernel */
    uint64_t dropped = 0;     /* refused */
    uint64_t syscalls = 0;
    int lastErrno = 0;
  };
  const Stats &stats () const { return stats_; }

private:
  struct Entry {
    sockaddr_in6 addr;        /* big enough for IPv4 and IPv6 */
    socklen_t addrLength;
    const uint8_t *data;
    size_t size;
  };

  size_t buildMessages ();

  int fd_;
  bool gso_ = false;
  size_t count_ = 0;
  Stats stats_;
  std::array<Entry, kMaxBatch> entries_ {};
  std::array<mmsghdr, kMaxBatch> msgs_ {};
  std::array<iovec, kMaxBatch> iovs_ {};
  /* datagrams carried by each message (1, or a GSO run) */
  std::array<uint16_t, kMaxBatch> msgDatagrams_ {};
  struct alignas (cmsghdr) Control {
    uint8_t bytes[CMSG_SPACE (sizeof (uint16_t))];
  };
  std::array<Control, kMaxBatch> controls_ {};
};

}  // namespace xdn::fanout
