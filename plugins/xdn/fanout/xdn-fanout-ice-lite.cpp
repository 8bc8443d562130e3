#include "xdn-fanout-ice-lite.h"

#include "xdn-fanout-stun.h"

namespace xdn::fanout {

IceLiteCredentials::IceLiteCredentials (std::string u, std::string p)
    : ufrag (std::move (u)), pwd (std::move (p))
{
  key.setKey (reinterpret_cast<const uint8_t *> (pwd.data ()), pwd.size ());
}

namespace {

const char *
reasonPhrase (uint16_t code)
{
  switch (code) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 420: return "Unknown Attribute";
    case 487: return "Role Conflict";
  }
  return "Error";
}

/* An error response; with MESSAGE-INTEGRITY when the request was
 * authenticated (@key set), without otherwise (RFC 8489 9.1.3). */
void
errorReply (BindingResult &r, const StunMessage &req, uint16_t code, HmacSha1 *key,
    uint8_t *reply, size_t cap)
{
  StunBuilder b (reply, cap, req.method, StunClass::ErrorResponse, req.transactionId);
  b.addErrorCode (code, reasonPhrase (code));
  if (code == 420)
    b.addUnknownAttributes (req.unknownRequired.data (), req.unknownRequiredCount);
  if (key != nullptr)
    b.addIntegrity (*key);
  b.addFingerprint ();
  r.errorCode = code;
  if (b.ok ()) {
    r.action = BindingAction::Reply;
    r.replySize = b.size ();
  } else {
    r.action = BindingAction::Drop;
    r.dropReason = "reply-too-large";
  }
}

}  // namespace

BindingResult
iceLiteHandleRequest (const uint8_t *data, size_t size, const SockAddr &from,
    const IceLiteLookup &lookup, uint8_t *reply, size_t replyCapacity)
{
  BindingResult r;
  StunMessage req;
  if (stunParse (data, size, req) != StunParseError::None) {
    r.dropReason = "malformed";
    return r;
  }
  if (req.cls != StunClass::Request) {
    /* a lite agent sends no requests: responses and indications end here */
    r.dropReason = "not-a-request";
    return r;
  }
  if (!stunCheckFingerprint (req)) {
    r.dropReason = "fingerprint";
    return r;
  }
  if (req.method != kStunMethodBinding) {
    errorReply (r, req, 400, nullptr, reply, replyCapacity);
    return r;
  }
  if (!req.username || req.integrityOffset == 0) {
    errorReply (r, req, 400, nullptr, reply, replyCapacity);
    return r;
  }
  std::string_view local, remote;
  if (!stunSplitUsername (*req.username, local, remote)) {
    errorReply (r, req, 401, nullptr, reply, replyCapacity);
    return r;
  }
  const IceLiteCredentials *cred = lookup ? lookup (local) : nullptr;
  if (cred == nullptr) {
    errorReply (r, req, 401, nullptr, reply, replyCapacity);
    return r;
  }
  HmacSha1 &key = cred->key;
  if (!stunCheckIntegrity (req, key)) {
    errorReply (r, req, 401, nullptr, reply, replyCapacity);
    return r;
  }

  r.authenticated = true;
  r.credentials = cred;
  r.localUfrag = local;
  r.remoteUfrag = remote;
  r.useCandidate = req.useCandidate;
  r.priority = req.priority.value_or (0);

  if (req.unknownRequiredCount > 0) {
    errorReply (r, req, 420, &key, reply, replyCapacity);
    return r;
  }
  if (!req.priority || (req.iceControlling && req.iceControlled)) {
    errorReply (r, req, 400, &key, reply, replyCapacity);
    return r;
  }
  if (req.iceControlled) {
    errorReply (r, req, 487, &key, reply, replyCapacity);
    return r;
  }

  StunBuilder b (reply, replyCapacity, kStunMethodBinding, StunClass::SuccessResponse,
      req.transactionId);
  b.addXorAddress (stunattr::XorMappedAddress, from);
  b.addIntegrity (key);
  b.addFingerprint ();
  if (!b.ok ()) {
    r.dropReason = "reply-too-large";
    return r;
  }
  r.action = BindingAction::Reply;
  r.replySize = b.size ();
  return r;
}

}  // namespace xdn::fanout
