#include "xdn-fanout-srtp.h"

#include "xdn-fanout-aes-ctr.h"
#include "xdn-fanout-bytes.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>

namespace xdn::fanout {

namespace {

const SrtpProfileParams kAesCm80 = {"SRTP_AES128_CM_SHA1_80", 16, 14, 10, 10, false};
const SrtpProfileParams kAesCm32 = {"SRTP_AES128_CM_SHA1_32", 16, 14, 4, 10, false};
const SrtpProfileParams kAeadAes128Gcm = {"SRTP_AEAD_AES_128_GCM", 16, 12, 16, 16, true};

constexpr size_t kRtpHeader = 12;
constexpr size_t kRtcpHeader = 8;
constexpr size_t kSrtcpIndexSize = 4;
constexpr uint32_t kSrtcpEBit = 0x80000000u;
constexpr size_t kGcmIvSize = 12;
constexpr uint64_t kSeqMedian = 1 << 15;
constexpr uint64_t kSeqMax = 1 << 16;

/* Size of the RTP header (fixed part, CSRCs, extension) or 0 when @size
 * bytes cannot hold it. */
size_t
rtpHeaderLength (const uint8_t *p, size_t size)
{
  if (size < kRtpHeader || (p[0] >> 6) != 2)
    return 0;
  size_t len = kRtpHeader + 4 * size_t (p[0] & 0x0F);
  if (p[0] & 0x10) {
    if (len + 4 > size)
      return 0;
    len += 4 + 4 * size_t (rd16 (p + len + 2));
  }
  return len <= size ? len : 0;
}

/* libsrtp's srtp_rdbx_estimate_index / srtp_index_guess (RFC 3711 3.3.1
 * and Appendix A): the packet index of @seq given the highest index so
 * far, and its distance from it. */
uint64_t
estimateIndex (uint64_t highest, uint16_t seq, int64_t &delta)
{
  if (highest <= kSeqMedian) {
    /* the ROC stays 0 until the stream is past its first half range */
    delta = int64_t (seq) - int64_t (highest);
    return seq;
  }
  uint64_t roc = highest >> 16;
  int64_t localSeq = int64_t (highest & 0xFFFF);
  int64_t s = seq;
  uint64_t guessRoc = roc;
  if (localSeq < int64_t (kSeqMedian)) {
    if (s - localSeq > int64_t (kSeqMedian)) {
      guessRoc = roc - 1;
      delta = s - localSeq - int64_t (kSeqMax);
    } else {
      delta = s - localSeq;
    }
  } else {
    if (localSeq - int64_t (kSeqMedian) > s) {
      guessRoc = roc + 1;
      delta = s - localSeq + int64_t (kSeqMax);
    } else {
      delta = s - localSeq;
    }
  }
  return (guessRoc << 16) | seq;
}

struct CipherCtxDeleter {
  void operator() (EVP_CIPHER_CTX *c) const { EVP_CIPHER_CTX_free (c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

/* RFC 7714 8.1: SRTP IV = (00 00 || SSRC || ROC || SEQ) XOR salt. */
void
gcmRtpIv (const uint8_t *packet, uint32_t roc, const uint8_t *salt, uint8_t iv[kGcmIvSize])
{
  iv[0] = iv[1] = 0;
  memcpy (iv + 2, packet + 8, 4);
  wr32 (iv + 6, roc);
  memcpy (iv + 10, packet + 2, 2);
  for (size_t i = 0; i < kGcmIvSize; i++)
    iv[i] ^= salt[i];
}

/* RFC 7714 9.1: SRTCP IV = (00 00 || SSRC || 00 00 || index) XOR salt. */
void
gcmRtcpIv (const uint8_t *packet, uint32_t index, const uint8_t *salt, uint8_t iv[kGcmIvSize])
{
  iv[0] = iv[1] = 0;
  memcpy (iv + 2, packet + 4, 4);
  iv[6] = iv[7] = 0;
  wr32 (iv + 8, index);
  for (size_t i = 0; i < kGcmIvSize; i++)
    iv[i] ^= salt[i];
}

}  // namespace

const SrtpProfileParams *
srtpProfileParams (SrtpProfile profile)
{
  switch (profile) {
    case SrtpProfile::AesCm128HmacSha1_80: return &kAesCm80;
    case SrtpProfile::AesCm128HmacSha1_32: return &kAesCm32;
    case SrtpProfile::AeadAes128Gcm: return &kAeadAes128Gcm;
  }
  return nullptr;
}

std::optional<SrtpProfile>
srtpProfileFromId (uint16_t id)
{
  auto p = static_cast<SrtpProfile> (id);
  if (srtpProfileParams (p) == nullptr)
    return std::nullopt;
  return p;
}

const char *
srtpStatusName (SrtpStatus s)
{
  switch (s) {
    case SrtpStatus::Ok: return "ok";
    case SrtpStatus::NotReady: return "not-ready";
    case SrtpStatus::BadPacket: return "bad-packet";
    case SrtpStatus::NoRoom: return "no-room";
    case SrtpStatus::AuthFail: return "auth-fail";
    case SrtpStatus::ReplayOld: return "replay-old";
    case SrtpStatus::Replayed: return "replayed";
    case SrtpStatus::TooManySsrcs: return "too-many-ssrcs";
    case SrtpStatus::IndexExhausted: return "index-exhausted";
    case SrtpStatus::CryptoError: return "crypto-error";
  }
  return "unknown";
}

void
srtpAesCmIv (const uint8_t salt[14], uint32_t ssrc, uint64_t index, uint8_t iv[16])
{
  memcpy (iv, salt, 14);
  iv[14] = 0;
  iv[15] = 0;
  iv[4] ^= static_cast<uint8_t> (ssrc >> 24);
  iv[5] ^= static_cast<uint8_t> (ssrc >> 16);
  iv[6] ^= static_cast<uint8_t> (ssrc >> 8);
  iv[7] ^= static_cast<uint8_t> (ssrc);
  for (int i = 0; i < 6; i++)
    iv[8 + i] ^= static_cast<uint8_t> (index >> (40 - 8 * i));
}

bool
srtpAesCtr (const uint8_t key[16], const uint8_t iv[16], uint8_t *data, size_t length)
{
  CipherCtx ctx (EVP_CIPHER_CTX_new ());
  if (!ctx || EVP_EncryptInit_ex (ctx.get (), EVP_aes_128_ctr (), nullptr, key, iv) != 1)
    return false;
  /* EVP takes int lengths: go in chunks */
  while (length > 0) {
    int chunk = static_cast<int> (std::min<size_t> (length, 1 << 30));
    int out = 0;
    if (EVP_EncryptUpdate (ctx.get (), data, &out, data, chunk) != 1)
      return false;
    data += chunk;
    length -= chunk;
  }
  return true;
}

bool
srtpDeriveKey (const uint8_t *masterKey, size_t masterKeyLength, const uint8_t *masterSalt,
    size_t masterSaltLength, uint8_t label, uint8_t *out, size_t outLength)
{
  if (masterKeyLength != 16 || masterSaltLength > 14)
    return false;
  /* x = (master_salt XOR (label || r)) with r = 0: the label lands on
   * byte 7 of the 112-bit salt; the PRF is AES-CM from x * 2^16. */
  uint8_t iv[16] = {};
  memcpy (iv, masterSalt, masterSaltLength);
  iv[7] ^= label;
  memset (out, 0, outLength);
  bool ok = srtpAesCtr (masterKey, iv, out, outLength);
  OPENSSL_cleanse (iv, sizeof (iv));
  return ok;
}

/* The session keys of one of RTP and RTCP. */
struct SrtpContext::SessionKeys {
  CipherCtx cipher;          /* AES-128-CTR or AES-128-GCM, keyed once */
  Aes128Ctr ctr;             /* AES-CM profiles, where the CPU has AES-NI */
  HmacSha1 auth;             /* AES-CM profiles only */
  uint8_t salt[14] = {};     /* 14 bytes, 12 used for GCM */

  ~SessionKeys () { OPENSSL_cleanse (salt, sizeof (salt)); }

  /* AES-CM (in place) of @length bytes at @data from counter block @iv. */
  bool aesCm (const uint8_t iv[16], uint8_t *data, size_t length)
  {
    if (ctr.ready ()) {
      ctr.apply (iv, data, length);
      return true;
    }
    int n = 0;
    return EVP_CipherInit_ex (cipher.get (), nullptr, nullptr, nullptr, iv, 1) == 1 &&
        EVP_CipherUpdate (cipher.get (), data, &n, data, static_cast<int> (length)) == 1;
  }
};

void
SrtpContext::ReplayWindow::shift (uint64_t n)
{
  if (n >= 128) {
    bits[0] = bits[1] = 0;
  } else if (n >= 64) {
    bits[1] = bits[0] << (n - 64);
    bits[0] = 0;
  } else if (n > 0) {
    bits[1] = (bits[1] << n) | (bits[0] >> (64 - n));
    bits[0] <<= n;
  }
}

SrtpContext::SrtpContext () = default;

SrtpContext::~SrtpContext () = default;

void
SrtpContext::release ()
{
  params_ = nullptr;
  rtp_.reset ();
  rtcp_.reset ();
  streams_.clear ();
}

bool
SrtpContext::init (SrtpProfile profile, const uint8_t *masterKey, const uint8_t *masterSalt)
{
  release ();
  const SrtpProfileParams *params = srtpProfileParams (profile);
  if (params == nullptr || masterKey == nullptr || masterSalt == nullptr)
    return false;

  auto make = [&] (uint8_t encLabel, uint8_t authLabel, uint8_t saltLabel) {
    auto keys = std::make_unique<SessionKeys> ();
    uint8_t key[16];
    uint8_t authKey[HmacSha1::kDigestSize];
    bool ok = srtpDeriveKey (masterKey, params->masterKeyLength, masterSalt,
                  params->masterSaltLength, encLabel, key, sizeof (key)) &&
        srtpDeriveKey (masterKey, params->masterKeyLength, masterSalt, params->masterSaltLength,
            saltLabel, keys->salt, params->masterSaltLength);
    if (ok && !params->aead) {
      ok = srtpDeriveKey (masterKey, params->masterKeyLength, masterSalt,
          params->masterSaltLength, authLabel, authKey, sizeof (authKey));
      if (ok)
        keys->auth.setKey (authKey, sizeof (authKey));
      if (ok)
        keys->ctr.setKey (key);
    }
    keys->cipher.reset (EVP_CIPHER_CTX_new ());
    ok = ok && keys->cipher &&
        EVP_CipherInit_ex (keys->cipher.get (),
            params->aead ? EVP_aes_128_gcm () : EVP_aes_128_ctr (), nullptr, key, nullptr, 1) == 1;
    if (ok && params->aead)
      ok = EVP_CIPHER_CTX_ctrl (keys->cipher.get (), EVP_CTRL_GCM_SET_IVLEN, kGcmIvSize, nullptr) == 1;
    OPENSSL_cleanse (key, sizeof (key));
    OPENSSL_cleanse (authKey, sizeof (authKey));
    if (!ok)
      keys.reset ();
    return keys;
  };

  rtp_ = make (srtplabel::RtpEncryption, srtplabel::RtpAuth, srtplabel::RtpSalt);
  rtcp_ = make (srtplabel::RtcpEncryption, srtplabel::RtcpAuth, srtplabel::RtcpSalt);
  if (!rtp_ || !rtcp_) {
    release ();
    return false;
  }
  profile_ = profile;
  params_ = params;
  streams_.reserve (4);
  return true;
}

size_t
SrtpContext::rtpTrailer () const
{
  return params_ ? params_->rtpTagLength : 0;
}

size_t
SrtpContext::rtcpTrailer () const
{
  return params_ ? params_->rtcpTagLength + kSrtcpIndexSize : 0;
}

SrtpContext::Stream *
SrtpContext::findStream (uint32_t ssrc)
{
  for (auto &s : streams_)
    if (s.ssrc == ssrc)
      return &s;
  return nullptr;
}

const SrtpContext::Stream *
SrtpContext::findStream (uint32_t ssrc) const
{
  for (auto &s : streams_)
    if (s.ssrc == ssrc)
      return &s;
  return nullptr;
}

SrtpContext::Stream *
SrtpContext::addStream (uint32_t ssrc)
{
  if (streams_.size () >= kMaxSsrcs)
    return nullptr;
  streams_.push_back (Stream ());
  streams_.back ().ssrc = ssrc;
  return &streams_.back ();
}

std::optional<uint32_t>
SrtpContext::rolloverCounter (uint32_t ssrc) const
{
  const Stream *s = findStream (ssrc);
  if (s == nullptr)
    return std::nullopt;
  return static_cast<uint32_t> (s->rtpIndex >> 16);
}

/* ---- RTP ---- */

/* The SRTP tag of @size bytes at @p with rollover counter @roc, to be
 * written to @tag (@tagLength bytes). */
HmacSha1::Job
SrtpContext::rtpAuthJob (const uint8_t *p, size_t size, uint32_t roc, uint8_t *tag,
    size_t tagLength) const
{
  HmacSha1::Job job {&rtp_->auth, p, size, {}, 4, tag, tagLength};
  wr32 (job.suffix, roc);
  return job;
}

SrtpStatus
SrtpContext::protectRtp (uint8_t *p, size_t size, size_t capacity, size_t &outSize,
    HmacSha1::Job *auth)
{
  if (auth)
    auth->key = nullptr;
  if (!params_)
    return SrtpStatus::NotReady;
  size_t hl = rtpHeaderLength (p, size);
  if (hl == 0)
    return SrtpStatus::BadPacket;
  size_t tag = params_->rtpTagLength;
  if (capacity < size || capacity - size < tag)
    return SrtpStatus::NoRoom;

  uint32_t ssrc = rd32 (p + 8);
  Stream *st = findStream (ssrc);
  if (st == nullptr && (st = addStream (ssrc)) == nullptr)
    return SrtpStatus::TooManySsrcs;
  int64_t delta = 0;
  uint64_t index = estimateIndex (st->rtpIndex, rd16 (p + 2), delta);
  if ((index >> 16) > 0xFFFFFFFFull)
    return SrtpStatus::IndexExhausted;
  uint32_t roc = static_cast<uint32_t> (index >> 16);
  EVP_CIPHER_CTX *c = rtp_->cipher.get ();
  int n = 0;

  if (params_->aead) {
    /* AAD = the header */
    uint8_t iv[kGcmIvSize];
    gcmRtpIv (p, roc, rtp_->salt, iv);
    if (EVP_CipherInit_ex (c, nullptr, nullptr, nullptr, iv, 1) != 1 ||
        EVP_CipherUpdate (c, nullptr, &n, p, static_cast<int> (hl)) != 1 ||
        EVP_CipherUpdate (c, p + hl, &n, p + hl, static_cast<int> (size - hl)) != 1 ||
        EVP_CipherFinal_ex (c, p + size, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl (c, EVP_CTRL_GCM_GET_TAG, static_cast<int> (tag), p + size) != 1)
      return SrtpStatus::CryptoError;
  } else {
    uint8_t iv[16];
    srtpAesCmIv (rtp_->salt, ssrc, index, iv);
    if (!rtp_->aesCm (iv, p + hl, size - hl))
      return SrtpStatus::CryptoError;
    /* RFC 3711 4.2: tag = HMAC (packet || ROC), truncated */
    HmacSha1::Job job = rtpAuthJob (p, size, roc, p + size, tag);
    if (auth)
      *auth = job;
    else
      HmacSha1::many (&job, 1);
  }

  /* A retransmission (delta <= 0) leaves the highest index where it is. */
  if (delta > 0) {
    st->rtpWindow.shift (static_cast<uint64_t> (delta));
    st->rtpIndex = index;
  }
  outSize = size + tag;
  return SrtpStatus::Ok;
}

SrtpStatus
SrtpContext::unprotectRtp (uint8_t *p, size_t size, size_t &outSize)
{
  if (!params_)
    return SrtpStatus::NotReady;
  size_t tag = params_->rtpTagLength;
  if (size < kRtpHeader + tag)
    return SrtpStatus::BadPacket;
  size_t plain = size - tag;
  size_t hl = rtpHeaderLength (p, plain);
  if (hl == 0)
    return SrtpStatus::BadPacket;

  uint32_t ssrc = rd32 (p + 8);
  Stream *st = findStream (ssrc);
  Stream fresh;
  fresh.ssrc = ssrc;
  const Stream &cur = st ? *st : fresh;
  int64_t delta = 0;
  uint64_t index = estimateIndex (cur.rtpIndex, rd16 (p + 2), delta);
  if ((index >> 16) > 0xFFFFFFFFull)
    return SrtpStatus::BadPacket;
  if (delta <= 0) {
    uint64_t back = static_cast<uint64_t> (-delta);
    if (back >= kReplayWindow)
      return SrtpStatus::ReplayOld;
    if (cur.rtpWindow.has (back))
      return SrtpStatus::Replayed;
  }
  uint32_t roc = static_cast<uint32_t> (index >> 16);
  EVP_CIPHER_CTX *c = rtp_->cipher.get ();
  int n = 0;

  if (params_->aead) {
    uint8_t iv[kGcmIvSize];
    gcmRtpIv (p, roc, rtp_->salt, iv);
    if (EVP_CipherInit_ex (c, nullptr, nullptr, nullptr, iv, 0) != 1 ||
        EVP_CipherUpdate (c, nullptr, &n, p, static_cast<int> (hl)) != 1 ||
        EVP_CipherUpdate (c, p + hl, &n, p + hl, static_cast<int> (plain - hl)) != 1 ||
        EVP_CIPHER_CTX_ctrl (c, EVP_CTRL_GCM_SET_TAG, static_cast<int> (tag), p + plain) != 1)
      return SrtpStatus::CryptoError;
    if (EVP_CipherFinal_ex (c, p + plain, &n) != 1)
      return SrtpStatus::AuthFail;
  } else {
    uint8_t mac[HmacSha1::kDigestSize];
    HmacSha1::Job job = rtpAuthJob (p, plain, roc, mac, tag);
    HmacSha1::many (&job, 1);
    if (CRYPTO_memcmp (mac, p + plain, tag) != 0)
      return SrtpStatus::AuthFail;
    uint8_t iv[16];
    srtpAesCmIv (rtp_->salt, ssrc, index, iv);
    if (!rtp_->aesCm (iv, p + hl, plain - hl))
      return SrtpStatus::CryptoError;
  }

  /* Authenticated: now the source may take state. */
  if (st == nullptr && (st = addStream (ssrc)) == nullptr)
    return SrtpStatus::TooManySsrcs;
  if (delta > 0) {
    st->rtpWindow.shift (static_cast<uint64_t> (delta));
    st->rtpIndex = index;
    st->rtpWindow.set (0);
  } else {
    st->rtpWindow.set (static_cast<uint64_t> (-delta));
  }
  outSize = plain;
  return SrtpStatus::Ok;
}

/* ---- RTCP ---- */

SrtpStatus
SrtpContext::protectRtcp (uint8_t *p, size_t size, size_t capacity, size_t &outSize)
{
  if (!params_)
    return SrtpStatus::NotReady;
  if (size < kRtcpHeader || (p[0] >> 6) != 2)
    return SrtpStatus::BadPacket;
  size_t tag = params_->rtcpTagLength;
  if (capacity < size || capacity - size < tag + kSrtcpIndexSize)
    return SrtpStatus::NoRoom;

  uint32_t ssrc = rd32 (p + 4);
  Stream *st = findStream (ssrc);
  if (st == nullptr && (st = addStream (ssrc)) == nullptr)
    return SrtpStatus::TooManySsrcs;
  if (st->rtcpIndex >= 0x7FFFFFFFu)
    return SrtpStatus::IndexExhausted;
  /* as libsrtp: the first SRTCP packet of a source has index 1 */
  uint32_t index = st->rtcpIndex + 1;
  uint8_t trailer[kSrtcpIndexSize];
  wr32 (trailer, kSrtcpEBit | index);
  EVP_CIPHER_CTX *c = rtcp_->cipher.get ();
  int n = 0;

  if (params_->aead) {
    /* AAD = first 8 bytes || E|index; the tag, then E|index, follow. */
    uint8_t iv[kGcmIvSize];
    gcmRtcpIv (p, index, rtcp_->salt, iv);
    if (EVP_CipherInit_ex (c, nullptr, nullptr, nullptr, iv, 1) != 1 ||
        EVP_CipherUpdate (c, nullptr, &n, p, kRtcpHeader) != 1 ||
        EVP_CipherUpdate (c, nullptr, &n, trailer, sizeof (trailer)) != 1 ||
        EVP_CipherUpdate (c, p + kRtcpHeader, &n, p + kRtcpHeader,
            static_cast<int> (size - kRtcpHeader)) != 1 ||
        EVP_CipherFinal_ex (c, p + size, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl (c, EVP_CTRL_GCM_GET_TAG, static_cast<int> (tag), p + size) != 1)
      return SrtpStatus::CryptoError;
    memcpy (p + size + tag, trailer, sizeof (trailer));
  } else {
    uint8_t iv[16];
    srtpAesCmIv (rtcp_->salt, ssrc, index, iv);
    if (!rtcp_->aesCm (iv, p + kRtcpHeader, size - kRtcpHeader))
      return SrtpStatus::CryptoError;
    memcpy (p + size, trailer, sizeof (trailer));
    uint8_t mac[HmacSha1::kDigestSize];
    rtcp_->auth.compute (p, size + sizeof (trailer), mac);
    memcpy (p + size + sizeof (trailer), mac, tag);
  }
  st->rtcpIndex = index;
  outSize = size + tag + kSrtcpIndexSize;
  return SrtpStatus::Ok;
}

SrtpStatus
SrtpContext::unprotectRtcp (uint8_t *p, size_t size, size_t &outSize)
{
  if (!params_)
    return SrtpStatus::NotReady;
  size_t tag = params_->rtcpTagLength;
  if (size < kRtcpHeader + kSrtcpIndexSize + tag || (p[0] >> 6) != 2)
    return SrtpStatus::BadPacket;
  size_t plain = size - tag - kSrtcpIndexSize;
  /* AES-CM: E|index then tag; GCM: tag then E|index */
  const uint8_t *trailer = params_->aead ? p + plain + tag : p + plain;
  uint32_t word = rd32 (trailer);
  bool encrypted = (word & kSrtcpEBit) != 0;
  uint32_t index = word & 0x7FFFFFFFu;

  uint32_t ssrc = rd32 (p + 4);
  Stream *st = findStream (ssrc);
  if (st != nullptr && st->rtcpSeen && index <= st->rtcpIndex) {
    uint64_t back = st->rtcpIndex - index;
    if (back >= kReplayWindow)
      return SrtpStatus::ReplayOld;
    if (st->rtcpWindow.has (back))
      return SrtpStatus::Replayed;
  }
  EVP_CIPHER_CTX *c = rtcp_->cipher.get ();
  int n = 0;

  if (params_->aead) {
    uint8_t iv[kGcmIvSize];
    gcmRtcpIv (p, index, rtcp_->salt, iv);
    uint8_t tagCopy[16];
    memcpy (tagCopy, p + plain, tag);
    bool ok = EVP_CipherInit_ex (c, nullptr, nullptr, nullptr, iv, 0) == 1;
    if (encrypted) {
      ok = ok && EVP_CipherUpdate (c, nullptr, &n, p, kRtcpHeader) == 1 &&
          EVP_CipherUpdate (c, nullptr, &n, trailer, kSrtcpIndexSize) == 1 &&
          EVP_CipherUpdate (c, p + kRtcpHeader, &n, p + kRtcpHeader,
              static_cast<int> (plain - kRtcpHeader)) == 1;
    } else {
      /* not encrypted: the whole packet and E|index are the AAD */
      ok = ok && EVP_CipherUpdate (c, nullptr, &n, p, static_cast<int> (plain)) == 1 &&
          EVP_CipherUpdate (c, nullptr, &n, trailer, kSrtcpIndexSize) == 1;
    }
    ok = ok && EVP_CIPHER_CTX_ctrl (c, EVP_CTRL_GCM_SET_TAG, static_cast<int> (tag), tagCopy) == 1;
    if (!ok)
      return SrtpStatus::CryptoError;
    if (EVP_CipherFinal_ex (c, p + plain, &n) != 1)
      return SrtpStatus::AuthFail;
  } else {
    uint8_t mac[HmacSha1::kDigestSize];
    rtcp_->auth.compute (p, plain + kSrtcpIndexSize, mac);
    if (CRYPTO_memcmp (mac, p + plain + kSrtcpIndexSize, tag) != 0)
      return SrtpStatus::AuthFail;
    if (encrypted) {
      uint8_t iv[16];
      srtpAesCmIv (rtcp_->salt, ssrc, index, iv);
      if (!rtcp_->aesCm (iv, p + kRtcpHeader, plain - kRtcpHeader))
        return SrtpStatus::CryptoError;
    }
  }

  if (st == nullptr && (st = addStream (ssrc)) == nullptr)
    return SrtpStatus::TooManySsrcs;
  if (!st->rtcpSeen) {
    st->rtcpSeen = true;
    st->rtcpIndex = index;
    st->rtcpWindow = ReplayWindow ();
    st->rtcpWindow.set (0);
  } else if (index > st->rtcpIndex) {
    st->rtcpWindow.shift (index - st->rtcpIndex);
    st->rtcpIndex = index;
    st->rtcpWindow.set (0);
  } else {
    st->rtcpWindow.set (st->rtcpIndex - index);
  }
  outSize = plain;
  return SrtpStatus::Ok;
}

}  // namespace xdn::fanout
