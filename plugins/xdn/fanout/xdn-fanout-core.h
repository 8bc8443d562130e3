/* The edge fan-out engine: every WebRTC viewer of one stream served from
 * one UDP port. Plain C++ (no GStreamer types): the element
 * xdnwebrtcfanout is a thin shell around it, and tests drive it directly
 * with packets and viewers built in the test.
 *
 * Threads, fixed when it starts and independent of the number of viewers:
 * - one receive thread reads the port and demultiplexes by first byte
 *   (RFC 7983): STUN (ICE-lite answers, consent), DTLS (one server session
 *   per viewer, its retransmission timers), SRTCP from viewers (NACK,
 *   PLI/FIR, REMB, transport-cc, receiver reports, BYE). It also times
 *   viewers out and sends held-back keyframe requests. While every viewer
 *   is connected, the rounds below read the socket instead (what a
 *   connected viewer sends in the steady state), and leave it the rest;
 * - `threads` sending threads. Each connected viewer belongs to one (the
 *   first thread takes viewersPerThread, then the next, and so on; past
 *   that, the one with the fewest). A packet pushed by the streaming
 *   thread is appended (by reference) to the window of each sending thread
 *   that has viewers; the thread serves its viewers one after
 *   the other from their own position in that window: copy into a scratch
 *   slot (the source's header extension left out; the viewer's
 *   transport-wide sequence number added when it negotiated it), rewrite
 *   the header (payload type, SSRC, sequence number and timestamp through
 *   xdn::RtpRewriter), SRTP-protect, queue into its
 *   UdpBatchSender; flushed per batch. A viewer that falls more than
 *   `viewerQueue` packets behind skips to the newest packet (its video waits
 *   for the next keyframe) instead of holding anyone back. The same thread
 *   answers the viewer's NACKs from the track's history (as RFC 4588 RTX
 *   packets when the viewer negotiated RTX) and sends its RTCP sender
 *   reports.
 *
 * Nothing here blocks the streaming thread: push () appends references
 * under one short lock per sending thread. While only one sending thread
 * has viewers, and it is idle, push () runs that thread's round itself
 * (pushingThreadServes): the streaming thread then sends, but waits for
 * nobody. */
#pragma once

#include "xdn-fanout-dtls.h"
#include "xdn-fanout-packet.h"
#include "xdn-fanout-sdp.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace xdn::fanout {

struct FanoutSettings {
  /* Local addresses: the port is announced (a=candidate host) on each. One
   * address: the socket binds to it; several: to the wildcard address. */
  std::vector<std::string> addresses {"127.0.0.1"};
  uint16_t port = 0;                       /* 0: the kernel picks */
  unsigned threads = 0;                    /* sending threads; 0: one per core */
  /* Viewers a sending thread takes before the next one gets any. Every
   * packet wakes each thread that has viewers, and a wake-up (two context
   * switches) costs about what sending to ten viewers does: a few hundred
   * viewers share one thread, all served within a millisecond. */
  size_t viewersPerThread = 256;
  /* While one sending thread has viewers and it is idle, the thread that
   * pushes a packet runs the round itself instead of waking it: a wake-up
   * is needed for each picture and each audio packet, and costs about
   * what sending to ten viewers does. The pushing thread is then busy for
   * the round (up to about 2 ms at 256 viewers). */
  bool pushingThreadServes = true;
  /* A viewer with no authenticated STUN or SRTCP for this long is removed
   * (ICE consent, RFC 7675), as is one that never checks connectivity. */
  std::chrono::milliseconds viewerTimeout {10000};
  /* Shortest time between two keyframe requests upstream on one track. */
  std::chrono::milliseconds keyframeMinInterval {500};
  /* Packets kept per track for NACK, and the age after which they are not
   * sent again. */
  size_t historyPackets = 1024;
  std::chrono::milliseconds historyAge {1000};
  /* How far (packets) a viewer may fall behind the newest packet before
   * it skips ahead. */
  size_t viewerQueue = 512;
  size_t maxViewers = 10000;
  std::chrono::milliseconds senderReportInterval {1000};
  /* The DTLS context (certificate); default: the process certificate. */
  std::shared_ptr<DtlsContext> dtlsContext;
  /* a=msid stream id in answers. */
  std::string streamId = "xdn";
};

enum class ViewerEvent { Connected, Removed };

struct FanoutCallbacks {
  /* A keyframe is wanted on @track: viewers asked (PLI, FIR), a viewer
   * started or skipped ahead. Already aggregated over viewers and
   * rate-limited to one per keyframeMinInterval per track (a request held
   * back is made once the interval is over). From the fan-out's threads:
   * must not block. */
  std::function<void (uint32_t track)> keyframeRequest;
  /* A viewer connected (DTLS done, media flowing) or was removed (with the
   * reason). From the receive thread, or the thread that calls stop (). */
  std::function<void (const std::string &id, ViewerEvent event, const std::string &reason)>
      viewerEvent;
};

struct ViewerStats {
  std::string id;
  std::string state;            /* "new", "checking", "connected" */
  std::string address;          /* the selected address, once known */
  std::string srtpProfile;
  unsigned thread = 0;
  uint64_t packetsSent = 0;
  uint64_t bytesSent = 0;
  uint64_t retransmits = 0;
  uint64_t nacks = 0;           /* lost packets the viewer reported */
  uint64_t plis = 0;
  uint64_t firs = 0;
  uint64_t dropped = 0;         /* packets skipped because it fell behind */
  uint64_t rtcpPackets = 0;
  uint64_t rembBitrate = 0;     /* the viewer's last REMB, bits/s; 0: none */
  /* Transport-wide CC feedback (when the viewer negotiated the
   * transport-wide sequence number): messages, the packets they reported
   * received and not received, and the rate the packets reported received
   * reached the viewer at over the last message's span of arrival times
   * (bits/s; 0: none yet). */
  uint64_t transportCcFeedbacks = 0;
  uint64_t transportCcReceived = 0;
  uint64_t transportCcLost = 0;
  uint64_t transportCcBitrate = 0;
  uint32_t fractionLost = 0;    /* last receiver report, /256 */
  int64_t cumulativeLost = 0;
  uint32_t jitter = 0;
  int64_t rttUs = -1;           /* from LSR/DLSR; -1 until known */
};

struct FanoutStats {
  uint64_t viewers = 0;          /* added and not yet removed */
  uint64_t connected = 0;
  uint64_t viewerStates = 0;     /* viewer objects alive (freed after removal) */
  uint64_t tracks = 0;
  uint64_t packetsIn = 0;
  uint64_t bytesIn = 0;
  uint64_t packetsSent = 0;      /* SRTP packets to viewers (RTCP excluded) */
  uint64_t bytesSent = 0;
  uint64_t retransmits = 0;
  uint64_t nacks = 0;
  uint64_t nackMisses = 0;       /* NACKed packets no longer in the history */
  uint64_t dropped = 0;          /* skipped by viewers that fell behind, or refused by the kernel */
  uint64_t senderReports = 0;
  uint64_t keyframeRequests = 0; /* sent upstream */
  uint64_t keyframeRequestsLimited = 0;
  uint64_t plis = 0;
  uint64_t firs = 0;
  uint64_t stunRequests = 0;
  uint64_t stunErrors = 0;       /* answered with an error */
  uint64_t rateLimited = 0;      /* datagrams dropped by per-address limits */
  uint64_t invalid = 0;          /* malformed, unauthenticated or from an unknown address */
  /* Transport-cc feedback from every viewer, removed ones included. */
  uint64_t transportCcFeedbacks = 0;
  uint64_t transportCcReceived = 0;
  uint64_t transportCcLost = 0;
  uint64_t threads = 0;          /* sending threads */
  uint64_t rounds = 0;           /* rounds of the sending threads' work, wherever they ran */
  uint64_t roundsOnPushingThread = 0; /* of those, run by the thread that pushed (see push ()) */
  uint64_t receiveTurns = 0;     /* times the receive thread woke */
  uint64_t readByRounds = 0;     /* datagrams from viewers read by rounds, not the receive thread */
  bool gso = false;
  std::vector<ViewerStats> viewerList;  /* when asked for */
};

class FanoutCore {
public:
  /* Opens and binds the socket and starts the threads; nullptr and @error
   * set when an address is not numeric or the bind fails. */
  static std::unique_ptr<FanoutCore> create (const FanoutSettings &settings,
      FanoutCallbacks callbacks, std::string *error);
  ~FanoutCore ();
  FanoutCore (const FanoutCore &) = delete;
  FanoutCore &operator= (const FanoutCore &) = delete;

  uint16_t port () const;
  const std::vector<std::string> &addresses () const;

  /* A track's codec (from its caps); set again when the caps change. */
  void setTrack (const TrackCodec &track);
  void removeTrack (uint32_t trackId);
  /* One packet of a track (any thread, never blocks). */
  void push (PacketRef packet);

  struct AddResult {
    std::string id;       /* empty when refused */
    std::string answer;
    std::string error;    /* why it was refused */
    bool ok () const { return !id.empty (); }
  };
  /* Answers a viewer's offer and prepares its ICE, DTLS and SRTP. */
  AddResult addViewer (std::string_view offer);
  /* False when no such viewer. The viewer is told (DTLS close_notify, RTCP
   * BYE) and its state freed on the fan-out's threads; the Removed event
   * follows. */
  bool removeViewer (const std::string &id, const std::string &reason = "removed");

  FanoutStats stats (bool perViewer) const;

  /* Removes every viewer (Removed events with @reason) and joins the
   * threads. Called by the destructor if not before. */
  void stop (const std::string &reason = "stopped");

  struct Impl;

private:
  explicit FanoutCore (std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace xdn::fanout
