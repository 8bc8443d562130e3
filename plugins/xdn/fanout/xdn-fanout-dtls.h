/* DTLS 1.2 for DTLS-SRTP (RFC 5764, RFC 8842) on OpenSSL, with no socket
 * inside: the caller feeds each DTLS datagram it received and sends the
 * datagrams the session hands to its send function. Both roles: the
 * edge's fan-out is the server (its SDP answer says a=setup:passive), a
 * load-test viewer the client.
 *
 * The peer's certificate is accepted only if its digest matches the
 * a=fingerprint of the peer's SDP (RFC 8122); no chain, name or date is
 * checked, as in WebRTC. After the handshake the session exports the SRTP
 * master keys and salts (RFC 5764 4.2) for SrtpContext::init.
 *
 * Retransmissions are driven by the caller: nextTimeout () says when the
 * session wants onTimeout (), so one thread can drive thousands of
 * sessions from a timer queue. A handshake gives up after a number of
 * retransmissions or a time limit, whichever comes first. */
#pragma once

#include "xdn-fanout-srtp.h"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct x509_st X509;
typedef struct evp_pkey_st EVP_PKEY;
typedef struct x509_store_ctx_st X509_STORE_CTX;

namespace xdn::fanout {

/* A certificate fingerprint as SDP's a=fingerprint gives it (RFC 8122 5):
 * a hash function name and the digest, "sha-256 4A:AD:B9:...". */
struct DtlsFingerprint {
  std::string algorithm;        /* lower case: sha-1, sha-224, sha-256, sha-384, sha-512 */
  std::vector<uint8_t> digest;

  /* Reads "sha-256 4A:AD:..." (hash name in any case, hex digits in any
   * case, one or more spaces between). nullopt for an unknown hash, a
   * digest of the wrong length or malformed hex. */
  static std::optional<DtlsFingerprint> parse (std::string_view text);
  /* The digest of @cert under @algorithm; nullopt for an unknown hash. */
  static std::optional<DtlsFingerprint> of (X509 *cert, std::string_view algorithm = "sha-256");

  /* "sha-256 4A:AD:..." with upper-case hex, as browsers write it. */
  std::string toString () const;
  bool operator== (const DtlsFingerprint &o) const
  {
    return algorithm == o.algorithm && digest == o.digest;
  }
  bool operator!= (const DtlsFingerprint &o) const { return !(*this == o); }
};

/* A certificate and its private key, immutable once made, shared by every
 * session of a process (or of an element). */
class DtlsCertificate {
public:
  ~DtlsCertificate ();
  DtlsCertificate (const DtlsCertificate &) = delete;
  DtlsCertificate &operator= (const DtlsCertificate &) = delete;

  /* A new ECDSA P-256 key and a self-signed certificate for it (SHA-256
   * signature, random serial, valid from a day ago for a year). nullptr
   * and @error set when OpenSSL fails. */
  static std::shared_ptr<const DtlsCertificate> generate (std::string *error = nullptr);
  /* The process's certificate: generated on the first call, the same one
   * after (thread-safe). nullptr if generating it failed. */
  static std::shared_ptr<const DtlsCertificate> processCertificate ();
  /* A certificate and private key from PEM text (both blocks, any order). */
  static std::shared_ptr<const DtlsCertificate> fromPem (std::string_view pem,
      std::string *error = nullptr);

  /* SHA-256 fingerprint, "sha-256 4A:AD:..." : the SDP's a=fingerprint value. */
  const DtlsFingerprint &fingerprint () const { return fingerprint_; }
  /* Certificate then private key, PEM (for tools that take both in one
   * string, such as GStreamer's dtlssrtpdec pem property). */
  std::string pem () const;

  X509 *x509 () const { return cert_; }
  EVP_PKEY *privateKey () const { return key_; }

private:
  DtlsCertificate (X509 *cert, EVP_PKEY *key);

  X509 *cert_;
  EVP_PKEY *key_;
  DtlsFingerprint fingerprint_;
};

/* The RFC 5705 exporter label of DTLS-SRTP (RFC 5764 4.2, IANA's TLS
 * Exporter Labels registry), as libwebrtc and GStreamer use it. */
constexpr char kDtlsSrtpExporterLabel[] = "EXTRACTOR-dtls_srtp";

/* The server prefers, in this order, what the client offers; Chromium
 * offers AES_CM_80 first and uses it. */
inline const std::vector<SrtpProfile> kDtlsDefaultSrtpProfiles = {
  SrtpProfile::AesCm128HmacSha1_80,
  SrtpProfile::AesCm128HmacSha1_32,
  SrtpProfile::AeadAes128Gcm,
};

/* What sessions share: one OpenSSL SSL_CTX with the certificate, DTLS 1.2
 * only, ECDHE key exchange, the use_srtp profiles, no session cache, no
 * renegotiation. Thread-safe: sessions on any thread may use it. */
class DtlsContext {
public:
  ~DtlsContext ();
  DtlsContext (const DtlsContext &) = delete;
  DtlsContext &operator= (const DtlsContext &) = delete;

  /* @profiles in preference order (a server picks the first one the client
   * offers; a client offers them in this order). nullptr and @error set if
   * OpenSSL refuses the certificate or a profile list is empty. */
  static std::shared_ptr<DtlsContext> create (std::shared_ptr<const DtlsCertificate> certificate,
      const std::vector<SrtpProfile> &profiles = kDtlsDefaultSrtpProfiles,
      std::string *error = nullptr);

  const DtlsCertificate &certificate () const { return *certificate_; }
  SSL_CTX *sslContext () const { return ctx_; }

private:
  DtlsContext (std::shared_ptr<const DtlsCertificate> certificate, SSL_CTX *ctx);

  std::shared_ptr<const DtlsCertificate> certificate_;
  SSL_CTX *ctx_;
};

/* Who speaks first. Server: waits for the ClientHello (SDP a=setup:passive);
 * client: sends it (a=setup:active). */
enum class DtlsRole { Server, Client };

enum class DtlsState {
  New,          /* start () not called and nothing fed yet */
  Handshaking,
  Connected,    /* handshake done, SRTP keys available */
  Closed,       /* close_notify sent or received */
  Failed,       /* see error () */
};

const char *dtlsStateName (DtlsState s);

/* One SRTP master key and salt. The salt is 14 bytes for AES-CM, 12 for
 * GCM (the rest zero). */
struct SrtpMasterKey {
  std::array<uint8_t, 16> key {};
  std::array<uint8_t, 14> salt {};
};

/* The keying material of RFC 5764 4.2, split. The client's key protects
 * what the client sends, the server's what the server sends. */
struct DtlsSrtpKeys {
  SrtpProfile profile = SrtpProfile::AesCm128HmacSha1_80;
  DtlsRole role = DtlsRole::Server;  /* the session's own role */
  SrtpMasterKey client;
  SrtpMasterKey server;

  /* Our write key (protect what we send) and the peer's (unprotect what it
   * sends), according to role. */
  const SrtpMasterKey &local () const { return role == DtlsRole::Client ? client : server; }
  const SrtpMasterKey &remote () const { return role == DtlsRole::Client ? server : client; }
  /* SrtpContext::init with local () / remote (). */
  bool initOutbound (SrtpContext &ctx) const;
  bool initInbound (SrtpContext &ctx) const;
};

struct DtlsSessionOptions {
  /* Largest datagram the session sends (the DTLS record layer fragments
   * handshake messages to fit); records of one flight are packed into
   * datagrams up to this size. At least 256. */
  size_t mtu = 1200;
  /* First retransmission after this long, doubling each time, at most
   * kMaxRetransmitInterval between two. */
  std::chrono::milliseconds initialRetransmit {500};
  /* The handshake fails when the timer fires once more after this many
   * retransmissions of a flight (in total, over the handshake; OpenSSL
   * itself stops after 12 of one flight)... */
  unsigned maxRetransmits = 6;
  /* ...or when it has not completed this long after start (). */
  std::chrono::milliseconds handshakeTimeout {10000};
};

/* Called with each datagram to send to the peer. @data is valid only during
 * the call. It runs inside start, feed, onTimeout and close, and must not
 * call into the same session. */
using DtlsSendFn = std::function<void (const uint8_t *data, size_t size)>;

/* One DTLS association with one peer. Not thread-safe: one thread at a
 * time (the thread that reads the port and runs the timers). */
class DtlsSession {
public:
  static constexpr std::chrono::milliseconds kMaxRetransmitInterval {8000};
  /* Datagrams larger than a DTLS record can be are dropped unread. */
  static constexpr size_t kMaxDatagram = 16384 + 2048 + 13;
  /* Datagrams sent after the handshake (retransmissions of our last flight
   * the peer asks for by repeating its own, alerts): at most this many in
   * the session's life, so a replayed datagram cannot make it a reflector. */
  static constexpr unsigned kMaxPostHandshakeDatagrams = 16;

  /* @remoteFingerprint is the a=fingerprint of the peer's SDP. A session
   * that cannot be set up (OpenSSL out of memory, bad options) is Failed
   * from the start. */
  DtlsSession (std::shared_ptr<DtlsContext> context, DtlsRole role,
      DtlsFingerprint remoteFingerprint, DtlsSendFn send, const DtlsSessionOptions &options = {});
  ~DtlsSession ();
  DtlsSession (const DtlsSession &) = delete;
  DtlsSession &operator= (const DtlsSession &) = delete;

  /* Starts the handshake clock; a client sends its ClientHello. A server
   * that is fed before start () starts then. */
  DtlsState start ();
  /* One datagram from the peer (first byte 20-63, RFC 7983). Datagrams
   * OpenSSL finds invalid are dropped, as DTLS says (RFC 6347 4.1.2.7);
   * a fatal alert or a failed check (fingerprint, no common SRTP profile)
   * fails the session. */
  DtlsState feed (const uint8_t *data, size_t size);
  /* When onTimeout () is due; nullopt when no timer runs (not started,
   * connected, closed, failed). Changes after every call. */
  std::optional<std::chrono::steady_clock::time_point> nextTimeout () const;
  /* Retransmits the last flight if its timer expired, fails the session
   * when the handshake is out of time or retransmissions. Calling it
   * early does nothing. */
  DtlsState onTimeout ();
  /* Sends close_notify if connected (and not released); the session is
   * Closed after. */
  void close ();

  /* Frees OpenSSL's state of a connected session, keeping the SRTP keys:
   * most of an idle session's memory (OpenSSL keeps a 21 KB handshake
   * buffer for retransmissions, and the 7.6 KB SSL object). Call it once
   * the peer has shown it has the keys too, that is when a packet from it
   * authenticated under srtpKeys ()->remote (): it then has our last
   * flight and will not ask for it again. After it, DTLS datagrams from the
   * peer are dropped unread (a close_notify included: a viewer that leaves
   * is noticed by ICE consent or RTCP BYE) and close () sends nothing.
   * False (and nothing done) unless Connected. */
  bool releaseHandshakeState ();
  bool released () const { return released_; }

  DtlsState state () const { return state_; }
  DtlsRole role () const { return role_; }
  /* Why the session failed, with the peer and check named. */
  const std::string &error () const { return error_; }
  /* Set once Connected (and kept when Closed). */
  const std::optional<DtlsSrtpKeys> &srtpKeys () const { return keys_; }
  /* The peer's certificate fingerprint, once it was checked. */
  const DtlsFingerprint &remoteFingerprint () const { return remoteFingerprint_; }

  struct Stats {
    uint64_t datagramsIn = 0;
    uint64_t datagramsOut = 0;
    uint64_t bytesOut = 0;
    uint64_t dropped = 0;          /* fed while closed, failed or released, or too large */
    uint64_t applicationData = 0;  /* application data records read and dropped */
    uint32_t retransmits = 0;      /* flights sent again on a timer */
    uint32_t suppressed = 0;       /* datagrams over kMaxPostHandshakeDatagrams */
  };
  const Stats &stats () const { return stats_; }

private:
  struct Bio;
  friend struct Bio;
  friend class DtlsContext;  /* installs verifyCallback */

  void drive ();
  void readAfterHandshake ();
  void handshakeDone ();
  void fail (std::string why);
  std::string sslError (int ret, const char *what);
  void flush (bool afterHandshake);
  bool checkPeer (X509 *cert);

  static int verifyCallback (X509_STORE_CTX *store, void *arg);
  static unsigned timerCallback (SSL *ssl, unsigned previousUs);

  std::shared_ptr<DtlsContext> context_;
  DtlsRole role_;
  DtlsFingerprint remoteFingerprint_;
  DtlsSendFn send_;
  DtlsSessionOptions options_;

  SSL *ssl_ = nullptr;
  DtlsState state_ = DtlsState::New;
  std::string error_;
  std::optional<DtlsSrtpKeys> keys_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  bool peerChecked_ = false;
  bool released_ = false;
  unsigned postHandshakeDatagrams_ = 0;
  Stats stats_;

  /* The datagram being fed (read by the BIO during feed only). */
  const uint8_t *in_ = nullptr;
  size_t inSize_ = 0;
  /* Records OpenSSL wrote during the current call, back to back, and
   * their sizes; sent (packed into datagrams) at the end of the call. */
  std::vector<uint8_t> out_;
  std::vector<uint16_t> outRecords_;
};

}  // namespace xdn::fanout
