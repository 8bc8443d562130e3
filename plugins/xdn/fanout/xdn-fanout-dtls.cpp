#include "xdn-fanout-dtls.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/srtp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <mutex>

namespace xdn::fanout {

namespace {

constexpr size_t kMinMtu = 256;
constexpr long kCertificateLifetime = 365L * 24 * 3600;

/* ECDHE only (forward secrecy); ECDSA suites for our certificate, RSA ones
 * so that a client of ours also talks to a server with an RSA certificate
 * (GStreamer's default). */
constexpr char kCipherList[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:"
    "ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA";
constexpr char kGroups[] = "X25519:P-256:P-384";

struct BioDeleter {
  void operator() (BIO *b) const { BIO_free (b); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
struct X509Deleter {
  void operator() (X509 *x) const { X509_free (x); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
struct PkeyDeleter {
  void operator() (EVP_PKEY *k) const { EVP_PKEY_free (k); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
struct BnDeleter {
  void operator() (BIGNUM *b) const { BN_free (b); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnDeleter>;

/* The oldest error OpenSSL queued on this thread, as text; the queue is
 * emptied. */
std::string
opensslError (const char *what)
{
  std::string s = what;
  unsigned long e = ERR_get_error ();
  if (e != 0) {
    const char *reason = ERR_reason_error_string (e);
    char buf[256];
    if (reason == nullptr) {
      ERR_error_string_n (e, buf, sizeof (buf));
      reason = buf;
    }
    s += ": ";
    s += reason;
  }
  ERR_clear_error ();
  return s;
}

void
setError (std::string *error, std::string text)
{
  if (error != nullptr)
    *error = std::move (text);
}

const EVP_MD *
digestByName (std::string_view name)
{
  if (name == "sha-1")
    return EVP_sha1 ();
  if (name == "sha-224")
    return EVP_sha224 ();
  if (name == "sha-256")
    return EVP_sha256 ();
  if (name == "sha-384")
    return EVP_sha384 ();
  if (name == "sha-512")
    return EVP_sha512 ();
  return nullptr;
}

std::string
lower (std::string_view s)
{
  std::string out (s);
  for (char &c : out)
    c = static_cast<char> (std::tolower (static_cast<unsigned char> (c)));
  return out;
}

int
hexDigit (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

}  // namespace

/* ---- DtlsFingerprint ---- */

std::optional<DtlsFingerprint>
DtlsFingerprint::parse (std::string_view text)
{
  auto isSpace = [] (char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty () && isSpace (text.front ()))
    text.remove_prefix (1);
  while (!text.empty () && isSpace (text.back ()))
    text.remove_suffix (1);
  size_t space = 0;
  while (space < text.size () && !isSpace (text[space]))
    space++;
  if (space == 0 || space == text.size ())
    return std::nullopt;
  DtlsFingerprint fp;
  fp.algorithm = lower (text.substr (0, space));
  const EVP_MD *md = digestByName (fp.algorithm);
  if (md == nullptr)
    return std::nullopt;
  std::string_view hex = text.substr (space);
  while (!hex.empty () && isSpace (hex.front ()))
    hex.remove_prefix (1);
  /* "AB:CD:...:EF": 3 characters per byte but the last */
  size_t expected = static_cast<size_t> (EVP_MD_get_size (md));
  if (hex.size () != 3 * expected - 1)
    return std::nullopt;
  fp.digest.reserve (expected);
  for (size_t i = 0; i < expected; i++) {
    int hi = hexDigit (hex[3 * i]);
    int lo = hexDigit (hex[3 * i + 1]);
    if (hi < 0 || lo < 0 || (i + 1 < expected && hex[3 * i + 2] != ':'))
      return std::nullopt;
    fp.digest.push_back (static_cast<uint8_t> (hi << 4 | lo));
  }
  return fp;
}

std::optional<DtlsFingerprint>
DtlsFingerprint::of (X509 *cert, std::string_view algorithm)
{
  DtlsFingerprint fp;
  fp.algorithm = lower (algorithm);
  const EVP_MD *md = digestByName (fp.algorithm);
  if (md == nullptr || cert == nullptr)
    return std::nullopt;
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest (cert, md, buf, &len) != 1)
    return std::nullopt;
  fp.digest.assign (buf, buf + len);
  return fp;
}

std::string
DtlsFingerprint::toString () const
{
  static const char *digits = "0123456789ABCDEF";
  std::string s = algorithm;
  s += ' ';
  for (size_t i = 0; i < digest.size (); i++) {
    if (i > 0)
      s += ':';
    s += digits[digest[i] >> 4];
    s += digits[digest[i] & 15];
  }
  return s;
}

/* ---- DtlsCertificate ---- */

DtlsCertificate::DtlsCertificate (X509 *cert, EVP_PKEY *key) : cert_ (cert), key_ (key)
{
  if (auto fp = DtlsFingerprint::of (cert_))
    fingerprint_ = std::move (*fp);
}

DtlsCertificate::~DtlsCertificate ()
{
  X509_free (cert_);
  EVP_PKEY_free (key_);
}

std::shared_ptr<const DtlsCertificate>
DtlsCertificate::generate (std::string *error)
{
  ERR_clear_error ();
  PkeyPtr key (EVP_EC_gen ("P-256"));
  if (!key) {
    setError (error, opensslError ("dtls: generating the P-256 key failed"));
    return nullptr;
  }
  X509Ptr cert (X509_new ());
  BnPtr serial (BN_new ());
  bool ok = cert && serial && X509_set_version (cert.get (), 2) == 1
      && BN_rand (serial.get (), 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1
      && BN_to_ASN1_INTEGER (serial.get (), X509_get_serialNumber (cert.get ())) != nullptr
      && X509_gmtime_adj (X509_getm_notBefore (cert.get ()), -24L * 3600) != nullptr
      && X509_gmtime_adj (X509_getm_notAfter (cert.get ()), kCertificateLifetime) != nullptr
      && X509_set_pubkey (cert.get (), key.get ()) == 1;
  if (ok) {
    X509_NAME *name = X509_get_subject_name (cert.get ());
    ok = X509_NAME_add_entry_by_txt (name, "CN", MBSTRING_ASC,
             reinterpret_cast<const unsigned char *> ("openxdn"), -1, -1, 0) == 1
        && X509_set_issuer_name (cert.get (), name) == 1
        && X509_sign (cert.get (), key.get (), EVP_sha256 ()) > 0;
  }
  if (!ok) {
    setError (error, opensslError ("dtls: making the self-signed certificate failed"));
    return nullptr;
  }
  return std::shared_ptr<const DtlsCertificate> (
      new DtlsCertificate (cert.release (), key.release ()));
}

std::shared_ptr<const DtlsCertificate>
DtlsCertificate::processCertificate ()
{
  static std::once_flag once;
  static std::shared_ptr<const DtlsCertificate> certificate;
  std::call_once (once, [] { certificate = generate (); });
  return certificate;
}

std::shared_ptr<const DtlsCertificate>
DtlsCertificate::fromPem (std::string_view pem, std::string *error)
{
  ERR_clear_error ();
  BioPtr certBio (BIO_new_mem_buf (pem.data (), static_cast<int> (pem.size ())));
  BioPtr keyBio (BIO_new_mem_buf (pem.data (), static_cast<int> (pem.size ())));
  if (!certBio || !keyBio) {
    setError (error, opensslError ("dtls: out of memory reading PEM"));
    return nullptr;
  }
  X509Ptr cert (PEM_read_bio_X509 (certBio.get (), nullptr, nullptr, nullptr));
  PkeyPtr key (PEM_read_bio_PrivateKey (keyBio.get (), nullptr, nullptr, nullptr));
  if (!cert || !key) {
    setError (error, opensslError (!cert ? "dtls: no certificate in the PEM text"
                                         : "dtls: no private key in the PEM text"));
    return nullptr;
  }
  if (X509_check_private_key (cert.get (), key.get ()) != 1) {
    setError (error, opensslError ("dtls: the private key is not the certificate's"));
    return nullptr;
  }
  ERR_clear_error ();
  return std::shared_ptr<const DtlsCertificate> (
      new DtlsCertificate (cert.release (), key.release ()));
}

std::string
DtlsCertificate::pem () const
{
  BioPtr bio (BIO_new (BIO_s_mem ()));
  if (!bio || PEM_write_bio_X509 (bio.get (), cert_) != 1
      || PEM_write_bio_PrivateKey (bio.get (), key_, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    ERR_clear_error ();
    return {};
  }
  char *data = nullptr;
  long len = BIO_get_mem_data (bio.get (), &data);
  return std::string (data, len > 0 ? static_cast<size_t> (len) : 0);
}

/* ---- DtlsContext ---- */

DtlsContext::DtlsContext (std::shared_ptr<const DtlsCertificate> certificate, SSL_CTX *ctx)
    : certificate_ (std::move (certificate)), ctx_ (ctx)
{
}

DtlsContext::~DtlsContext ()
{
  SSL_CTX_free (ctx_);
}

std::shared_ptr<DtlsContext>
DtlsContext::create (std::shared_ptr<const DtlsCertificate> certificate,
    const std::vector<SrtpProfile> &profiles, std::string *error)
{
  if (!certificate) {
    setError (error, "dtls: no certificate");
    return nullptr;
  }
  std::string srtp;
  for (SrtpProfile p : profiles) {
    const SrtpProfileParams *params = srtpProfileParams (p);
    if (params == nullptr) {
      setError (error, "dtls: unknown SRTP profile");
      return nullptr;
    }
    if (!srtp.empty ())
      srtp += ':';
    srtp += params->name;
  }
  if (srtp.empty ()) {
    setError (error, "dtls: no SRTP profile");
    return nullptr;
  }

  ERR_clear_error ();
  SSL_CTX *ctx = SSL_CTX_new (DTLS_method ());
  if (ctx == nullptr) {
    setError (error, opensslError ("dtls: SSL_CTX_new failed"));
    return nullptr;
  }
  std::shared_ptr<DtlsContext> self (new DtlsContext (std::move (certificate), ctx));

  SSL_CTX_set_options (ctx, SSL_OP_NO_QUERY_MTU | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET
      | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode (ctx, SSL_MODE_RELEASE_BUFFERS);
  /* a server keeps no session of its thousands of viewers */
  SSL_CTX_set_session_cache_mode (ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_read_ahead (ctx, 1);
  /* the peer must send a certificate; its fingerprint is checked instead
   * of a chain (DtlsSession::verifyCallback) */
  SSL_CTX_set_verify (ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_cert_verify_callback (ctx, DtlsSession::verifyCallback, nullptr);

  bool ok = SSL_CTX_set_min_proto_version (ctx, DTLS1_2_VERSION) == 1
      && SSL_CTX_set_max_proto_version (ctx, DTLS1_2_VERSION) == 1
      && SSL_CTX_set_cipher_list (ctx, kCipherList) == 1
      && SSL_CTX_set1_groups_list (ctx, kGroups) == 1
      && SSL_CTX_use_certificate (ctx, self->certificate_->x509 ()) == 1
      && SSL_CTX_use_PrivateKey (ctx, self->certificate_->privateKey ()) == 1
      && SSL_CTX_check_private_key (ctx) == 1
      /* returns 0 on success */
      && SSL_CTX_set_tlsext_use_srtp (ctx, srtp.c_str ()) == 0;
  if (!ok) {
    setError (error, opensslError ("dtls: setting up the SSL context failed"));
    return nullptr;
  }
  return self;
}

/* ---- DtlsSession ---- */

const char *
dtlsStateName (DtlsState s)
{
  switch (s) {
    case DtlsState::New: return "new";
    case DtlsState::Handshaking: return "handshaking";
    case DtlsState::Connected: return "connected";
    case DtlsState::Closed: return "closed";
    case DtlsState::Failed: return "failed";
  }
  return "unknown";
}

bool
DtlsSrtpKeys::initOutbound (SrtpContext &ctx) const
{
  return ctx.init (profile, local ().key.data (), local ().salt.data ());
}

bool
DtlsSrtpKeys::initInbound (SrtpContext &ctx) const
{
  return ctx.init (profile, remote ().key.data (), remote ().salt.data ());
}

/* The BIO between OpenSSL and the session: reads return the datagram
 * being fed (once), writes append one record to the session's out buffer.
 * One BIO_METHOD for the process. */
struct DtlsSession::Bio {
  static DtlsSession *session (BIO *b) { return static_cast<DtlsSession *> (BIO_get_data (b)); }

  static int write (BIO *b, const char *data, int len)
  {
    BIO_clear_retry_flags (b);
    DtlsSession *s = session (b);
    if (s == nullptr || len <= 0)
      return 0;
    /* a DTLS record is at most 2^14 + 2048 + 13 bytes: fits a uint16_t */
    if (static_cast<size_t> (len) > kMaxDatagram)
      return -1;
    s->out_.insert (s->out_.end (), data, data + len);
    s->outRecords_.push_back (static_cast<uint16_t> (len));
    return len;
  }

  static int read (BIO *b, char *data, int len)
  {
    BIO_clear_retry_flags (b);
    DtlsSession *s = session (b);
    if (s == nullptr || s->inSize_ == 0 || len <= 0) {
      BIO_set_retry_read (b);
      return -1;
    }
    /* one datagram per read, as a datagram socket gives it; a datagram
     * larger than OpenSSL's buffer is cut (and the record fails) */
    size_t n = std::min (s->inSize_, static_cast<size_t> (len));
    memcpy (data, s->in_, n);
    s->in_ = nullptr;
    s->inSize_ = 0;
    return static_cast<int> (n);
  }

  static long ctrl (BIO *b, int cmd, long num, void *ptr)
  {
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        return 1;
      case BIO_CTRL_PENDING: {
        DtlsSession *s = session (b);
        return s != nullptr ? static_cast<long> (s->inSize_) : 0;
      }
      case BIO_CTRL_WPENDING:
        return 0;
      /* the timer is the session's (nextTimeout) and the MTU its option */
      case BIO_CTRL_DGRAM_SET_NEXT_TIMEOUT:
        return 1;
      case BIO_CTRL_DGRAM_GET_MTU_OVERHEAD:
      case BIO_CTRL_DGRAM_QUERY_MTU:
      case BIO_CTRL_DGRAM_MTU_EXCEEDED:
        return 0;
      default:
        return 0;
    }
  }

  static BIO_METHOD *method ()
  {
    static BIO_METHOD *m = [] {
      BIO_METHOD *meth = BIO_meth_new (BIO_get_new_index () | BIO_TYPE_SOURCE_SINK,
          "xdn-dtls-datagram");
      if (meth != nullptr) {
        BIO_meth_set_write (meth, write);
        BIO_meth_set_read (meth, read);
        BIO_meth_set_ctrl (meth, ctrl);
      }
      return meth;
    }();
    return m;
  }
};

DtlsSession::DtlsSession (std::shared_ptr<DtlsContext> context, DtlsRole role,
    DtlsFingerprint remoteFingerprint, DtlsSendFn send, const DtlsSessionOptions &options)
    : context_ (std::move (context)), role_ (role),
      remoteFingerprint_ (std::move (remoteFingerprint)), send_ (std::move (send)),
      options_ (options)
{
  if (!context_) {
    fail ("dtls: no context");
    return;
  }
  if (options_.mtu < kMinMtu || options_.mtu > kMaxDatagram) {
    fail ("dtls: mtu must be between 256 and " + std::to_string (kMaxDatagram));
    return;
  }
  if (digestByName (remoteFingerprint_.algorithm) == nullptr
      || remoteFingerprint_.digest.size ()
          != static_cast<size_t> (EVP_MD_get_size (digestByName (remoteFingerprint_.algorithm)))) {
    fail ("dtls: the peer's fingerprint is not a sha-1/224/256/384/512 digest");
    return;
  }
  ERR_clear_error ();
  BIO_METHOD *method = Bio::method ();
  ssl_ = SSL_new (context_->sslContext ());
  BIO *bio = method != nullptr ? BIO_new (method) : nullptr;
  if (ssl_ == nullptr || bio == nullptr) {
    BIO_free (bio);
    fail (opensslError ("dtls: SSL_new failed"));
    return;
  }
  BIO_set_data (bio, this);
  BIO_set_init (bio, 1);
  /* one BIO for both directions: SSL_set_bio takes the one reference */
  SSL_set_bio (ssl_, bio, bio);
  SSL_set_app_data (ssl_, this);
  SSL_set_mtu (ssl_, static_cast<long> (options_.mtu));
  DTLS_set_timer_cb (ssl_, timerCallback);
  if (role_ == DtlsRole::Client)
    SSL_set_connect_state (ssl_);
  else
    SSL_set_accept_state (ssl_);
}

DtlsSession::~DtlsSession ()
{
  if (ssl_ != nullptr) {
    /* the BIO points at this session: stop it before OpenSSL frees it */
    BIO *bio = SSL_get_rbio (ssl_);
    if (bio != nullptr)
      BIO_set_data (bio, nullptr);
    SSL_free (ssl_);
  }
  if (keys_)
    OPENSSL_cleanse (&*keys_, sizeof (*keys_));
}

DtlsState
DtlsSession::start ()
{
  if (state_ != DtlsState::New)
    return state_;
  state_ = DtlsState::Handshaking;
  deadline_ = std::chrono::steady_clock::now () + options_.handshakeTimeout;
  if (role_ == DtlsRole::Client) {
    drive ();
    flush (false);
  }
  return state_;
}

DtlsState
DtlsSession::feed (const uint8_t *data, size_t size)
{
  stats_.datagramsIn++;
  if (state_ == DtlsState::Failed || state_ == DtlsState::Closed || released_ || size == 0
      || size > kMaxDatagram || data == nullptr) {
    stats_.dropped++;
    return state_;
  }
  if (state_ == DtlsState::New)
    start ();
  if (state_ == DtlsState::Failed)
    return state_;

  bool afterHandshake = state_ == DtlsState::Connected;
  in_ = data;
  inSize_ = size;
  if (state_ == DtlsState::Handshaking)
    drive ();
  else
    readAfterHandshake ();
  /* whatever OpenSSL did not read of it is dropped with it */
  in_ = nullptr;
  inSize_ = 0;
  flush (afterHandshake);
  /* an idle connected session keeps no record buffers (about 34 KB) */
  if (state_ == DtlsState::Connected && ssl_ != nullptr)
    SSL_free_buffers (ssl_);
  return state_;
}

void
DtlsSession::drive ()
{
  ERR_clear_error ();
  int r = SSL_do_handshake (ssl_);
  if (r == 1) {
    handshakeDone ();
    if (state_ == DtlsState::Connected)
      readAfterHandshake ();
    return;
  }
  int e = SSL_get_error (ssl_, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    ERR_clear_error ();
    return;
  }
  fail (sslError (e, "handshake failed"));
}

void
DtlsSession::readAfterHandshake ()
{
  uint8_t buf[2048];
  for (;;) {
    ERR_clear_error ();
    int r = SSL_read (ssl_, buf, sizeof (buf));
    if (r > 0) {
      /* DTLS-SRTP carries no application data (data channels would) */
      stats_.applicationData++;
      continue;
    }
    int e = SSL_get_error (ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      ERR_clear_error ();
      return;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
      /* the peer's close_notify */
      ERR_clear_error ();
      state_ = DtlsState::Closed;
      return;
    }
    fail (sslError (e, "connection failed"));
    return;
  }
}

void
DtlsSession::handshakeDone ()
{
  if (!peerChecked_) {
    fail ("dtls: the handshake completed without the peer's certificate");
    return;
  }
  const SRTP_PROTECTION_PROFILE *selected = SSL_get_selected_srtp_profile (ssl_);
  std::optional<SrtpProfile> profile;
  if (selected != nullptr)
    profile = srtpProfileFromId (static_cast<uint16_t> (selected->id));
  if (!profile) {
    fail (std::string ("dtls: no SRTP profile in common with the peer (use_srtp, RFC 5764 4.1.2)"));
    return;
  }
  const SrtpProfileParams *params = srtpProfileParams (*profile);
  const size_t k = params->masterKeyLength;
  const size_t s = params->masterSaltLength;
  uint8_t material[2 * (16 + 14)];
  ERR_clear_error ();
  if (SSL_export_keying_material (ssl_, material, 2 * (k + s), kDtlsSrtpExporterLabel,
          strlen (kDtlsSrtpExporterLabel), nullptr, 0, 0) != 1) {
    fail (opensslError ("dtls: exporting the SRTP keying material failed"));
    return;
  }
  /* client key, server key, client salt, server salt (RFC 5764 4.2) */
  DtlsSrtpKeys keys;
  keys.profile = *profile;
  keys.role = role_;
  memcpy (keys.client.key.data (), material, k);
  memcpy (keys.server.key.data (), material + k, k);
  memcpy (keys.client.salt.data (), material + 2 * k, s);
  memcpy (keys.server.salt.data (), material + 2 * k + s, s);
  OPENSSL_cleanse (material, sizeof (material));
  keys_ = keys;
  OPENSSL_cleanse (&keys, sizeof (keys));
  state_ = DtlsState::Connected;
  deadline_.reset ();
}

std::optional<std::chrono::steady_clock::time_point>
DtlsSession::nextTimeout () const
{
  if (state_ != DtlsState::Handshaking)
    return std::nullopt;
  std::optional<std::chrono::steady_clock::time_point> t = deadline_;
  timeval tv {};
  if (ssl_ != nullptr && DTLSv1_get_timeout (ssl_, &tv) == 1) {
    auto retransmit = std::chrono::steady_clock::now () + std::chrono::seconds (tv.tv_sec)
        + std::chrono::microseconds (tv.tv_usec);
    if (!t || retransmit < *t)
      t = retransmit;
  }
  return t;
}

DtlsState
DtlsSession::onTimeout ()
{
  if (state_ != DtlsState::Handshaking)
    return state_;
  if (deadline_ && std::chrono::steady_clock::now () >= *deadline_) {
    fail ("dtls: handshake did not complete within "
        + std::to_string (options_.handshakeTimeout.count ()) + " ms ("
        + std::to_string (stats_.retransmits) + " retransmissions)");
    return state_;
  }
  timeval tv {};
  if (DTLSv1_get_timeout (ssl_, &tv) != 1 || tv.tv_sec != 0 || tv.tv_usec != 0)
    return state_;  /* no timer running, or not yet */
  if (stats_.retransmits >= options_.maxRetransmits) {
    fail ("dtls: no answer from the peer after " + std::to_string (stats_.retransmits)
        + " retransmissions");
    return state_;
  }
  ERR_clear_error ();
  int r = DTLSv1_handle_timeout (ssl_);
  if (r > 0)
    stats_.retransmits++;
  else if (r < 0)
    fail (opensslError ("dtls: retransmission failed"));
  flush (false);
  return state_;
}

bool
DtlsSession::releaseHandshakeState ()
{
  if (state_ != DtlsState::Connected || released_ || ssl_ == nullptr)
    return false;
  BIO *bio = SSL_get_rbio (ssl_);
  if (bio != nullptr)
    BIO_set_data (bio, nullptr);
  SSL_free (ssl_);
  ssl_ = nullptr;
  released_ = true;
  return true;
}

void
DtlsSession::close ()
{
  if (state_ == DtlsState::Connected && !released_) {
    /* SSL_free_buffers left no record buffers, and OpenSSL 3.0 writes an
     * alert into the write buffer without making one: a read (with nothing
     * to read) makes both again */
    uint8_t none[1];
    ERR_clear_error ();
    SSL_read (ssl_, none, sizeof (none));
    ERR_clear_error ();
    SSL_shutdown (ssl_);
    ERR_clear_error ();
    flush (false);
  }
  if (state_ != DtlsState::Failed)
    state_ = DtlsState::Closed;
  deadline_.reset ();
}

void
DtlsSession::fail (std::string why)
{
  if (state_ == DtlsState::Failed)
    return;
  state_ = DtlsState::Failed;
  deadline_.reset ();
  if (error_.empty ())
    error_ = std::move (why);
}

std::string
DtlsSession::sslError (int sslErrorCode, const char *what)
{
  /* a check of ours (the fingerprint) that failed says more than OpenSSL */
  if (!error_.empty ()) {
    ERR_clear_error ();
    return error_;
  }
  std::string prefix = std::string ("dtls ") + (role_ == DtlsRole::Server ? "server" : "client")
      + ": " + what;
  if (ERR_peek_error () != 0)
    return opensslError (prefix.c_str ());
  if (sslErrorCode == SSL_ERROR_SYSCALL)
    return prefix + ": transport error";
  return prefix + " (SSL error " + std::to_string (sslErrorCode) + ")";
}

void
DtlsSession::flush (bool afterHandshake)
{
  if (outRecords_.empty ())
    return;
  /* taken out first: the send function may run long, and nothing of the
   * session's buffers stays allocated */
  std::vector<uint8_t> bytes;
  std::vector<uint16_t> records;
  bytes.swap (out_);
  records.swap (outRecords_);
  size_t offset = 0;
  size_t i = 0;
  while (i < records.size ()) {
    size_t start = offset;
    size_t len = records[i++];
    while (i < records.size () && len + records[i] <= options_.mtu)
      len += records[i++];
    offset = start + len;
    if (afterHandshake) {
      if (postHandshakeDatagrams_ >= kMaxPostHandshakeDatagrams) {
        stats_.suppressed++;
        continue;
      }
      postHandshakeDatagrams_++;
    }
    stats_.datagramsOut++;
    stats_.bytesOut += len;
    if (send_)
      send_ (bytes.data () + start, len);
  }
  OPENSSL_cleanse (bytes.data (), bytes.size ());
}

bool
DtlsSession::checkPeer (X509 *cert)
{
  std::optional<DtlsFingerprint> actual = DtlsFingerprint::of (cert, remoteFingerprint_.algorithm);
  if (!actual) {
    error_ = "dtls: cannot compute the peer certificate's fingerprint";
    return false;
  }
  if (*actual != remoteFingerprint_) {
    error_ = "dtls: peer certificate fingerprint " + actual->toString ()
        + " does not match the SDP's " + remoteFingerprint_.toString ();
    return false;
  }
  peerChecked_ = true;
  return true;
}

int
DtlsSession::verifyCallback (X509_STORE_CTX *store, void *)
{
  SSL *ssl = static_cast<SSL *> (
      X509_STORE_CTX_get_ex_data (store, SSL_get_ex_data_X509_STORE_CTX_idx ()));
  auto *self = ssl != nullptr ? static_cast<DtlsSession *> (SSL_get_app_data (ssl)) : nullptr;
  X509 *cert = X509_STORE_CTX_get0_cert (store);
  if (self == nullptr || cert == nullptr || !self->checkPeer (cert)) {
    X509_STORE_CTX_set_error (store, X509_V_ERR_CERT_REJECTED);
    return 0;
  }
  return 1;
}

unsigned
DtlsSession::timerCallback (SSL *ssl, unsigned previousUs)
{
  auto *self = static_cast<DtlsSession *> (SSL_get_app_data (ssl));
  const unsigned maxUs = static_cast<unsigned> (
      std::chrono::duration_cast<std::chrono::microseconds> (kMaxRetransmitInterval).count ());
  unsigned initialUs = 1000000;
  if (self != nullptr)
    initialUs = static_cast<unsigned> (std::max<int64_t> (1000,
        std::chrono::duration_cast<std::chrono::microseconds> (self->options_.initialRetransmit)
            .count ()));
  if (previousUs == 0)
    return std::min (initialUs, maxUs);
  return previousUs >= maxUs / 2 ? maxUs : previousUs * 2;
}

}  // namespace xdn::fanout
