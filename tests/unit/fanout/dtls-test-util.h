/* Helpers shared by the DTLS tests: certificates made once per test
 * program, and two sessions wired back to back through queues the test
 * can inspect, drop from or tamper with. */
#pragma once

#include "xdn-fanout-dtls.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace fanouttest {

using xdn::fanout::DtlsCertificate;
using xdn::fanout::DtlsContext;
using xdn::fanout::DtlsRole;
using xdn::fanout::DtlsSession;
using xdn::fanout::DtlsSessionOptions;
using xdn::fanout::DtlsState;
using xdn::fanout::SrtpProfile;

using Datagram = std::vector<uint8_t>;
using Queue = std::vector<Datagram>;

/* Two certificates (ECDSA P-256), one per side, made on first use. */
inline std::shared_ptr<const DtlsCertificate>
serverCertificate ()
{
  static auto cert = DtlsCertificate::generate ();
  return cert;
}

inline std::shared_ptr<const DtlsCertificate>
clientCertificate ()
{
  static auto cert = DtlsCertificate::generate ();
  return cert;
}

inline std::shared_ptr<DtlsContext>
contextFor (std::shared_ptr<const DtlsCertificate> cert,
    const std::vector<SrtpProfile> &profiles = xdn::fanout::kDtlsDefaultSrtpProfiles)
{
  return DtlsContext::create (std::move (cert), profiles);
}

/* A server and a client session; what one sends lands in the other's
 * queue until pump () delivers it. */
struct DtlsPair {
  Queue toServer;
  Queue toClient;
  std::unique_ptr<DtlsSession> server;
  std::unique_ptr<DtlsSession> client;

  DtlsPair (std::shared_ptr<DtlsContext> serverCtx, std::shared_ptr<DtlsContext> clientCtx,
      const DtlsSessionOptions &options = {})
  {
    server = std::make_unique<DtlsSession> (serverCtx, DtlsRole::Server,
        clientCtx->certificate ().fingerprint (),
        [this] (const uint8_t *d, size_t n) { toClient.emplace_back (d, d + n); }, options);
    client = std::make_unique<DtlsSession> (clientCtx, DtlsRole::Client,
        serverCtx->certificate ().fingerprint (),
        [this] (const uint8_t *d, size_t n) { toServer.emplace_back (d, d + n); }, options);
  }
  DtlsPair (const DtlsPair &) = delete;
  DtlsPair &operator= (const DtlsPair &) = delete;

  /* Delivers queued datagrams both ways until none are left (at most
   * @rounds exchanges). */
  void pump (int rounds = 20)
  {
    for (int i = 0; i < rounds && (!toServer.empty () || !toClient.empty ()); i++) {
      Queue s;
      s.swap (toServer);
      for (auto &d : s)
        server->feed (d.data (), d.size ());
      Queue c;
      c.swap (toClient);
      for (auto &d : c)
        client->feed (d.data (), d.size ());
    }
  }

  bool handshake ()
  {
    server->start ();
    client->start ();
    pump ();
    return server->state () == DtlsState::Connected && client->state () == DtlsState::Connected;
  }
};

/* Runs @session's timer until @until is true or @limit has passed: waits
 * for nextTimeout (), then calls onTimeout (), as an element's timer thread
 * would. */
template <typename Pred>
inline void
runTimers (DtlsSession &session, Pred until, std::chrono::milliseconds limit)
{
  auto end = std::chrono::steady_clock::now () + limit;
  while (!until () && std::chrono::steady_clock::now () < end) {
    auto next = session.nextTimeout ();
    if (!next)
      return;
    std::this_thread::sleep_until (std::min (*next, end));
    session.onTimeout ();
  }
}

}  // namespace fanouttest
