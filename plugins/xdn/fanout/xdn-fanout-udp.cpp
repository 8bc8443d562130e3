#include "xdn-fanout-udp.h"

#include <arpa/inet.h>
#include <netinet/udp.h>

#include <cerrno>
#include <cstring>
#include <functional>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace xdn::fanout {

/* ---- SockAddr ---- */

SockAddr
SockAddr::parse (const std::string &ip, uint16_t port)
{
  SockAddr a;
  sockaddr_in sin {};
  if (inet_pton (AF_INET, ip.c_str (), &sin.sin_addr) == 1) {
    sin.sin_family = AF_INET;
    sin.sin_port = htons (port);
    return fromSockaddr (reinterpret_cast<sockaddr *> (&sin), sizeof (sin));
  }
  sockaddr_in6 sin6 {};
  if (inet_pton (AF_INET6, ip.c_str (), &sin6.sin6_addr) == 1) {
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons (port);
    return fromSockaddr (reinterpret_cast<sockaddr *> (&sin6), sizeof (sin6));
  }
  return a;
}

SockAddr
SockAddr::fromSockaddr (const sockaddr *sa, socklen_t len)
{
  SockAddr a;
  if (sa == nullptr)
    return a;
  if (sa->sa_family == AF_INET && len >= socklen_t (sizeof (sockaddr_in)))
    a.length = sizeof (sockaddr_in);
  else if (sa->sa_family == AF_INET6 && len >= socklen_t (sizeof (sockaddr_in6)))
    a.length = sizeof (sockaddr_in6);
  else
    return a;
  memcpy (&a.storage, sa, a.length);
  return a;
}

uint16_t
SockAddr::port () const
{
  if (family () == AF_INET)
    return ntohs (reinterpret_cast<const sockaddr_in *> (&storage)->sin_port);
  if (family () == AF_INET6)
    return ntohs (reinterpret_cast<const sockaddr_in6 *> (&storage)->sin6_port);
  return 0;
}

std::string
SockAddr::toString () const
{
  char buf[INET6_ADDRSTRLEN] = {};
  if (family () == AF_INET) {
    inet_ntop (AF_INET, &reinterpret_cast<const sockaddr_in *> (&storage)->sin_addr, buf,
        sizeof (buf));
    return std::string (buf) + ":" + std::to_string (port ());
  }
  if (family () == AF_INET6) {
    inet_ntop (AF_INET6, &reinterpret_cast<const sockaddr_in6 *> (&storage)->sin6_addr, buf,
        sizeof (buf));
    return "[" + std::string (buf) + "]:" + std::to_string (port ());
  }
  return "(none)";
}

bool
SockAddr::operator== (const SockAddr &o) const
{
  if (family () != o.family ())
    return false;
  if (family () == AF_INET) {
    auto *a = reinterpret_cast<const sockaddr_in *> (&storage);
    auto *b = reinterpret_cast<const sockaddr_in *> (&o.storage);
    return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
  }
  if (family () == AF_INET6) {
    auto *a = reinterpret_cast<const sockaddr_in6 *> (&storage);
    auto *b = reinterpret_cast<const sockaddr_in6 *> (&o.storage);
    return a->sin6_port == b->sin6_port &&
        memcmp (&a->sin6_addr, &b->sin6_addr, sizeof (in6_addr)) == 0 &&
        a->sin6_scope_id == b->sin6_scope_id;
  }
  return length == o.length;
}

size_t
SockAddrHash::operator() (const SockAddr &a) const
{
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h] (const void *p, size_t n) {
    auto *b = static_cast<const uint8_t *> (p);
    for (size_t i = 0; i < n; i++)
      h = (h ^ b[i]) * 1099511628211ull;
  };
  if (a.family () == AF_INET) {
    auto *s = reinterpret_cast<const sockaddr_in *> (&a.storage);
    mix (&s->sin_addr, sizeof (s->sin_addr));
    mix (&s->sin_port, sizeof (s->sin_port));
  } else if (a.family () == AF_INET6) {
    auto *s = reinterpret_cast<const sockaddr_in6 *> (&a.storage);
    mix (&s->sin6_addr, sizeof (s->sin6_addr));
    mix (&s->sin6_port, sizeof (s->sin6_port));
  }
  return static_cast<size_t> (h);
}

/* ---- UdpBatchSender ---- */

bool
UdpBatchSender::gsoSupported (int fd)
{
  int seg = 0;
  socklen_t len = sizeof (seg);
  /* Reading the option back works on every kernel that has it. */
  return getsockopt (fd, IPPROTO_UDP, UDP_SEGMENT, &seg, &len) == 0;
}

bool
UdpBatchSender::queue (const SockAddr &to, const uint8_t *data, size_t size)
{
  if (count_ >= kMaxBatch || to.length == 0 || to.length > socklen_t (sizeof (sockaddr_in6)))
    return false;
  Entry &e = entries_[count_++];
  memcpy (&e.addr, &to.storage, to.length);
  e.addrLength = to.length;
  e.data = data;
  e.size = size;
  return true;
}

static bool
sameAddress (const sockaddr_in6 &a, socklen_t alen, const sockaddr_in6 &b, socklen_t blen)
{
  return alen == blen && memcmp (&a, &b, alen) == 0;
}

size_t
UdpBatchSender::buildMessages ()
{
  size_t nmsgs = 0;
  size_t i = 0;
  while (i < count_) {
    const Entry &first = entries_[i];
    size_t run = 1;
    if (gso_) {
      /* Same address; every segment the first one's size but the last,
       * which may be shorter; at most 64 segments and 64 KB. */
      size_t total = first.size;
      while (i + run < count_ && run < kMaxGsoSegments) {
        const Entry &e = entries_[i + run];
        if (!sameAddress (e.addr, e.addrLength, first.addr, first.addrLength) ||
            e.size > first.size || total + e.size > 65507)
          break;
        total += e.size;
        run++;
        if (e.size < first.size)
          break;
      }
    }
    mmsghdr &m = msgs_[nmsgs];
    memset (&m, 0, sizeof (m));
    m.msg_hdr.msg_name = const_cast<sockaddr_in6 *> (&first.addr);
    m.msg_hdr.msg_namelen = first.addrLength;
    for (size_t k = 0; k < run; k++) {
      iovs_[i + k].iov_base = const_cast<uint8_t *> (entries_[i + k].data);
      iovs_[i + k].iov_len = entries_[i + k].size;
    }
    m.msg_hdr.msg_iov = &iovs_[i];
    m.msg_hdr.msg_iovlen = run;
    if (run > 1) {
      Control &ctl = controls_[nmsgs];
      m.msg_hdr.msg_control = ctl.bytes;
      m.msg_hdr.msg_controllen = sizeof (ctl.bytes);
      cmsghdr *cm = CMSG_FIRSTHDR (&m.msg_hdr);
      cm->cmsg_level = IPPROTO_UDP;
      cm->cmsg_type = UDP_SEGMENT;
      cm->cmsg_len = CMSG_LEN (sizeof (uint16_t));
      uint16_t segment = static_cast<uint16_t> (first.size);
      memcpy (CMSG_DATA (cm), &segment, sizeof (segment));
    }
    msgDatagrams_[nmsgs] = static_cast<uint16_t> (run);
    nmsgs++;
    i += run;
  }
  return nmsgs;
}

size_t
UdpBatchSender::flush ()
{
  size_t nmsgs = buildMessages ();
  size_t sent = 0;
  size_t off = 0;
  while (off < nmsgs) {
    int r = sendmmsg (fd_, &msgs_[off], static_cast<unsigned> (nmsgs - off), 0);
    stats_.syscalls++;
    if (r > 0) {
      for (int k = 0; k < r; k++)
        sent += msgDatagrams_[off + k];
      off += static_cast<size_t> (r);
      continue;
    }
    if (r < 0 && errno == EINTR)
      continue;
    stats_.lastErrno = r < 0 ? errno : 0;
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
      /* this message alone is refused (bad address, too big): skip it */
      stats_.dropped += msgDatagrams_[off];
      off++;
      continue;
    }
    /* the socket buffer is full: the rest of the batch is lost */
    for (size_t k = off; k < nmsgs; k++)
      stats_.dropped += msgDatagrams_[k];
    break;
  }
  stats_.datagrams += sent;
  count_ = 0;
  return sent;
}

}  // namespace xdn::fanout
