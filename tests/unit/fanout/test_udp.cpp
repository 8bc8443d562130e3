/* Batched sends on loopback UDP sockets (bound to 127.0.0.1, port 0). */
#include <gtest/gtest.h>

#include "xdn-fanout-udp.h"

#include <arpa/inet.h>
#include <poll.h>
#include <unistd.h>

#include <vector>

using namespace xdn::fanout;

namespace {

class Socket {
public:
  Socket ()
  {
    fd_ = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin {};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    EXPECT_EQ (bind (fd_, reinterpret_cast<sockaddr *> (&sin), sizeof (sin)), 0);
    socklen_t len = sizeof (sin);
    getsockname (fd_, reinterpret_cast<sockaddr *> (&sin), &len);
    addr_ = SockAddr::fromSockaddr (reinterpret_cast<sockaddr *> (&sin), len);
  }
  ~Socket () { close (fd_); }
  int fd () const { return fd_; }
  const SockAddr &addr () const { return addr_; }

  /* One datagram, waiting at most a second; empty when none came. */
  std::vector<uint8_t> receive ()
  {
    pollfd p {fd_, POLLIN, 0};
    if (poll (&p, 1, 1000) != 1)
      return {};
    std::vector<uint8_t> buf (70000);
    ssize_t n = recv (fd_, buf.data (), buf.size (), 0);
    buf.resize (n > 0 ? static_cast<size_t> (n) : 0);
    return buf;
  }

private:
  int fd_ = -1;
  SockAddr addr_;
};

std::vector<uint8_t>
datagram (size_t size, uint8_t tag)
{
  std::vector<uint8_t> d (size);
  for (size_t i = 0; i < size; i++)
    d[i] = static_cast<uint8_t> (tag + i);
  return d;
}

}  // namespace

TEST (UdpBatchSender, DeliversEveryDatagramToItsAddress)
{
  Socket tx, a, b;
  UdpBatchSender sender (tx.fd ());
  std::vector<std::vector<uint8_t>> sent;
  for (int i = 0; i < 20; i++)
    sent.push_back (datagram (100 + 37 * i, static_cast<uint8_t> (i)));
  for (int i = 0; i < 20; i++)
    ASSERT_TRUE (sender.queue (i % 2 ? b.addr () : a.addr (), sent[i].data (), sent[i].size ()));
  EXPECT_EQ (sender.flush (), 20u);
  EXPECT_EQ (sender.queued (), 0u);
  EXPECT_LE (sender.stats ().syscalls, 2u);
  for (int i = 0; i < 20; i++)
    EXPECT_EQ ((i % 2 ? b : a).receive (), sent[i]) << i;
}

TEST (UdpBatchSender, RefusesMoreThanABatch)
{
  Socket tx, rx;
  UdpBatchSender sender (tx.fd ());
  uint8_t byte = 1;
  for (size_t i = 0; i < UdpBatchSender::kMaxBatch; i++)
    ASSERT_TRUE (sender.queue (rx.addr (), &byte, 1));
  EXPECT_FALSE (sender.queue (rx.addr (), &byte, 1));
  EXPECT_FALSE (sender.queue (SockAddr (), &byte, 1));
  sender.flush ();
  EXPECT_TRUE (sender.queue (rx.addr (), &byte, 1));
}

TEST (UdpBatchSender, GsoRunArrivesAsSeparateDatagrams)
{
  Socket tx, a, b;
  if (!UdpBatchSender::gsoSupported (tx.fd ()))
    GTEST_SKIP () << "kernel without UDP_SEGMENT";
  UdpBatchSender sender (tx.fd ());
  sender.setGso (true);
  /* a frame of 5 x 1200 + 500 to a, then 2 to b, then 1 to a */
  std::vector<std::vector<uint8_t>> sent;
  std::vector<const Socket *> to;
  for (int i = 0; i < 5; i++) {
    sent.push_back (datagram (1200, static_cast<uint8_t> (i)));
    to.push_back (&a);
  }
  sent.push_back (datagram (500, 50));
  to.push_back (&a);
  sent.push_back (datagram (1200, 60));
  to.push_back (&b);
  sent.push_back (datagram (1200, 61));
  to.push_back (&b);
  sent.push_back (datagram (300, 70));
  to.push_back (&a);
  for (size_t i = 0; i < sent.size (); i++)
    ASSERT_TRUE (sender.queue (to[i]->addr (), sent[i].data (), sent[i].size ()));
  EXPECT_EQ (sender.flush (), sent.size ());
  EXPECT_EQ (sender.stats ().dropped, 0u);
  for (size_t i = 0; i < sent.size (); i++)
    EXPECT_EQ (const_cast<Socket *> (to[i])->receive (), sent[i]) << i;
}

TEST (SockAddr, ParsesPrintsAndCompares)
{
  auto v4 = SockAddr::parse ("192.0.2.1", 32853);
  ASSERT_TRUE (v4.valid ());
  EXPECT_EQ (v4.family (), AF_INET);
  EXPECT_EQ (v4.toString (), "192.0.2.1:32853");
  auto v6 = SockAddr::parse ("2001:db8::1", 443);
  EXPECT_EQ (v6.toString (), "[2001:db8::1]:443");
  EXPECT_FALSE (SockAddr::parse ("not an address", 1).valid ());
  EXPECT_NE (v4, SockAddr::parse ("192.0.2.1", 32854));
  EXPECT_EQ (SockAddrHash () (v4), SockAddrHash () (SockAddr::parse ("192.0.2.1", 32853)));
}
