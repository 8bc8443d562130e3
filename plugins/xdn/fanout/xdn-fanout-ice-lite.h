/* The STUN side of an ICE-lite agent (RFC 8445 2.5, 6.1.1): it never sends
 * checks; it answers each viewer's Binding requests on the shared port,
 * authenticated with that viewer's short-term credentials, and tells the
 * caller who asked and whether the viewer nominated the address.
 *
 * The lite agent is always the controlled one: a request that claims the
 * controlled role (ICE-CONTROLLED) gets 487 Role Conflict, which makes a
 * full agent take the controlling role (RFC 8445 7.3.1.1). */
#pragma once

#include "xdn-fanout-addr.h"
#include "xdn-fanout-hmac.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace xdn::fanout {

/* One viewer's local ICE credentials (what the answer's a=ice-ufrag and
 * a=ice-pwd said), with the password's HMAC key schedule done once. */
struct IceLiteCredentials {
  IceLiteCredentials (std::string ufrag, std::string pwd);

  std::string ufrag;
  std::string pwd;
  /* Keyed with pwd; mutable as hashing a message uses its working state
   * (so one thread at a time, the one reading the port). */
  mutable HmacSha1 key;
};

enum class BindingAction {
  Drop,   /* send nothing (not STUN for us, failed FINGERPRINT, a response) */
  Reply,  /* send the reply buffer's first replySize bytes back to the sender */
};

struct BindingResult {
  BindingAction action = BindingAction::Drop;
  size_t replySize = 0;
  /* 0 for a success response; else 400, 401, 420 or 487. */
  uint16_t errorCode = 0;
  /* Why the datagram was dropped (a static string), for logs and counters. */
  const char *dropReason = nullptr;

  /* Set once MESSAGE-INTEGRITY checked out under a known viewer's password. */
  bool authenticated = false;
  const IceLiteCredentials *credentials = nullptr;
  /* From the request (views into it). */
  std::string_view localUfrag;
  std::string_view remoteUfrag;
  bool useCandidate = false;
  uint32_t priority = 0;
};

/* Finds the credentials whose ufrag is @localUfrag (the part of USERNAME
 * before the colon); nullptr when no viewer has it. */
using IceLiteLookup = std::function<const IceLiteCredentials *(std::string_view localUfrag)>;

/* Handles one datagram that came to the shared port from @from. A reply, if
 * any, is written into @reply (256 bytes are always enough). Only a result
 * with authenticated set and errorCode 0 proves the viewer holds the
 * password; the caller binds @from to the viewer then (and on useCandidate,
 * selects it). */
BindingResult iceLiteHandleRequest (const uint8_t *data, size_t size, const SockAddr &from,
    const IceLiteLookup &lookup, uint8_t *reply, size_t replyCapacity);

}  // namespace xdn::fanout
