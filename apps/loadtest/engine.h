/* The load test's engine: one thread runs every viewer. It starts viewers
 * at the ramp rate, polls all their sockets with one epoll, keeps their
 * timers in a heap, hands WHEP requests to the HTTP thread and takes the
 * answers back through an eventfd, and at the end (duration reached or
 * SIGINT/SIGTERM) stops counting, sends RTCP BYE and DELETEs every
 * session, waiting a bounded time for the DELETEs. */
#pragma once

#include "media-source.h"
#include "stats.h"
#include "viewer.h"

#include <memory>
#include <mutex>
#include <queue>
#include <random>
#include <string>
#include <vector>

namespace xdn::loadtest {

class HttpClient;

struct Settings {
  std::string whepUrl;
  unsigned viewers = 1;
  /* Publishers start first; viewers once every publisher is sending (or
   * failed) and playDelayS more. */
  std::string whipUrl;
  unsigned publishers = 0;
  double playDelayS = 2;
  MediaSourceSettings source;
  double rampPerSecond = 20;
  double durationS = 30;        /* hold time once every viewer started */
  unsigned sample = 0;          /* viewers that decode and read latency stamps */
  std::string iceAddress;       /* local address of the viewers' sockets; empty: any IPv4 */
  std::string authToken;
  double connectTimeoutS = 15;
  double lateMs = 100;
  double stallTimeoutS = 5;
  unsigned verifyEvery = 1;  /* unsampled viewers authenticate 1 packet in this many */
  int serverPid = 0;
  double serverIdleS = 2;       /* measure the server's idle CPU this long first */
  unsigned httpConnections = 64;
  /* --vanish K: K viewers (spread over the run) leave without a word this
   * long after they joined: no RTCP BYE, no DELETE, socket closed. */
  unsigned vanish = 0;
  double vanishAfterS = 5;
  /* --slow K: K viewers (spread over the run, never sampled or vanishing)
   * behind an emulated link of this rate and random loss, that NACK. */
  unsigned slow = 0;
  double slowRateKbps = 300;
  double slowLossPercent = 2;
  double closeTimeoutS = 5;     /* wait for the DELETEs at most this long */
  double progressIntervalS = 2; /* 0: no progress lines */
  /* At most one poll per tick: packets that arrive within a tick are read
   * together (fewer wake-ups and system calls per packet); arrival times
   * are then as coarse as the tick. */
  double tickMs = 2;
};

class Engine {
public:
  explicit Engine (Settings settings);
  ~Engine ();
  Engine (const Engine &) = delete;
  Engine &operator= (const Engine &) = delete;

  /* Certificate, sockets for signals and completions, the HTTP thread.
   * SIGINT and SIGTERM must be blocked in every thread before (main does
   * it first thing). */
  bool setup (std::string *error);
  /* Runs the whole test; returns once every DELETE is answered or the
   * close time is up. */
  void run ();

  std::vector<ViewerResult> results () const;
  const RunInfo &runInfo () const { return runInfo_; }

private:
  struct Slot {
    std::unique_ptr<Viewer> viewer;
    int64_t wakeAt = INT64_MAX;
    bool postInFlight = false;
    bool deleteSent = false;
    bool cleaned = false;       /* socket closed */
    bool vanishes = false;      /* picked by --vanish */
  };
  struct Cpu {
    double processMs = 0;
    double engineMs = 0;
    double httpMs = 0;
    double serverMs = -1;
  };

  void startPeer (int64_t nowUs);
  void onMedia (bool video, const std::vector<uint8_t> &packet);
  bool publishersSettled () const;
  void onPostDone (uint32_t index, int status, const std::string &body,
      const std::string &location, const std::string &error);
  void sendDelete (Slot &slot);
  void readSocket (uint32_t index);
  void afterEvent (uint32_t index, bool timersChanged);
  void schedule (uint32_t index);
  void fireTimers (int64_t nowUs);
  void cleanUp (Slot &slot);
  void beginClose (int64_t nowUs, bool interrupted);
  void drainCompletions ();
  void handleSignal ();
  void progress (int64_t nowUs);
  Cpu readCpu () const;

  bool sampledLabel (uint32_t label) const;
  bool vanishLabel (uint32_t label) const;

  Settings settings_;
  ViewerSettings viewerSettings_;
  std::vector<bool> slowLabels_;  /* by viewer number: picked by --slow */
  std::mt19937_64 rng_;
  std::shared_ptr<fanout::DtlsContext> dtls_;
  fanout::SockAddr bindAddress_;
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<MediaSource> source_;
  int64_t lastKeyframeRequestUs_ = 0;
  int epoll_ = -1;
  int signalFd_ = -1;
  int wakeFd_ = -1;

  /* Publishers first, then viewers; started_ of them so far. */
  std::vector<Slot> slots_;
  uint32_t started_ = 0;
  int64_t viewersFromUs_ = 0;     /* when the viewers' ramp starts; 0: not known yet */
  using Timer = std::pair<int64_t, uint32_t>;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;

  /* Completions from the HTTP thread, run on the engine's. */
  std::mutex completionsLock_;  /* protects completions_ */
  std::vector<std::function<void ()>> completions_;

  enum class Phase { Ramping, Holding, Closing, Done } phase_ = Phase::Ramping;
  int64_t startUs_ = 0;
  int64_t holdEndUs_ = INT64_MAX;
  int64_t closeDeadlineUs_ = 0;
  int64_t nextProgressUs_ = 0;
  int64_t nextSettleCheckUs_ = 0;
  int64_t lastPollUs_ = 0;
  int64_t nextVanishCheckUs_ = 0;
  unsigned postsInFlight_ = 0;
  unsigned deletesInFlight_ = 0;
  unsigned failuresLogged_ = 0;
  bool counting_ = true;          /* until the end of the measured window */
  bool measureServerIdle ();
  bool allSettled () const;

  Cpu cpuStart_;
  Cpu cpuSteady_;
  RunInfo runInfo_;
};

}  // namespace xdn::loadtest
