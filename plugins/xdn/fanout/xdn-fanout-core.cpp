#include "xdn-fanout-core.h"

#include "xdn-fanout-addr.h"
#include "xdn-fanout-bytes.h"
#include "xdn-fanout-ice-lite.h"
#include "xdn-fanout-rtcp.h"
#include "xdn-fanout-srtp.h"
#include "xdn-fanout-stun.h"
#include "xdn-fanout-udp.h"
#include "xdn-rtp-rewriter.h"

#include <openssl/rand.h>

#include <fcntl.h>
#include <pthread.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <utility>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

namespace xdn::fanout {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

/* Scratch slot of a sending thread: the largest packet plus SRTP's trailer. */
constexpr size_t kSlotSize = 2048;
/* Largest datagram the receive thread reads (DTLS flights are fragmented
 * to an MTU by every client; anything larger is truncated and dropped). */
constexpr size_t kRecvSize = 4096;
constexpr unsigned kRecvBatch = 32;
/* Packets a sending thread serves one viewer before going on to the next. */
constexpr size_t kRoundBudget = 64;
/* Retransmissions per viewer per round, and NACKed packets queued per viewer. */
constexpr size_t kRetransmitBudget = 32;
constexpr size_t kMaxRetransmitQueue = 256;
/* Validated addresses kept per viewer. */
constexpr size_t kMaxAddresses = 4;
/* Per-address limits: unauthenticated datagrams from an address that is no
 * viewer's, and everything from a viewer's address. */
constexpr double kStrangerRate = 10, kStrangerBurst = 20;
constexpr double kViewerRate = 2000, kViewerBurst = 500;
constexpr size_t kMaxStrangers = 4096;
constexpr milliseconds kHousekeeping {100};
/* How long a sending thread waits for the rest of a picture once its first
 * packets are in. A payloader sends a picture's packets in one burst: when
 * they are all sent in one round, each viewer's go out as one GSO batch (a
 * single trip through the kernel) instead of one by one. */
constexpr microseconds kPictureHold {1500};
/* While every viewer is connected and a round read the socket this
 * recently, the rounds read it (see FanoutCore::Impl::readFromRound) and
 * the receive thread does not wait on it. A sending thread with viewers
 * runs a round at least every kHousekeeping without a stream, as often
 * as pictures and audio packets come with one. */
constexpr milliseconds kRoundReadSpan {3 * kHousekeeping};
/* Datagrams a round read and left to the receive thread (DTLS, STUN from
 * an address that is no viewer's); past that they are dropped. */
constexpr size_t kMaxDeferred = 64;

/* Names a thread as `top -H` and `perf` show it (at most 15 characters). */
void
nameThread (std::thread &t, const std::string &name)
{
  pthread_setname_np (t.native_handle (), name.substr (0, 15).c_str ());
}

std::string
randomString (size_t n)
{
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::vector<uint8_t> bytes (n);
  if (RAND_bytes (bytes.data (), static_cast<int> (n)) != 1)
    throw std::runtime_error ("no random bytes from OpenSSL");
  std::string s (n, 'x');
  for (size_t i = 0; i < n; i++)
    s[i] = alphabet[bytes[i] & 63];
  return s;
}

std::string
randomHex (size_t bytes)
{
  std::vector<uint8_t> b (bytes);
  if (RAND_bytes (b.data (), static_cast<int> (bytes)) != 1)
    throw std::runtime_error ("no random bytes from OpenSSL");
  static const char *digits = "0123456789abcdef";
  std::string s;
  for (uint8_t x : b) {
    s += digits[x >> 4];
    s += digits[x & 15];
  }
  return s;
}

uint32_t
randomU32 ()
{
  uint32_t v = 0;
  if (RAND_bytes (reinterpret_cast<uint8_t *> (&v), sizeof (v)) != 1)
    throw std::runtime_error ("no random bytes from OpenSSL");
  return v;
}

int64_t
unixMicrosNow ()
{
  return duration_cast<microseconds> (std::chrono::system_clock::now ().time_since_epoch ())
      .count ();
}

struct TokenBucket {
  double tokens = -1;   /* < 0: full on first use */
  Clock::time_point last;

  bool take (Clock::time_point now, double rate, double burst)
  {
    if (tokens < 0) {
      tokens = burst;
      last = now;
    }
    const double elapsed = std::chrono::duration<double> (now - last).count ();
    tokens = std::min (burst, tokens + elapsed * rate);
    last = now;
    if (tokens < 1)
      return false;
    tokens -= 1;
    return true;
  }
};

enum class ViewerState : int { New = 0, Checking = 1, Connected = 2, Removed = 3 };

const char *
viewerStateName (int s)
{
  switch (static_cast<ViewerState> (s)) {
    case ViewerState::New: return "new";
    case ViewerState::Checking: return "checking";
    case ViewerState::Connected: return "connected";
    case ViewerState::Removed: return "removed";
  }
  return "?";
}

/* What was sent to a viewer under each transport-wide sequence number
 * (size and send time), for reading its transport-cc feedback: written by
 * the viewer's sending thread, read by the receive thread. One word per
 * slot, so neither side locks and a reader never sees half an entry. The
 * stats use the sizes; the send times (microseconds, wrapping) are there
 * for a delay-based estimate to compare with the arrival times. */
class SentRing {
public:
  static constexpr size_t kSlots = 512;

  void record (uint16_t seq, size_t size, Clock::time_point at)
  {
    const uint32_t us = static_cast<uint32_t> (
        duration_cast<microseconds> (at.time_since_epoch ()).count ());
    const uint64_t e = (uint64_t (seq) << 48) | (uint64_t (size & 0xffff) << 32) | us;
    slots_[seq & (kSlots - 1)].store (e, std::memory_order_relaxed);
  }
  /* The size sent under @seq, if that is still in the ring (0: not). */
  size_t sizeOf (uint16_t seq) const
  {
    const uint64_t e = slots_[seq & (kSlots - 1)].load (std::memory_order_relaxed);
    if (uint16_t (e >> 48) != seq)
      return 0;
    return static_cast<size_t> ((e >> 32) & 0xffff);
  }

private:
  std::array<std::atomic<uint64_t>, kSlots> slots_ {};   /* seq:16 size:16 send-us:32; 0: empty */
};

/* One viewer's counters: written by the fan-out's threads, read by stats. */
struct ViewerCounters {
  explicit ViewerCounters (std::string i) : id (std::move (i)) {}
  const std::string id;
  std::atomic<int> state {int (ViewerState::New)};
  std::atomic<unsigned> thread {0};
  std::atomic<uint64_t> packetsSent {0}, bytesSent {0}, retransmits {0}, nacks {0}, plis {0},
      firs {0}, dropped {0}, rtcpPackets {0}, rembBitrate {0}, transportCc {0},
      transportCcReceived {0}, transportCcLost {0}, transportCcBitrate {0};
  std::atomic<uint32_t> fractionLost {0}, jitter {0};
  /* Set before the viewer reaches the threads when it negotiated the
   * transport-wide sequence number; never changed after. */
  std::unique_ptr<SentRing> sent;
  std::atomic<int64_t> cumulativeLost {0}, rttUs {-1};
  std::mutex lock;           /* protects address, profile */
  std::string address;
  std::string profile;
};

/* A viewer's sending state for one track; sending thread only. */
struct TrackSend {
  TrackSend (uint32_t track, MediaKind k, uint32_t rate, uint8_t pt, uint32_t ssrc,
      std::shared_ptr<PacketHistory> h)
      : trackId (track), kind (k), clockRate (rate), rewriter (pt, ssrc), history (std::move (h))
  {
  }
  uint32_t trackId;
  MediaKind kind;
  uint32_t clockRate;
  xdn::RtpRewriter rewriter;
  std::shared_ptr<PacketHistory> history;
  uint8_t transportCcExtId = 0;  /* header extension id of the transport-wide seq; 0: none */
  /* RFC 4588 RTX: retransmissions go out as packets of their own stream
   * (payload type, SSRC, sequence numbers); rtxSsrc 0: as the originals. */
  uint8_t rtxPayloadType = 0;
  uint32_t rtxSsrc = 0;
  uint16_t rtxSeq = 0;           /* the next one */
  bool waitKeyframe = false;
  bool started = false;
  /* out = in + delta for the current source (inSsrc): NACKs are mapped
   * back to the history's sequence numbers with it. */
  uint16_t seqDelta = 0;
  uint32_t tsDelta = 0;
  uint32_t inSsrc = 0;
  uint32_t lastOutTs = 0;
  Clock::time_point lastCapture;
  uint32_t packets = 0;
  uint32_t octets = 0;
};

struct Retransmit {
  uint32_t ssrc;   /* the viewer's SSRC of the track */
  uint16_t seq;    /* the viewer's sequence number */
};

/* A connected viewer as its sending thread sees it. */
struct ViewerSend {
  ViewerSend (std::shared_ptr<ViewerCounters> c, std::atomic<int64_t> &live)
      : counters (std::move (c)), liveStates (live)
  {
    liveStates++;
  }
  ~ViewerSend () { liveStates--; }

  TrackSend *byTrack (uint32_t id)
  {
    for (auto &t : tracks)
      if (t.trackId == id)
        return &t;
    return nullptr;
  }
  TrackSend *bySsrc (uint32_t ssrc)
  {
    for (auto &t : tracks)
      if (t.rewriter.ssrc () == ssrc)
        return &t;
    return nullptr;
  }

  std::shared_ptr<ViewerCounters> counters;
  std::atomic<int64_t> &liveStates;
  std::string cname;
  SockAddr address;
  SrtpContext out;
  std::vector<TrackSend> tracks;
  uint64_t cursor = 0;                 /* next window index to send */
  std::vector<Retransmit> retransmits;
  uint16_t transportSeq = 0;           /* the next transport-wide sequence number, across tracks */
  Clock::time_point nextReport;
  /* counted this round, added to counters at its end */
  uint64_t roundPackets = 0, roundBytes = 0, roundRetransmits = 0, roundDropped = 0;
};

struct SendCommand {
  enum class Type { Add, Remove, Address, Retransmit };
  Type type = Type::Add;
  std::unique_ptr<ViewerSend> viewer;
  std::string id;
  SockAddr address;
  bool bye = false;
  std::vector<Retransmit> retransmits;
};

}  // namespace

/* The receive side of a viewer; under the core's recvLock (after
 * addViewer hands it over). */
struct ViewerRecv {
  ViewerRecv (std::string id, std::string ufrag, std::string pwd,
      std::shared_ptr<ViewerCounters> c, std::atomic<int64_t> &live)
      : id (std::move (id)), credentials (std::move (ufrag), std::move (pwd)),
        counters (std::move (c)), liveStates (live)
  {
    liveStates++;
  }
  ~ViewerRecv () { liveStates--; }

  const SdpAcceptedMedia *bySsrc (uint32_t ssrc) const
  {
    for (const auto &m : media)
      if (m.ssrc == ssrc)
        return &m;
    return nullptr;
  }

  std::string id;
  IceLiteCredentials credentials;
  std::shared_ptr<ViewerCounters> counters;
  std::atomic<int64_t> &liveStates;
  std::string cname;
  std::vector<SdpAcceptedMedia> media;
  std::unique_ptr<DtlsSession> dtls;
  SrtpContext in;
  bool connected = false;
  bool released = false;
  bool sawStun = false;
  std::vector<SockAddr> addresses;    /* validated by STUN, oldest first */
  SockAddr selected;                  /* where media goes */
  SockAddr dtlsPeer;                  /* where DTLS answers go (the sender of the datagram fed) */
  Clock::time_point lastActivity;
  unsigned sender = 0;
  TokenBucket bucket;
  std::map<uint32_t, uint8_t> firSeq; /* last FIR sequence number per media SSRC */
};

namespace {

struct RecvCommand {
  enum class Type { Add, Remove, Stop };
  Type type = Type::Add;
  std::unique_ptr<ViewerRecv> viewer;
  std::string id;
  std::string reason;
  bool bye = true;                    /* Remove: tell the viewer (DTLS close, RTCP BYE) */
};

/* recvmmsg's buffers: one batch of datagrams. */
struct RecvBatch {
  RecvBatch () : buffers (kRecvBatch * kRecvSize) {}

  /* Reads up to a batch without waiting; the count (0: none). */
  int read (int fd)
  {
    for (unsigned i = 0; i < kRecvBatch; i++) {
      iovs[i].iov_base = buffers.data () + i * kRecvSize;
      iovs[i].iov_len = kRecvSize;
      msgs[i].msg_hdr = msghdr {};
      msgs[i].msg_hdr.msg_name = &addrs[i];
      msgs[i].msg_hdr.msg_namelen = sizeof (addrs[i]);
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_len = 0;
    }
    return std::max (0, recvmmsg (fd, msgs.data (), kRecvBatch, MSG_DONTWAIT, nullptr));
  }

  std::vector<uint8_t> buffers;
  std::array<mmsghdr, kRecvBatch> msgs {};
  std::array<iovec, kRecvBatch> iovs {};
  std::array<sockaddr_storage, kRecvBatch> addrs {};
};

/* A datagram a round read and left to the receive thread. */
struct Deferred {
  SockAddr from;
  std::vector<uint8_t> data;
};

}  // namespace

class Sender;

struct FanoutCore::Impl {
  FanoutSettings settings;
  FanoutCallbacks callbacks;
  /* How often the receive thread looks for viewers to time out: a tenth
   * of the timeout, within 100 ms - 1 s. */
  milliseconds housekeepingPeriod {kHousekeeping};
  int fd = -1;
  int wakeFd = -1;
  uint16_t port = 0;
  bool gso = false;
  std::shared_ptr<DtlsContext> dtls;
  std::string fingerprint;
  /* Viewer objects alive (both sides); declared before their owners. */
  std::atomic<int64_t> liveStates {0};
  std::vector<std::unique_ptr<Sender>> senders;
  std::thread recvThread;

  std::mutex stopLock;                 /* protects stopped; held while an Add is queued */
  bool stopped = false;

  struct Track {
    TrackCodec codec;
    std::shared_ptr<PacketHistory> history;
  };
  mutable std::mutex tracksLock;       /* protects tracks */
  std::map<uint32_t, Track> tracks;

  std::mutex commandLock;              /* protects recvCommands, stopRequested */
  std::vector<RecvCommand> recvCommands;
  bool stopRequested = false;

  /* Viewers added and not yet removed, with their counters (stats, ids,
   * ufrags): app threads and the receive thread. */
  mutable std::mutex registryLock;     /* protects registry, ufrags */
  std::map<std::string, std::shared_ptr<ViewerCounters>> registry;
  std::set<std::string> ufrags;

  struct KeyframeState {
    bool sent = false;
    Clock::time_point last;
    bool pending = false;
  };
  std::mutex keyframeLock;             /* protects keyframes, keyframeDue */
  std::map<uint32_t, KeyframeState> keyframes;
  Clock::time_point keyframeDue;       /* the earliest held-back request's, while any */
  std::atomic<bool> keyframesPending {false};

  /* Whoever reads the socket holds recvLock: the receive thread (all the
   * time but while it waits), or a round that finds it free while every
   * viewer is connected (readFromRound). A wake-up of the receive thread
   * for each viewer's report or consent check would cost more than
   * handling it; rounds run anyway, for every picture and audio packet. */
  std::mutex recvLock;                 /* protects the fields down to readByRounds */
  std::unordered_map<std::string, std::unique_ptr<ViewerRecv>> byUfrag;
  std::unordered_map<std::string, ViewerRecv *> byId;
  std::unordered_map<SockAddr, ViewerRecv *, SockAddrHash> byAddress;
  std::unordered_map<SockAddr, TokenBucket, SockAddrHash> strangers;
  std::set<ViewerRecv *> handshaking;
  size_t connectedViewers = 0;         /* of byId */
  std::string stopReason;
  RecvBatch recvBatch;
  /* Rounds may read: every viewer connected, no handshake, not stopped. */
  bool roundsRead = false;
  Clock::time_point lastRoundRead;     /* the last time a round read */
  std::vector<Deferred> deferred;
  std::atomic<uint64_t> receiveTurns {0}, readByRounds {0};

  std::atomic<uint64_t> packetsIn {0}, bytesIn {0}, keyframeRequests {0},
      keyframeRequestsLimited {0}, plis {0}, firs {0}, nacks {0}, stunRequests {0},
      stunErrors {0}, rateLimited {0}, invalid {0}, transportCcFeedbacks {0},
      transportCcReceived {0}, transportCcLost {0};

  ~Impl ();
  void wake ();
  void postRecv (RecvCommand c);
  void recvLoop ();
  void readFromRound ();
  int readDatagrams (bool round);
  bool processCommands ();
  void handleDatagram (const SockAddr &from, uint8_t *data, size_t size, Clock::time_point now,
      bool round);
  void defer (const SockAddr &from, const uint8_t *data, size_t size);
  void handleStun (const SockAddr &from, ViewerRecv *v, const uint8_t *data, size_t size,
      Clock::time_point now);
  void handleRtcp (ViewerRecv *v, uint8_t *data, size_t size, Clock::time_point now, bool round);
  void afterDtls (ViewerRecv *v);
  void onConnected (ViewerRecv *v);
  void bindAddress (ViewerRecv *v, const SockAddr &from, bool nominate);
  void removeNow (ViewerRecv *v, const std::string &reason, bool bye);
  void housekeeping (Clock::time_point now);
  Clock::time_point nextTimer (Clock::time_point now);
  void sendTo (const SockAddr &to, const uint8_t *data, size_t size);
  bool strangerAllowed (const SockAddr &from, Clock::time_point now);

  void requestKeyframe (uint32_t track);
  void flushKeyframeRequests ();
  void keyframeArrived (uint32_t track);
  /* The track's packet history (null: no such track); @video: whether it
   * is a video track. */
  std::shared_ptr<PacketHistory> historyOf (uint32_t track, bool *video = nullptr);
  void postSend (unsigned sender, SendCommand c);
};

/* One sending thread. */
class Sender {
public:
  Sender (FanoutCore::Impl &core, unsigned index)
      : core_ (core), batch_ (core.fd), arena_ (UdpBatchSender::kMaxBatch * kSlotSize)
  {
    batch_.setGso (core.gso);
    authJobs_.reserve (UdpBatchSender::kMaxBatch);
    thread_ = std::thread ([this] { run (); });
    nameThread (thread_, "fanout-send" + std::to_string (index));
  }
  ~Sender () { stop (); }

  /* Joins the thread, and waits for a round that a pushing thread is
   * running; no round starts after. */
  void stop ()
  {
    {
      std::lock_guard<std::mutex> l (lock_);
      stopping_ = true;
    }
    cond_.notify_all ();
    if (thread_.joinable ())
      thread_.join ();
    std::unique_lock<std::mutex> l (lock_);
    roundWaiters_++;
    cond_.wait (l, [this] { return !roundRunning_; });
    roundWaiters_--;
  }

  /* @pictureOpen: a video packet with more of its picture to come (no
   * marker bit): the round waits for them, at most kPictureHold.
   * @mayServe: the caller may run the round itself (see FanoutCore::push). */
  void push (const PacketRef &packet, bool pictureOpen, bool mayServe)
  {
    bool late = false, serveHere = false;
    {
      std::lock_guard<std::mutex> l (lock_);
      if (viewerCount_.load (std::memory_order_relaxed) == 0)
        return;
      if (incoming_.size () >= core_.settings.viewerQueue * 4) {
        incoming_.pop_front ();
        incomingDropped_++;
      }
      incoming_.push_back (packet);
      if (pictureOpen && !pictureOpen_)
        pictureOpenSince_ = Clock::now ();
      else if (pictureOpen)
        late = Clock::now () - pictureOpenSince_ >= kPictureHold;
      pictureOpen_ = pictureOpen;
      /* With nobody serving, the round is run here: the sending thread
       * sleeps on, and nobody pays for waking it. */
      if ((!pictureOpen || late) && mayServe && !roundRunning_ && !stopping_) {
        takeWork ();
        serveHere = true;
      }
    }
    if (serveHere) {
      round ();
      roundsOnPushingThread++;
      return;
    }
    /* A picture's first and middle packets wake nobody: its last one does
     * (the thread would only wake to wait for it). So does one that comes
     * after the picture was held kPictureHold without its end. */
    if (!pictureOpen || late)
      cond_.notify_one ();
  }

  void command (SendCommand c)
  {
    if (c.type == SendCommand::Type::Add)
      viewerCount_++;
    {
      std::lock_guard<std::mutex> l (lock_);
      commands_.push_back (std::move (c));
    }
    cond_.notify_one ();
  }

  size_t viewerCount () const { return viewerCount_.load (); }

  std::atomic<uint64_t> packetsSent {0}, bytesSent {0}, retransmits {0}, nackMisses {0},
      dropped {0}, senderReports {0}, srtpErrors {0}, rounds {0}, roundsOnPushingThread {0};

private:
  void run ();
  bool hasWork () const;
  void takeWork ();
  void round ();
  void apply (SendCommand &c);
  bool serve ();
  size_t copyForViewer (const ViewerSend &v, const TrackSend &t, const Packet &p, uint8_t *s,
      size_t *payloadAt = nullptr);
  void sent (ViewerSend &v, const TrackSend &t, size_t outSize);
  void sendPacket (ViewerSend &v, const Packet &p);
  void resend (ViewerSend &v, const Retransmit &r);
  void sendReports (ViewerSend &v, Clock::time_point now, bool bye);
  uint8_t *slot ();
  bool protect (ViewerSend &v, uint8_t *s, size_t size, size_t &outSize);
  void queue (ViewerSend &v, uint8_t *slot, size_t size);
  void flush ();
  void publish (ViewerSend &v);
  void trimWindow ();

  FanoutCore::Impl &core_;
  std::thread thread_;

  std::mutex lock_;                    /* protects incoming_, commands_, stopping_, incomingDropped_,
                                        * pictureOpen_, pictureOpenSince_, roundRunning_,
                                        * roundWaiters_, moreWork_, nextDue_ */
  std::condition_variable cond_;
  std::deque<PacketRef> incoming_;
  std::vector<SendCommand> commands_;
  bool stopping_ = false;
  uint64_t incomingDropped_ = 0;
  bool pictureOpen_ = false;           /* the newest packet is not the end of its picture */
  Clock::time_point pictureOpenSince_;
  std::atomic<size_t> viewerCount_ {0};
  /* Somebody runs a round: the sending thread, or a pushing thread. Only
   * one at a time; the state below is that round's. */
  bool roundRunning_ = false;
  int roundWaiters_ = 0;               /* threads waiting for the round to end */
  bool moreWork_ = false;              /* the last round left some viewer packets */
  /* nextReports_, as the last round left it; also how long a picture
   * opened while this thread sleeps is held at most. */
  Clock::time_point nextDue_;

  /* The round's (taken under lock_ by takeWork ()). */
  std::vector<SendCommand> roundCommands_;
  std::vector<PacketRef> roundIncoming_;
  uint64_t roundLost_ = 0;
  std::deque<PacketRef> window_;
  uint64_t windowBase_ = 0;            /* index of window_[0] */
  std::vector<std::unique_ptr<ViewerSend>> viewers_;
  UdpBatchSender batch_;
  std::vector<uint8_t> arena_;
  size_t slotsUsed_ = 0;
  /* Tags of the queued packets still to compute, all at once in flush (). */
  std::vector<HmacSha1::Job> authJobs_;
  Clock::time_point nextReports_;
  Clock::time_point roundNow_;         /* the send time of this round's packets */
};

void
Sender::run ()
{
  std::unique_lock<std::mutex> l (lock_);
  nextReports_ = nextDue_ = Clock::now () + kHousekeeping;
  for (bool exiting = false; !exiting;) {
    /* Woken by the last packet of a picture, audio, a command, or a packet
     * of a picture held too long (see push ()), unless the pushing thread
     * ran the round itself. A picture that is open when this thread comes
     * to wait is held until kPictureHold after its first packet; one that
     * opens while it sleeps, until the next packet after that (or
     * housekeeping). While a pushing thread runs a round, this one waits
     * for its end. A thread without viewers has no housekeeping: it sleeps
     * until a command comes. */
    for (;;) {
      const bool idle = viewerCount_.load (std::memory_order_relaxed) == 0;
      Clock::time_point until = nextDue_;
      if (pictureOpen_ && !incoming_.empty ())
        until = std::min (until, pictureOpenSince_ + kPictureHold);
      const bool ready = hasWork () || (!idle && Clock::now () >= until);
      if (ready && !roundRunning_)
        break;
      if (ready) {
        roundWaiters_++;
        cond_.wait (l);
        roundWaiters_--;
      } else if (idle) {
        cond_.wait (l);
      } else {
        cond_.wait_until (l, until);
      }
    }
    exiting = stopping_;
    takeWork ();
    l.unlock ();
    round ();
    l.lock ();
  }
  viewers_.clear ();
  window_.clear ();
}

/* Something for a round that cannot wait. Under lock_. */
bool
Sender::hasWork () const
{
  return stopping_ || moreWork_ || !commands_.empty () || (!incoming_.empty () && !pictureOpen_);
}

/* Makes the caller the one running the round, with what is queued (an
 * open picture's packets so far too). Under lock_, with no round running. */
void
Sender::takeWork ()
{
  roundRunning_ = true;
  pictureOpen_ = false;
  roundCommands_.swap (commands_);
  roundIncoming_.assign (std::make_move_iterator (incoming_.begin ()),
      std::make_move_iterator (incoming_.end ()));
  incoming_.clear ();
  roundLost_ = std::exchange (incomingDropped_, 0);
}

/* One round, on the sending thread or on a pushing thread, after
 * takeWork (). */
void
Sender::round ()
{
  rounds++;
  for (auto &c : roundCommands_)
    apply (c);
  roundCommands_.clear ();
  if (roundLost_) {
    /* The streaming thread outran this thread: every viewer misses those. */
    dropped += roundLost_ * viewers_.size ();
    for (auto &v : viewers_)
      for (auto &t : v->tracks)
        if (t.kind == MediaKind::Video && t.started && !t.waitKeyframe) {
          t.waitKeyframe = true;
          core_.requestKeyframe (t.trackId);
        }
  }
  for (auto &p : roundIncoming_)
    window_.push_back (std::move (p));
  roundIncoming_.clear ();

  const Clock::time_point now = Clock::now ();
  roundNow_ = now;
  const bool more = serve ();
  if (now >= nextReports_) {
    for (auto &v : viewers_)
      if (now >= v->nextReport)
        sendReports (*v, now, false);
    nextReports_ = now + kHousekeeping;
  }
  flush ();
  for (auto &v : viewers_)
    publish (*v);
  trimWindow ();
  core_.readFromRound ();

  bool wake;
  {
    std::lock_guard<std::mutex> l (lock_);
    roundRunning_ = false;
    moreWork_ = more;
    nextDue_ = nextReports_;
    /* the sending thread, when a round of a pushing thread left it work,
     * and whoever waits for the round's end */
    wake = roundWaiters_ > 0 || hasWork ();
  }
  if (wake)
    cond_.notify_all ();
}

void
Sender::apply (SendCommand &c)
{
  switch (c.type) {
    case SendCommand::Type::Add:
      c.viewer->cursor = windowBase_ + window_.size ();
      c.viewer->nextReport = Clock::now () + core_.settings.senderReportInterval / 2;
      viewers_.push_back (std::move (c.viewer));
      break;
    case SendCommand::Type::Remove:{
      for (size_t i = 0; i < viewers_.size (); i++) {
        if (viewers_[i]->counters->id != c.id)
          continue;
        if (c.bye) {
          sendReports (*viewers_[i], Clock::now (), true);
          flush ();
        }
        publish (*viewers_[i]);
        viewers_[i] = std::move (viewers_.back ());
        viewers_.pop_back ();
        viewerCount_--;
        break;
      }
      break;
    }
    case SendCommand::Type::Address:
      for (auto &v : viewers_)
        if (v->counters->id == c.id)
          v->address = c.address;
      break;
    case SendCommand::Type::Retransmit:
      for (auto &v : viewers_) {
        if (v->counters->id != c.id)
          continue;
        for (const auto &r : c.retransmits)
          if (v->retransmits.size () < kMaxRetransmitQueue)
            v->retransmits.push_back (r);
        break;
      }
      break;
  }
}

/* One round: each viewer gets its retransmissions and up to kRoundBudget
 * new packets. True when some viewer has more. */
bool
Sender::serve ()
{
  const uint64_t head = windowBase_ + window_.size ();
  bool more = false;
  for (auto &vp : viewers_) {
    ViewerSend &v = *vp;
    size_t n = 0;
    for (; n < v.retransmits.size () && n < kRetransmitBudget; n++)
      resend (v, v.retransmits[n]);
    v.retransmits.erase (v.retransmits.begin (), v.retransmits.begin () + n);
    if (!v.retransmits.empty ())
      more = true;

    if (v.cursor < windowBase_ || head - v.cursor > core_.settings.viewerQueue) {
      /* Fell behind: skip to the newest packet, video restarts on a keyframe. */
      const uint64_t skipped = head - v.cursor;
      v.roundDropped += skipped;
      dropped += skipped;
      v.cursor = head;
      for (auto &t : v.tracks)
        if (t.kind == MediaKind::Video) {
          t.waitKeyframe = true;
          core_.requestKeyframe (t.trackId);
        }
    }
    const uint64_t end = std::min (head, v.cursor + kRoundBudget);
    for (uint64_t i = v.cursor; i < end; i++)
      sendPacket (v, *window_[i - windowBase_]);
    v.cursor = end;
    if (end < head)
      more = true;
  }
  return more;
}

uint8_t *
Sender::slot ()
{
  if (slotsUsed_ >= UdpBatchSender::kMaxBatch)
    flush ();
  return arena_.data () + slotsUsed_ * kSlotSize;
}

/* SRTP-protects the packet in slot @s for @v; with an HMAC-SHA1 profile
 * its tag waits for flush (), which computes the round's tags together.
 * The packet must be queued next. */
bool
Sender::protect (ViewerSend &v, uint8_t *s, size_t size, size_t &outSize)
{
  HmacSha1::Job auth;
  if (v.out.protectRtp (s, size, kSlotSize, outSize, &auth) != SrtpStatus::Ok) {
    srtpErrors++;
    return false;
  }
  if (auth.key)
    authJobs_.push_back (auth);
  return true;
}

void
Sender::queue (ViewerSend &v, uint8_t *s, size_t size)
{
  if (!batch_.queue (v.address, s, size)) {
    /* not IPv4 / IPv6: nothing to send to yet; the slot is reused */
    if (!authJobs_.empty () && authJobs_.back ().message == s)
      authJobs_.pop_back ();
    return;
  }
  slotsUsed_++;
}

void
Sender::flush ()
{
  HmacSha1::many (authJobs_.data (), authJobs_.size ());
  authJobs_.clear ();
  if (batch_.queued () > 0) {
    const uint64_t before = batch_.stats ().dropped;
    batch_.flush ();
    dropped += batch_.stats ().dropped - before;
  }
  slotsUsed_ = 0;
}

/* Copies @p into the slot @s as @v gets it on track @t: the source's
 * header extension (nothing the viewer negotiated) left out, and the
 * viewer's transport-wide sequence number added as an RFC 8285 one-byte
 * extension when it negotiated that. The common case (neither) is one
 * copy. Returns the size; @payloadAt (if given) gets where the payload
 * starts. */
size_t
Sender::copyForViewer (const ViewerSend &v, const TrackSend &t, const Packet &p, uint8_t *s,
    size_t *payloadAt)
{
  if (t.transportCcExtId == 0 && !p.hasExtension ()) {
    p.copyTo (s);
    if (payloadAt)
      *payloadAt = p.headerSize ();
    return p.size ();
  }
  size_t at = p.csrcEnd ();
  p.copyRange (s, 0, at);
  if (t.transportCcExtId) {
    s[0] |= 0x10;
    wr16 (s + at, 0xBEDE);                 /* one-byte header form */
    wr16 (s + at + 2, 1);                  /* one 32-bit word */
    s[at + 4] = static_cast<uint8_t> ((t.transportCcExtId << 4) | 1);  /* id, length 2 - 1 */
    wr16 (s + at + 5, v.transportSeq);
    s[at + 7] = 0;                         /* padding */
    at += 8;
  } else {
    s[0] &= ~0x10;
  }
  const size_t payload = p.size () - p.headerSize ();
  p.copyRange (s + at, p.headerSize (), payload);
  if (payloadAt)
    *payloadAt = at;
  return at + payload;
}

/* A packet copied with copyForViewer went out: its transport-wide
 * sequence number is used. */
void
Sender::sent (ViewerSend &v, const TrackSend &t, size_t outSize)
{
  if (t.transportCcExtId == 0)
    return;
  if (SentRing *ring = v.counters->sent.get ())
    ring->record (v.transportSeq, outSize, roundNow_);
  v.transportSeq++;
}

void
Sender::sendPacket (ViewerSend &v, const Packet &p)
{
  if (!p.valid ())
    return;
  TrackSend *t = v.byTrack (p.track ());
  if (!t)
    return;
  if (t->waitKeyframe) {
    if (!p.keyframe ())
      return;
    t->waitKeyframe = false;
  }
  uint8_t *s = slot ();
  const size_t size = copyForViewer (v, *t, p, s);
  if (!t->rewriter.rewrite (s, size))
    return;
  const uint16_t outSeq = rd16 (s + 2);
  const uint32_t outTs = rd32 (s + 4);
  t->seqDelta = static_cast<uint16_t> (outSeq - p.seq ());
  t->tsDelta = outTs - p.timestamp ();
  t->inSsrc = p.ssrc ();
  t->lastOutTs = outTs;
  t->lastCapture = p.captureTime ();
  t->packets++;
  t->octets += static_cast<uint32_t> (p.payloadSize ());
  t->started = true;
  size_t outSize = 0;
  if (!protect (v, s, size, outSize))
    return;
  sent (v, *t, outSize);
  queue (v, s, outSize);
  v.roundPackets++;
  v.roundBytes += outSize;
}

void
Sender::resend (ViewerSend &v, const Retransmit &r)
{
  TrackSend *t = v.bySsrc (r.ssrc);
  if (!t || !t->started || !t->history) {
    nackMisses++;
    return;
  }
  const uint16_t inSeq = static_cast<uint16_t> (r.seq - t->seqDelta);
  PacketRef p = t->history->find (inSeq, t->inSsrc, core_.settings.historyAge);
  if (!p) {
    nackMisses++;
    return;
  }
  uint8_t *s = slot ();
  size_t header = 0;
  size_t size = copyForViewer (v, *t, *p, s, &header);
  if (t->rtxSsrc) {
    /* RFC 4588 4: the RTX packet's payload is the original sequence number
     * (the viewer's, the one it asked for) followed by the original
     * payload; its header extensions those of an original send. The
     * original's padding is not kept (the padding bit goes with it). */
    size_t payload = size - header;
    if (s[0] & 0x20) {
      const size_t padding = s[size - 1];
      if (padding == 0 || padding > payload) {
        nackMisses++;
        return;
      }
      payload -= padding;
      s[0] &= ~0x20;
    }
    std::memmove (s + header + 2, s + header, payload);
    wr16 (s + header, r.seq);
    size = header + 2 + payload;
    s[1] = static_cast<uint8_t> ((s[1] & 0x80) | t->rtxPayloadType);
    wr16 (s + 2, t->rtxSeq);
    wr32 (s + 8, t->rtxSsrc);
  } else {
    s[1] = static_cast<uint8_t> ((s[1] & 0x80) | t->rewriter.payloadType ());
    wr16 (s + 2, r.seq);
    wr32 (s + 8, t->rewriter.ssrc ());
  }
  wr32 (s + 4, p->timestamp () + t->tsDelta);
  size_t outSize = 0;
  if (!protect (v, s, size, outSize))
    return;
  if (t->rtxSsrc)
    t->rtxSeq++;
  sent (v, *t, outSize);
  queue (v, s, outSize);
  v.roundRetransmits++;
  v.roundBytes += outSize;
}

void
Sender::sendReports (ViewerSend &v, Clock::time_point now, bool bye)
{
  const uint64_t ntp = ntpFromUnixMicros (unixMicrosNow ());
  for (auto &t : v.tracks) {
    if (!t.started)
      continue;
    /* RTP time now: the last packet's timestamp moved on by the time since
     * its capture (running time mapped onto the steady clock). */
    const int64_t sinceNs = duration_cast<nanoseconds> (now - t.lastCapture).count ();
    const int64_t ticks = static_cast<int64_t> (
        static_cast<long double> (sinceNs) * t.clockRate / 1000000000.0L);
    const uint32_t rtpNow = t.lastOutTs + static_cast<uint32_t> (ticks);
    uint8_t *s = slot ();
    size_t size = rtcpWriteSenderReport (s, kSlotSize - SrtpContext::kMaxTrailer - 8,
        t.rewriter.ssrc (), ntp, rtpNow, t.packets, t.octets, v.cname.c_str ());
    if (size == 0)
      continue;
    if (bye)
      size += rtcpWriteBye (s + size, 8, t.rewriter.ssrc ());
    size_t outSize = 0;
    if (v.out.protectRtcp (s, size, kSlotSize, outSize) != SrtpStatus::Ok) {
      srtpErrors++;
      continue;
    }
    queue (v, s, outSize);
    senderReports++;
  }
  /* 0.75 to 1.25 times the interval (RFC 3550 6.3.1 randomizes too) */
  const auto interval = core_.settings.senderReportInterval;
  const auto jitter = interval / 2 * (randomU32 () % 1000) / 1000;
  v.nextReport = now + interval * 3 / 4 + jitter;
}

void
Sender::publish (ViewerSend &v)
{
  auto &c = *v.counters;
  if (v.roundPackets) {
    c.packetsSent.fetch_add (v.roundPackets, std::memory_order_relaxed);
    packetsSent.fetch_add (v.roundPackets, std::memory_order_relaxed);
  }
  if (v.roundBytes) {
    c.bytesSent.fetch_add (v.roundBytes, std::memory_order_relaxed);
    bytesSent.fetch_add (v.roundBytes, std::memory_order_relaxed);
  }
  if (v.roundRetransmits) {
    c.retransmits.fetch_add (v.roundRetransmits, std::memory_order_relaxed);
    retransmits.fetch_add (v.roundRetransmits, std::memory_order_relaxed);
  }
  if (v.roundDropped)
    c.dropped.fetch_add (v.roundDropped, std::memory_order_relaxed);
  v.roundPackets = v.roundBytes = v.roundRetransmits = v.roundDropped = 0;
}

/* Drops window entries every viewer has passed, and those beyond what a
 * viewer may lag (their viewers skip on the next round). */
void
Sender::trimWindow ()
{
  uint64_t keepFrom = windowBase_ + window_.size ();
  for (auto &v : viewers_)
    keepFrom = std::min (keepFrom, v->cursor);
  const size_t cap = core_.settings.viewerQueue + kRoundBudget;
  if (windowBase_ + window_.size () - keepFrom > cap)
    keepFrom = windowBase_ + window_.size () - cap;
  while (windowBase_ < keepFrom && !window_.empty ()) {
    window_.pop_front ();
    windowBase_++;
  }
}

/* ------------------------------------------------------------------ */

FanoutCore::Impl::~Impl ()
{
  if (fd >= 0)
    close (fd);
  if (wakeFd >= 0)
    close (wakeFd);
}

void
FanoutCore::Impl::wake ()
{
  const uint64_t one = 1;
  ssize_t r = write (wakeFd, &one, sizeof (one));
  (void) r;
}

void
FanoutCore::Impl::postRecv (RecvCommand c)
{
  {
    std::lock_guard<std::mutex> l (commandLock);
    recvCommands.push_back (std::move (c));
  }
  wake ();
}

void
FanoutCore::Impl::postSend (unsigned sender, SendCommand c)
{
  senders[sender]->command (std::move (c));
}

void
FanoutCore::Impl::sendTo (const SockAddr &to, const uint8_t *data, size_t size)
{
  if (!to.valid ())
    return;
  ssize_t r = sendto (fd, data, size, MSG_DONTWAIT, to.sa (), to.length);
  (void) r;
}

std::shared_ptr<PacketHistory>
FanoutCore::Impl::historyOf (uint32_t track, bool *video)
{
  std::lock_guard<std::mutex> l (tracksLock);
  auto it = tracks.find (track);
  if (it == tracks.end ())
    return nullptr;
  if (video)
    *video = it->second.codec.kind == MediaKind::Video;
  return it->second.history;
}

void
FanoutCore::Impl::requestKeyframe (uint32_t track)
{
  const Clock::time_point now = Clock::now ();
  {
    std::unique_lock<std::mutex> l (keyframeLock);
    KeyframeState &s = keyframes[track];
    if (s.sent && now - s.last < settings.keyframeMinInterval) {
      keyframeRequestsLimited++;
      if (s.pending)
        return;
      /* Held back: the receive thread makes it when it is due. */
      s.pending = true;
      const Clock::time_point due = s.last + settings.keyframeMinInterval;
      const bool earlier = !keyframesPending || due < keyframeDue;
      if (earlier)
        keyframeDue = due;
      keyframesPending = true;
      l.unlock ();
      if (earlier)
        wake ();
      return;
    }
    s.sent = true;
    s.last = now;
    s.pending = false;
  }
  keyframeRequests++;
  if (callbacks.keyframeRequest)
    callbacks.keyframeRequest (track);
}

void
FanoutCore::Impl::flushKeyframeRequests ()
{
  if (!keyframesPending.load ())
    return;
  const Clock::time_point now = Clock::now ();
  std::vector<uint32_t> due;
  {
    std::lock_guard<std::mutex> l (keyframeLock);
    bool still = false;
    for (auto &[track, s] : keyframes) {
      if (!s.pending)
        continue;
      if (now - s.last >= settings.keyframeMinInterval) {
        s.pending = false;
        s.last = now;
        due.push_back (track);
      } else {
        const Clock::time_point at = s.last + settings.keyframeMinInterval;
        keyframeDue = still ? std::min (keyframeDue, at) : at;
        still = true;
      }
    }
    keyframesPending = still;
  }
  for (uint32_t track : due) {
    keyframeRequests++;
    if (callbacks.keyframeRequest)
      callbacks.keyframeRequest (track);
  }
}

/* A keyframe satisfies every request made before it: one held back for
 * the track is dropped. */
void
FanoutCore::Impl::keyframeArrived (uint32_t track)
{
  std::lock_guard<std::mutex> l (keyframeLock);
  auto it = keyframes.find (track);
  if (it != keyframes.end ())
    it->second.pending = false;
}

bool
FanoutCore::Impl::strangerAllowed (const SockAddr &from, Clock::time_point now)
{
  auto it = strangers.find (from);
  if (it == strangers.end ()) {
    /* Table full (datagrams from very many addresses): a newcomer is let
     * through untracked rather than evicting the limits of the others;
     * idle entries are dropped by housekeeping. */
    if (strangers.size () >= kMaxStrangers)
      return true;
    it = strangers.emplace (from, TokenBucket ()).first;
  }
  return it->second.take (now, kStrangerRate, kStrangerBurst);
}

/* Receive thread: commands from addViewer, removeViewer, stop. False once
 * asked to stop. */
bool
FanoutCore::Impl::processCommands ()
{
  std::vector<RecvCommand> commands;
  bool stop;
  {
    std::lock_guard<std::mutex> l (commandLock);
    commands.swap (recvCommands);
    stop = stopRequested;
  }
  for (auto &c : commands) {
    switch (c.type) {
      case RecvCommand::Type::Add:{
        ViewerRecv *v = c.viewer.get ();
        v->lastActivity = Clock::now ();
        byId[v->id] = v;
        byUfrag[v->credentials.ufrag] = std::move (c.viewer);
        break;
      }
      case RecvCommand::Type::Remove:{
        auto it = byId.find (c.id);
        if (it != byId.end ())
          removeNow (it->second, c.reason, c.bye);
        break;
      }
      case RecvCommand::Type::Stop:
        stopReason = c.reason;
        break;
    }
  }
  return !stop;
}

void
FanoutCore::Impl::removeNow (ViewerRecv *v, const std::string &reason, bool bye)
{
  const std::string id = v->id;
  if (bye && v->dtls && !v->released)
    v->dtls->close ();
  for (const auto &a : v->addresses) {
    auto it = byAddress.find (a);
    if (it != byAddress.end () && it->second == v)
      byAddress.erase (it);
  }
  handshaking.erase (v);
  if (v->connected) {
    connectedViewers--;
    SendCommand c;
    c.type = SendCommand::Type::Remove;
    c.id = id;
    c.bye = bye;
    postSend (v->sender, std::move (c));
  }
  v->counters->state = int (ViewerState::Removed);
  {
    std::lock_guard<std::mutex> l (registryLock);
    registry.erase (id);
    ufrags.erase (v->credentials.ufrag);
  }
  byId.erase (id);
  byUfrag.erase (v->credentials.ufrag);  /* frees v */
  if (callbacks.viewerEvent)
    callbacks.viewerEvent (id, ViewerEvent::Removed, reason);
}

void
FanoutCore::Impl::bindAddress (ViewerRecv *v, const SockAddr &from, bool nominate)
{
  auto it = byAddress.find (from);
  if (it != byAddress.end () && it->second != v) {
    /* The address moved to another viewer (a NAT rebinding, a reused port). */
    ViewerRecv *old = it->second;
    old->addresses.erase (std::remove (old->addresses.begin (), old->addresses.end (), from),
        old->addresses.end ());
    if (old->selected == from)
      old->selected = old->addresses.empty () ? SockAddr () : old->addresses.back ();
  }
  byAddress[from] = v;
  if (std::find (v->addresses.begin (), v->addresses.end (), from) == v->addresses.end ()) {
    if (v->addresses.size () >= kMaxAddresses) {
      auto victim = std::find_if (v->addresses.begin (), v->addresses.end (),
          [v] (const SockAddr &a) { return a != v->selected; });
      auto bit = byAddress.find (*victim);
      if (bit != byAddress.end () && bit->second == v)
        byAddress.erase (bit);
      v->addresses.erase (victim);
    }
    v->addresses.push_back (from);
  }
  if ((nominate || !v->selected.valid ()) && v->selected != from) {
    v->selected = from;
    {
      std::lock_guard<std::mutex> l (v->counters->lock);
      v->counters->address = from.toString ();
    }
    if (v->connected) {
      SendCommand c;
      c.type = SendCommand::Type::Address;
      c.id = v->id;
      c.address = from;
      postSend (v->sender, std::move (c));
    }
  }
}

void
FanoutCore::Impl::handleStun (const SockAddr &from, ViewerRecv *v, const uint8_t *data,
    size_t size, Clock::time_point now)
{
  if (v ? !v->bucket.take (now, kViewerRate, kViewerBurst) : !strangerAllowed (from, now)) {
    rateLimited++;
    return;
  }
  stunRequests++;
  uint8_t reply[256];
  auto lookup = [this] (std::string_view ufrag) -> const IceLiteCredentials * {
    auto it = byUfrag.find (std::string (ufrag));
    return it == byUfrag.end () ? nullptr : &it->second->credentials;
  };
  BindingResult r = iceLiteHandleRequest (data, size, from, lookup, reply, sizeof (reply));
  if (r.action == BindingAction::Reply)
    sendTo (from, reply, r.replySize);
  if (r.errorCode)
    stunErrors++;
  if (!r.authenticated) {
    invalid++;
    return;
  }
  if (r.errorCode != 0)
    return;
  auto it = byUfrag.find (std::string (r.localUfrag));
  if (it == byUfrag.end ())
    return;
  ViewerRecv *viewer = it->second.get ();
  viewer->lastActivity = now;
  if (!viewer->sawStun) {
    viewer->sawStun = true;
    viewer->counters->state = int (ViewerState::Checking);
  }
  bindAddress (viewer, from, r.useCandidate);
  if (viewer->dtls->state () == DtlsState::New) {
    viewer->dtls->start ();
    handshaking.insert (viewer);
  }
}

void
FanoutCore::Impl::afterDtls (ViewerRecv *v)
{
  const DtlsState s = v->dtls->state ();
  if (s != DtlsState::New && s != DtlsState::Handshaking)
    handshaking.erase (v);
  else
    handshaking.insert (v);
  if (s == DtlsState::Connected && !v->connected)
    onConnected (v);
  else if (s == DtlsState::Failed)
    removeNow (v, v->dtls->error ().empty () ? "dtls: handshake failed" : v->dtls->error (), false);
  else if (s == DtlsState::Closed)
    removeNow (v, "the viewer closed DTLS (close_notify)", false);
}

void
FanoutCore::Impl::onConnected (ViewerRecv *v)
{
  const DtlsSrtpKeys &keys = *v->dtls->srtpKeys ();
  auto send = std::make_unique<ViewerSend> (v->counters, liveStates);
  if (!keys.initInbound (v->in) || !keys.initOutbound (send->out)) {
    removeNow (v, "srtp: the negotiated keys were refused", false);
    return;
  }
  v->connected = true;
  connectedViewers++;
  send->cname = v->cname;
  send->address = v->selected.valid () ? v->selected : v->dtlsPeer;
  for (const auto &m : v->media) {
    TrackSend t (m.trackId, m.kind, m.clockRate, m.payloadType, m.ssrc, historyOf (m.trackId));
    t.transportCcExtId = m.transportCcExtId;
    if (m.rtxSsrc) {
      t.rtxPayloadType = m.rtxPayloadType;
      t.rtxSsrc = m.rtxSsrc;
      t.rtxSeq = static_cast<uint16_t> (randomU32 ());  /* RFC 3550 5.1: a random start */
    }
    t.waitKeyframe = m.kind == MediaKind::Video;
    send->tracks.push_back (std::move (t));
  }
  /* The first sending thread with fewer than viewersPerThread viewers, or,
   * when all have that many, the one with the fewest. */
  unsigned best = 0;
  for (unsigned i = 1; i < senders.size (); i++) {
    const size_t count = senders[i]->viewerCount (), fewest = senders[best]->viewerCount ();
    if (fewest >= settings.viewersPerThread && count < fewest)
      best = i;
  }
  v->sender = best;
  v->counters->thread = best;
  v->counters->state = int (ViewerState::Connected);
  {
    std::lock_guard<std::mutex> l (v->counters->lock);
    const SrtpProfileParams *pp = srtpProfileParams (keys.profile);
    v->counters->profile = pp ? pp->name : "";
  }
  SendCommand c;
  c.type = SendCommand::Type::Add;
  c.viewer = std::move (send);
  postSend (best, std::move (c));
  if (callbacks.viewerEvent)
    callbacks.viewerEvent (v->id, ViewerEvent::Connected, "");
  for (const auto &m : v->media)
    if (m.kind == MediaKind::Video)
      requestKeyframe (m.trackId);
}

namespace {

/* What one viewer's RTCP says, turned into actions after the walk. */
class ViewerFeedback : public RtcpVisitor {
public:
  ViewerFeedback (ViewerRecv &v) : v_ (v) {}

  void onReportBlock (uint32_t, const RtcpReportBlock &b) override
  {
    if (!v_.bySsrc (b.ssrc))
      return;
    auto &c = *v_.counters;
    c.fractionLost = b.fractionLost;
    c.cumulativeLost = b.cumulativeLost;
    c.jitter = b.jitter;
    if (b.lastSr != 0) {
      /* RFC 3550 6.4.1: RTT = now - LSR - DLSR, in 1/65536 s */
      const uint32_t nowMid = static_cast<uint32_t> (ntpFromUnixMicros (unixMicrosNow ()) >> 16);
      const int64_t rtt = int64_t (uint32_t (nowMid - b.lastSr - b.delaySinceLastSr));
      if (rtt < (int64_t (1) << 31))
        c.rttUs = rtt * 1000000 / 65536;
    }
  }
  void onNack (uint32_t, uint32_t media, uint16_t seq) override
  {
    const SdpAcceptedMedia *m = v_.bySsrc (media);
    if (m && m->nack)
      nacks.push_back (Retransmit {media, seq});
  }
  void onPli (uint32_t, uint32_t media) override
  {
    if (const SdpAcceptedMedia *m = v_.bySsrc (media)) {
      v_.counters->plis++;
      plis++;
      keyframeTracks.push_back (m->trackId);
    }
  }
  void onFir (uint32_t, uint32_t media, uint8_t seqNr) override
  {
    const SdpAcceptedMedia *m = v_.bySsrc (media);
    if (!m)
      return;
    /* A FIR repeated with the same sequence number is a retransmission of
     * the same request (RFC 5104 4.3.1.1). */
    auto it = v_.firSeq.find (media);
    if (it != v_.firSeq.end () && it->second == seqNr)
      return;
    v_.firSeq[media] = seqNr;
    v_.counters->firs++;
    firs++;
    keyframeTracks.push_back (m->trackId);
  }
  void onRemb (uint32_t, uint64_t bitrate, const uint8_t *, unsigned) override
  {
    v_.counters->rembBitrate = bitrate;
  }
  /* Which of the packets sent the viewer got, and the rate they reached
   * it at: the sizes of those reported received (still in the sent ring)
   * over the span of their arrival times on the viewer's clock. */
  void onTransportCc (const RtcpTransportCc &fb) override
  {
    auto &c = *v_.counters;
    const SentRing *ring = c.sent.get ();
    uint64_t lost = 0, bytes = 0, earliestSize = 0;
    int64_t earliest = 0, latest = 0;
    bool any = false;
    fb.forEach ([&] (uint16_t seq, bool received, int64_t arrivalUs) {
      if (!received) {
        lost++;
        return;
      }
      const size_t size = ring ? ring->sizeOf (seq) : 0;
      if (size == 0)
        return;
      bytes += size;
      if (!any || arrivalUs < earliest) {
        earliest = arrivalUs;
        earliestSize = size;
      }
      if (!any || arrivalUs > latest)
        latest = arrivalUs;
      any = true;
    });
    c.transportCc++;
    c.transportCcReceived += fb.received;
    c.transportCcLost += lost;
    /* The first arrival opens the span: the bytes after it arrived in it. */
    if (any && latest > earliest)
      c.transportCcBitrate = (bytes - earliestSize) * 8 * 1000000 / uint64_t (latest - earliest);
    transportCcFeedbacks++;
    transportCcReceived += fb.received;
    transportCcLost += lost;
  }
  void onMalformed (uint8_t, uint8_t) override { malformed++; }
  void onBye (uint32_t) override { bye = true; }

  std::vector<Retransmit> nacks;
  std::vector<uint32_t> keyframeTracks;
  unsigned plis = 0, firs = 0, malformed = 0;
  uint64_t transportCcFeedbacks = 0, transportCcReceived = 0, transportCcLost = 0;
  bool bye = false;

private:
  ViewerRecv &v_;
};

}  // namespace

void
FanoutCore::Impl::handleRtcp (ViewerRecv *v, uint8_t *data, size_t size, Clock::time_point now,
    bool round)
{
  size_t plain = 0;
  if (v->in.unprotectRtcp (data, size, plain) != SrtpStatus::Ok) {
    invalid++;
    return;
  }
  v->lastActivity = now;
  v->counters->rtcpPackets++;
  if (!v->released && v->dtls->releaseHandshakeState ())
    v->released = true;  /* the viewer has our keys: OpenSSL's state can go */
  ViewerFeedback fb (*v);
  rtcpParse (data, plain, fb);
  plis += fb.plis;
  firs += fb.firs;
  invalid += fb.malformed;
  if (fb.transportCcFeedbacks) {
    transportCcFeedbacks += fb.transportCcFeedbacks;
    transportCcReceived += fb.transportCcReceived;
    transportCcLost += fb.transportCcLost;
  }
  if (!fb.nacks.empty ()) {
    v->counters->nacks += fb.nacks.size ();
    nacks += fb.nacks.size ();
    SendCommand c;
    c.type = SendCommand::Type::Retransmit;
    c.id = v->id;
    c.retransmits = std::move (fb.nacks);
    postSend (v->sender, std::move (c));
  }
  std::sort (fb.keyframeTracks.begin (), fb.keyframeTracks.end ());
  fb.keyframeTracks.erase (std::unique (fb.keyframeTracks.begin (), fb.keyframeTracks.end ()),
      fb.keyframeTracks.end ());
  for (uint32_t track : fb.keyframeTracks)
    requestKeyframe (track);
  if (fb.bye) {
    if (!round) {
      removeNow (v, "the viewer said RTCP BYE", false);
      return;
    }
    /* Removal tells the application: not from a round. */
    RecvCommand c;
    c.type = RecvCommand::Type::Remove;
    c.id = v->id;
    c.reason = "the viewer said RTCP BYE";
    c.bye = false;
    postRecv (std::move (c));
  }
}

/* Under recvLock. @round: read by a round, which handles what a connected
 * viewer sends in the steady state (SRTCP, consent checks) and leaves the
 * rest (DTLS, STUN from a new address) to the receive thread. */
void
FanoutCore::Impl::handleDatagram (const SockAddr &from, uint8_t *data, size_t size,
    Clock::time_point now, bool round)
{
  auto it = byAddress.find (from);
  ViewerRecv *v = it == byAddress.end () ? nullptr : it->second;
  const uint8_t b0 = data[0];
  if (b0 <= 3) {
    if (round && !v)
      defer (from, data, size);
    else
      handleStun (from, v, data, size, now);
  } else if (b0 >= 20 && b0 <= 63) {
    if (!v) {
      invalid++;
      return;
    }
    if (round) {
      defer (from, data, size);
      return;
    }
    if (!v->bucket.take (now, kViewerRate, kViewerBurst)) {
      rateLimited++;
      return;
    }
    v->dtlsPeer = from;
    v->dtls->feed (data, size);
    afterDtls (v);
  } else if (b0 >= 128 && b0 <= 191) {
    if (!v || !v->connected || !rtcpLooksLike (data, size)) {
      invalid++;  /* RTP from a viewer that only receives, or no viewer's */
      return;
    }
    if (!v->bucket.take (now, kViewerRate, kViewerBurst)) {
      rateLimited++;
      return;
    }
    handleRtcp (v, data, size, now, round);
  } else {
    invalid++;
  }
}

void
FanoutCore::Impl::defer (const SockAddr &from, const uint8_t *data, size_t size)
{
  if (deferred.size () >= kMaxDeferred) {
    rateLimited++;
    return;
  }
  deferred.push_back (Deferred {from, std::vector<uint8_t> (data, data + size)});
}

/* Under recvLock: reads a batch from the socket and handles it. Returns
 * how many datagrams were read. */
int
FanoutCore::Impl::readDatagrams (bool round)
{
  RecvBatch &b = recvBatch;
  const int n = b.read (fd);
  if (n == 0)
    return 0;
  const Clock::time_point now = Clock::now ();
  for (int i = 0; i < n; i++) {
    const size_t size = b.msgs[i].msg_len;
    if (size == 0 || (b.msgs[i].msg_hdr.msg_flags & MSG_TRUNC)) {
      invalid++;
      continue;
    }
    const SockAddr from = SockAddr::fromSockaddr (
        reinterpret_cast<const sockaddr *> (&b.addrs[i]), b.msgs[i].msg_hdr.msg_namelen);
    if (!from.valid ())
      continue;
    handleDatagram (from, b.buffers.data () + i * kRecvSize, size, now, round);
  }
  return n;
}

/* At the end of every round: while every viewer is connected, the round
 * reads what the viewers sent (a batch at most) if nobody else is, so
 * that their reports and consent checks wake nobody. A datagram waits at
 * most until the next round, or kRoundReadSpan when rounds stop (the
 * receive thread then waits on the socket again). What needs the receive
 * thread (DTLS, a new address, a full batch: more may be waiting) wakes
 * it. */
void
FanoutCore::Impl::readFromRound ()
{
  std::unique_lock<std::mutex> l (recvLock, std::try_to_lock);
  if (!l.owns_lock () || !roundsRead)
    return;
  lastRoundRead = Clock::now ();
  const int n = readDatagrams (true);
  readByRounds += n;
  const bool handOver = !deferred.empty () || n == int (kRecvBatch);
  l.unlock ();
  if (handOver)
    wake ();
}

/* The receive thread's next timer besides housekeeping: a DTLS
 * retransmission, a held-back keyframe request. */
Clock::time_point
FanoutCore::Impl::nextTimer (Clock::time_point now)
{
  Clock::time_point next = now + housekeepingPeriod;
  for (ViewerRecv *v : handshaking)
    if (auto t = v->dtls->nextTimeout ())
      next = std::min (next, *t);
  if (keyframesPending) {
    std::lock_guard<std::mutex> l (keyframeLock);
    if (keyframesPending)
      next = std::min (next, keyframeDue);
  }
  return next;
}

void
FanoutCore::Impl::housekeeping (Clock::time_point now)
{
  /* Consent freshness: no authenticated STUN or SRTCP for the timeout. */
  std::vector<std::pair<ViewerRecv *, std::string>> expired;
  const auto timeout = settings.viewerTimeout;
  const std::string secs = std::to_string (timeout.count () / 1000.0).substr (0, 4) + " s";
  for (auto &[id, v] : byId)
    if (now - v->lastActivity > timeout)
      expired.emplace_back (v, v->sawStun
          ? "timeout: no STUN consent or RTCP from the viewer for " + secs
          : "timeout: no ICE connectivity check within " + secs);
  for (auto &[v, why] : expired)
    removeNow (v, why, false);

  /* Rate limits of addresses quiet for a while (their buckets are full). */
  if (strangers.size () > kMaxStrangers / 4)
    for (auto it = strangers.begin (); it != strangers.end ();)
      it = now - it->second.last > std::chrono::seconds (5) ? strangers.erase (it) : std::next (it);
}

void
FanoutCore::Impl::recvLoop ()
{
  Clock::time_point nextHousekeeping = Clock::now () + housekeepingPeriod;
  std::unique_lock<std::mutex> l (recvLock);

  for (;;) {
    /* While rounds read the socket, wait only for commands and timers, and
     * for rounds to stop. */
    Clock::time_point now = Clock::now ();
    Clock::time_point wakeAt = std::min (nextTimer (now), nextHousekeeping);
    const bool roundsReading = roundsRead && now - lastRoundRead < kRoundReadSpan;
    if (roundsReading)
      wakeAt = std::min (wakeAt, lastRoundRead + kRoundReadSpan);
    const int timeoutMs = wakeAt <= now ? 0
        : static_cast<int> (duration_cast<milliseconds> (wakeAt - now).count () + 1);
    pollfd fds[2] = {{wakeFd, POLLIN, 0}, {fd, POLLIN, 0}};
    l.unlock ();
    poll (fds, roundsReading ? 1 : 2, timeoutMs);
    l.lock ();
    receiveTurns++;
    if (fds[0].revents & POLLIN) {
      uint64_t n;
      ssize_t r = read (wakeFd, &n, sizeof (n));
      (void) r;
    }
    if (!processCommands ())
      break;

    now = Clock::now ();
    for (auto &d : std::exchange (deferred, {}))
      handleDatagram (d.from, d.data.data (), d.data.size (), now, false);
    /* A bounded amount of input per turn, so timers and commands keep
     * their pace under a flood. */
    if (roundsReading || (fds[1].revents & POLLIN))
      for (int batches = 0; batches < 16; batches++)
        if (readDatagrams (false) < int (kRecvBatch))
          break;

    /* DTLS retransmissions and give-ups (over a copy: removal edits the set). */
    now = Clock::now ();
    if (!handshaking.empty ())
      for (ViewerRecv *v : std::vector<ViewerRecv *> (handshaking.begin (), handshaking.end ()))
        if (auto t = v->dtls->nextTimeout (); t && *t <= now) {
          v->dtls->onTimeout ();
          afterDtls (v);
        }
    flushKeyframeRequests ();
    if (now >= nextHousekeeping) {
      housekeeping (now);
      nextHousekeeping = now + housekeepingPeriod;
    }
    roundsRead = !byId.empty () && connectedViewers == byId.size () && handshaking.empty ();
  }

  /* Stopping: every viewer goes, with the reason stop () was given. */
  roundsRead = false;
  std::vector<ViewerRecv *> all;
  for (auto &[id, v] : byId)
    all.push_back (v);
  for (ViewerRecv *v : all)
    removeNow (v, stopReason.empty () ? "stopped" : stopReason, true);
}

/* ------------------------------------------------------------------ */

FanoutCore::FanoutCore (std::unique_ptr<Impl> impl) : impl_ (std::move (impl)) {}

FanoutCore::~FanoutCore ()
{
  stop ();
}

std::unique_ptr<FanoutCore>
FanoutCore::create (const FanoutSettings &settings, FanoutCallbacks callbacks, std::string *error)
{
  auto fail = [error] (std::string why) -> std::unique_ptr<FanoutCore> {
    if (error)
      *error = std::move (why);
    return nullptr;
  };
  if (settings.addresses.empty ())
    return fail ("no local address");
  bool v4 = false, v6 = false;
  for (const auto &a : settings.addresses) {
    SockAddr s = SockAddr::parse (a, 0);
    if (!s.valid ())
      return fail ("address '" + a + "' is not a numeric IPv4 or IPv6 address");
    const bool any = (s.family () == AF_INET &&
        reinterpret_cast<const sockaddr_in *> (s.sa ())->sin_addr.s_addr == htonl (INADDR_ANY)) ||
        (s.family () == AF_INET6 &&
            IN6_IS_ADDR_UNSPECIFIED (&reinterpret_cast<const sockaddr_in6 *> (s.sa ())->sin6_addr));
    if (any)
      return fail ("address '" + a + "' is a wildcard: a viewer cannot be told to reach it; "
          "list the addresses to announce");
    (s.family () == AF_INET ? v4 : v6) = true;
  }

  auto impl = std::make_unique<Impl> ();
  impl->settings = settings;
  impl->housekeepingPeriod = std::clamp (duration_cast<milliseconds> (settings.viewerTimeout / 10),
      kHousekeeping, milliseconds (1000));
  impl->callbacks = std::move (callbacks);
  if (impl->settings.threads == 0)
    impl->settings.threads = std::max (1u, std::thread::hardware_concurrency ());
  impl->settings.viewerQueue = std::max<size_t> (impl->settings.viewerQueue, 16);

  SockAddr bindAddr;
  if (settings.addresses.size () == 1)
    bindAddr = SockAddr::parse (settings.addresses.front (), settings.port);
  else
    bindAddr = SockAddr::parse (v6 ? "::" : "0.0.0.0", settings.port);
  impl->fd = socket (bindAddr.family (), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (impl->fd < 0)
    return fail (std::string ("socket: ") + std::strerror (errno));
  if (v6 && v4) {
    int off = 0;
    setsockopt (impl->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof (off));
  }
  int bufSize = 8 * 1024 * 1024;
  setsockopt (impl->fd, SOL_SOCKET, SO_SNDBUF, &bufSize, sizeof (bufSize));
  setsockopt (impl->fd, SOL_SOCKET, SO_RCVBUF, &bufSize, sizeof (bufSize));
  /* Don't fragment, whatever the path MTU cache says (WebRTC packets fit a
   * 1280-byte MTU). With DF set the kernel also skips the shared IP ID
   * generator that every unconnected send would otherwise go through. */
  int probe = IP_PMTUDISC_PROBE;
  setsockopt (impl->fd, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof (probe));
  if (v6) {
    probe = IPV6_PMTUDISC_PROBE;
    setsockopt (impl->fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &probe, sizeof (probe));
  }
  if (bind (impl->fd, bindAddr.sa (), bindAddr.length) != 0)
    return fail ("cannot bind UDP " + bindAddr.toString () + ": " + std::strerror (errno));
  sockaddr_storage bound {};
  socklen_t boundLength = sizeof (bound);
  getsockname (impl->fd, reinterpret_cast<sockaddr *> (&bound), &boundLength);
  impl->port = SockAddr::fromSockaddr (reinterpret_cast<sockaddr *> (&bound), boundLength).port ();
  impl->gso = UdpBatchSender::gsoSupported (impl->fd);
  impl->wakeFd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl->wakeFd < 0)
    return fail (std::string ("eventfd: ") + std::strerror (errno));

  impl->dtls = settings.dtlsContext;
  if (!impl->dtls) {
    auto cert = DtlsCertificate::processCertificate ();
    if (!cert)
      return fail ("cannot make the DTLS certificate");
    std::string why;
    impl->dtls = DtlsContext::create (cert, kDtlsDefaultSrtpProfiles, &why);
    if (!impl->dtls)
      return fail ("dtls: " + why);
  }
  impl->fingerprint = impl->dtls->certificate ().fingerprint ().toString ();

  Impl *raw = impl.get ();
  for (unsigned i = 0; i < impl->settings.threads; i++)
    impl->senders.push_back (std::make_unique<Sender> (*raw, i));
  impl->recvThread = std::thread ([raw] { raw->recvLoop (); });
  nameThread (impl->recvThread, "fanout-recv");
  return std::unique_ptr<FanoutCore> (new FanoutCore (std::move (impl)));
}

uint16_t
FanoutCore::port () const
{
  return impl_->port;
}

const std::vector<std::string> &
FanoutCore::addresses () const
{
  return impl_->settings.addresses;
}

void
FanoutCore::setTrack (const TrackCodec &track)
{
  std::lock_guard<std::mutex> l (impl_->tracksLock);
  auto &t = impl_->tracks[track.trackId];
  t.codec = track;
  if (!t.history)
    t.history = std::make_shared<PacketHistory> (impl_->settings.historyPackets);
}

void
FanoutCore::removeTrack (uint32_t trackId)
{
  std::lock_guard<std::mutex> l (impl_->tracksLock);
  impl_->tracks.erase (trackId);
}

void
FanoutCore::push (PacketRef packet)
{
  if (!packet)
    return;
  impl_->packetsIn.fetch_add (1, std::memory_order_relaxed);
  impl_->bytesIn.fetch_add (packet->size (), std::memory_order_relaxed);
  if (!packet->valid ()) {
    impl_->invalid++;
    return;
  }
  bool video = false;
  std::shared_ptr<PacketHistory> history = impl_->historyOf (packet->track (), &video);
  if (!history)
    return;  /* no caps on the track yet */
  history->add (packet);
  if (packet->keyframe () && impl_->keyframesPending.load (std::memory_order_relaxed))
    impl_->keyframeArrived (packet->track ());
  const bool pictureOpen = video && !packet->marker ();
  /* While one sending thread has viewers, this thread may serve them
   * itself when that thread is idle. With more, each round stays on its
   * own thread: served one after another here, they would not overlap. */
  size_t serving = 0;
  for (auto &s : impl_->senders)
    serving += s->viewerCount () > 0;
  const bool mayServe = serving == 1 && impl_->settings.pushingThreadServes;
  for (auto &s : impl_->senders)
    s->push (packet, pictureOpen, mayServe);
}

FanoutCore::AddResult
FanoutCore::addViewer (std::string_view offer)
{
  AddResult result;
  Impl &d = *impl_;
  try {
    {
      std::lock_guard<std::mutex> l (d.stopLock);
      if (d.stopped) {
        result.error = "the fan-out is stopped";
        return result;
      }
    }
    std::vector<TrackCodec> tracks;
    {
      std::lock_guard<std::mutex> l (d.tracksLock);
      for (const auto &[id, t] : d.tracks)
        tracks.push_back (t.codec);
    }
    if (tracks.empty ()) {
      result.error = "the stream has no track yet";
      return result;
    }

    std::string id = randomHex (8);
    std::string ufrag = randomString (12);
    {
      std::lock_guard<std::mutex> l (d.registryLock);
      if (d.registry.size () >= d.settings.maxViewers) {
        result.error = "at the limit of " + std::to_string (d.settings.maxViewers) + " viewers";
        return result;
      }
      while (d.ufrags.count (ufrag) || d.registry.count (id)) {
        ufrag = randomString (12);
        id = randomHex (8);
      }
    }
    const std::string pwd = randomString (24);
    const std::string cname = randomString (16);

    SdpAnswerParams params;
    params.iceUfrag = ufrag;
    params.icePwd = pwd;
    params.fingerprint = d.fingerprint;
    params.addresses = d.settings.addresses;
    params.port = d.port;
    params.cname = cname;
    params.streamId = d.settings.streamId;
    params.sessionId = (uint64_t (randomU32 ()) << 31) | randomU32 ();
    params.newSsrc = [] { return randomU32 (); };
    std::string why;
    auto negotiation = SdpAnswerer (tracks).answer (offer, params, &why);
    if (!negotiation) {
      result.error = why;
      return result;
    }
    auto fingerprint = DtlsFingerprint::parse (negotiation->remoteFingerprint);
    if (!fingerprint) {
      result.error = "the offer's a=fingerprint '" + negotiation->remoteFingerprint.substr (0, 120)
          + "' is not a sha-1/224/256/384/512 fingerprint";
      return result;
    }

    auto counters = std::make_shared<ViewerCounters> (id);
    for (const auto &m : negotiation->accepted)
      if (m.transportCcExtId && !counters->sent)
        counters->sent = std::make_unique<SentRing> ();
    auto viewer = std::make_unique<ViewerRecv> (id, ufrag, pwd, counters, d.liveStates);
    viewer->cname = cname;
    viewer->media = negotiation->accepted;
    ViewerRecv *raw = viewer.get ();
    Impl *core = &d;
    viewer->dtls = std::make_unique<DtlsSession> (d.dtls, DtlsRole::Server, *fingerprint,
        [core, raw] (const uint8_t *data, size_t size) { core->sendTo (raw->dtlsPeer, data, size); });
    if (viewer->dtls->state () == DtlsState::Failed) {
      result.error = "dtls: " + viewer->dtls->error ();
      return result;
    }
    /* Under stopLock: an Add is queued before stop ()'s Stop or not at all. */
    std::lock_guard<std::mutex> stopGuard (d.stopLock);
    if (d.stopped) {
      result.error = "the fan-out is stopped";
      return result;
    }
    {
      std::lock_guard<std::mutex> l (d.registryLock);
      d.registry[id] = counters;
      d.ufrags.insert (ufrag);
    }
    RecvCommand c;
    c.type = RecvCommand::Type::Add;
    c.viewer = std::move (viewer);
    d.postRecv (std::move (c));
    result.id = id;
    result.answer = std::move (negotiation->answer);
  } catch (const std::exception &e) {
    result = AddResult ();
    result.error = std::string ("internal error: ") + e.what ();
  }
  return result;
}

bool
FanoutCore::removeViewer (const std::string &id, const std::string &reason)
{
  {
    std::lock_guard<std::mutex> l (impl_->registryLock);
    if (!impl_->registry.count (id))
      return false;
  }
  RecvCommand c;
  c.type = RecvCommand::Type::Remove;
  c.id = id;
  c.reason = reason;
  impl_->postRecv (std::move (c));
  return true;
}

FanoutStats
FanoutCore::stats (bool perViewer) const
{
  const Impl &d = *impl_;
  FanoutStats s;
  {
    std::lock_guard<std::mutex> l (d.tracksLock);
    s.tracks = d.tracks.size ();
  }
  std::vector<std::shared_ptr<ViewerCounters>> viewers;
  {
    std::lock_guard<std::mutex> l (d.registryLock);
    for (const auto &[id, c] : d.registry)
      viewers.push_back (c);
  }
  s.viewers = viewers.size ();
  for (const auto &c : viewers)
    if (c->state == int (ViewerState::Connected))
      s.connected++;
  s.viewerStates = static_cast<uint64_t> (std::max<int64_t> (0, d.liveStates.load ()));
  s.packetsIn = d.packetsIn;
  s.bytesIn = d.bytesIn;
  for (const auto &snd : d.senders) {
    s.packetsSent += snd->packetsSent;
    s.bytesSent += snd->bytesSent;
    s.retransmits += snd->retransmits;
    s.nackMisses += snd->nackMisses;
    s.dropped += snd->dropped;
    s.senderReports += snd->senderReports;
    s.rounds += snd->rounds;
    s.roundsOnPushingThread += snd->roundsOnPushingThread;
  }
  s.receiveTurns = d.receiveTurns;
  s.readByRounds = d.readByRounds;
  s.nacks = d.nacks;
  s.keyframeRequests = d.keyframeRequests;
  s.keyframeRequestsLimited = d.keyframeRequestsLimited;
  s.plis = d.plis;
  s.firs = d.firs;
  s.stunRequests = d.stunRequests;
  s.stunErrors = d.stunErrors;
  s.rateLimited = d.rateLimited;
  s.invalid = d.invalid;
  s.transportCcFeedbacks = d.transportCcFeedbacks;
  s.transportCcReceived = d.transportCcReceived;
  s.transportCcLost = d.transportCcLost;
  s.threads = d.senders.size ();
  s.gso = d.gso;
  if (perViewer)
    for (const auto &c : viewers) {
      ViewerStats v;
      v.id = c->id;
      v.state = viewerStateName (c->state);
      {
        std::lock_guard<std::mutex> l (c->lock);
        v.address = c->address;
        v.srtpProfile = c->profile;
      }
      v.thread = c->thread;
      v.packetsSent = c->packetsSent;
      v.bytesSent = c->bytesSent;
      v.retransmits = c->retransmits;
      v.nacks = c->nacks;
      v.plis = c->plis;
      v.firs = c->firs;
      v.dropped = c->dropped;
      v.rtcpPackets = c->rtcpPackets;
      v.rembBitrate = c->rembBitrate;
      v.transportCcFeedbacks = c->transportCc;
      v.transportCcReceived = c->transportCcReceived;
      v.transportCcLost = c->transportCcLost;
      v.transportCcBitrate = c->transportCcBitrate;
      v.fractionLost = c->fractionLost;
      v.cumulativeLost = c->cumulativeLost;
      v.jitter = c->jitter;
      v.rttUs = c->rttUs;
      s.viewerList.push_back (std::move (v));
    }
  return s;
}

void
FanoutCore::stop (const std::string &reason)
{
  Impl &d = *impl_;
  {
    std::lock_guard<std::mutex> l (d.stopLock);
    if (d.stopped)
      return;
    d.stopped = true;
  }
  {
    std::lock_guard<std::mutex> l (d.commandLock);
    d.stopRequested = true;
    RecvCommand c;
    c.type = RecvCommand::Type::Stop;
    c.reason = reason;
    d.recvCommands.push_back (std::move (c));
  }
  d.wake ();
  if (d.recvThread.joinable ())
    d.recvThread.join ();
  /* Joined, not destroyed: a push () racing with stop () still finds them. */
  for (auto &s : d.senders)
    s->stop ();
}

}  // namespace xdn::fanout
