/* A UDP peer address (IPv4 or IPv6) in the form the socket calls take, so
 * that the fan-out can key viewers by it and hand it to sendmmsg as is. */
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace xdn::fanout {

struct SockAddr {
  sockaddr_storage storage {};
  socklen_t length = 0;

  /* Parses a numeric IPv4 or IPv6 address ("192.0.2.1", "2001:db8::1");
   * returns an empty address (valid () false) when it is neither. */
  static SockAddr parse (const std::string &ip, uint16_t port);
  static SockAddr fromSockaddr (const sockaddr *sa, socklen_t len);

  bool valid () const { return length != 0; }
  int family () const { return storage.ss_family; }
  uint16_t port () const;
  const sockaddr *sa () const { return reinterpret_cast<const sockaddr *> (&storage); }
  sockaddr *sa () { return reinterpret_cast<sockaddr *> (&storage); }
  /* "192.0.2.1:32853", "[2001:db8::1]:32853". */
  std::string toString () const;

  bool operator== (const SockAddr &o) const;
  bool operator!= (const SockAddr &o) const { return !(*this == o); }
};

/* For unordered maps keyed by peer address (family, address and port). */
struct SockAddrHash {
  size_t operator() (const SockAddr &a) const;
};

}  // namespace xdn::fanout
