#include "engine.h"

#include "http-client.h"
#include "log.h"
#include "sampler.h"

#include <fcntl.h>
#include <netinet/udp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace xdn::loadtest {

using namespace xdn::fanout;

namespace {

constexpr uint64_t kSignalTag = uint64_t (1) << 32;
constexpr uint64_t kWakeTag = uint64_t (2) << 32;
constexpr size_t kBatch = 16;
/* With UDP_GRO a read can return several datagrams of one sender glued
 * together (a GSO send on loopback arrives whole): up to 64 KB. */
constexpr size_t kDatagramMax = 65536;
/* Failures logged one by one; the rest are in the report. */
constexpr unsigned kFailuresLogged = 10;

double
threadCpuMs ()
{
  timespec ts{};
  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double> (ts.tv_sec) * 1e3 + static_cast<double> (ts.tv_nsec) / 1e6;
}

double
processCpuMs ()
{
  rusage ru{};
  getrusage (RUSAGE_SELF, &ru);
  auto ms = [] (const timeval &t) {
    return static_cast<double> (t.tv_sec) * 1e3 + static_cast<double> (t.tv_usec) / 1e3;
  };
  return ms (ru.ru_utime) + ms (ru.ru_stime);
}

/* utime + stime of @pid from /proc, milliseconds; < 0 if unreadable. */
double
pidCpuMs (int pid)
{
  std::ifstream f ("/proc/" + std::to_string (pid) + "/stat");
  std::string line;
  if (!pid || !std::getline (f, line))
    return -1;
  const size_t paren = line.rfind (')');
  if (paren == std::string::npos)
    return -1;
  std::istringstream in (line.substr (paren + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  /* After the command: state is field 3; utime and stime are 14 and 15. */
  for (int i = 3; i <= 15 && in >> field; i++) {
    if (i == 14)
      utime = std::stoull (field);
    else if (i == 15)
      stime = std::stoull (field);
  }
  const long hz = sysconf (_SC_CLK_TCK);
  return static_cast<double> (utime + stime) * 1000.0 / static_cast<double> (hz > 0 ? hz : 100);
}

}  // namespace

Engine::Engine (Settings settings) : settings_ (std::move (settings))
{
  std::random_device rd;
  rng_.seed ((static_cast<uint64_t> (rd ()) << 32) ^ rd ());
  viewerSettings_.connectTimeoutUs = static_cast<int64_t> (settings_.connectTimeoutS * 1e6);
  viewerSettings_.lateThresholdUs = static_cast<int64_t> (settings_.lateMs * 1e3);
  viewerSettings_.stallTimeoutUs = static_cast<int64_t> (settings_.stallTimeoutS * 1e6);
  viewerSettings_.verifyEvery = settings_.verifyEvery;
  /* --slow K: K viewers spread over the run, half a spacing off the
   * sampled ones' spots; one that is sampled or vanishes passes its turn
   * to the next viewer. */
  slowLabels_.assign (settings_.viewers, false);
  const unsigned slow = std::min (settings_.slow, settings_.viewers);
  for (unsigned j = 0; j < slow; j++) {
    uint32_t label = static_cast<uint32_t> ((2 * uint64_t (j) + 1) * settings_.viewers / (2 * slow));
    for (unsigned tries = 0; tries < settings_.viewers; tries++) {
      if (!slowLabels_[label] && !sampledLabel (label) && !vanishLabel (label)) {
        slowLabels_[label] = true;
        break;
      }
      label = (label + 1) % settings_.viewers;
    }
  }
}

/* --sample K: K viewers spread over the run (the first one included). */
bool
Engine::sampledLabel (uint32_t label) const
{
  return settings_.sample &&
      static_cast<uint64_t> (label) * settings_.sample % settings_.viewers < settings_.sample;
}

/* --vanish K: K others, spread the same way from the last viewer down. */
bool
Engine::vanishLabel (uint32_t label) const
{
  const uint32_t fromEnd = settings_.viewers - 1 - label;
  return settings_.vanish && !sampledLabel (label) &&
      static_cast<uint64_t> (fromEnd) * settings_.vanish % settings_.viewers < settings_.vanish;
}

Engine::~Engine ()
{
  /* Nothing may post a completion once the engine starts going away. */
  if (source_)
    source_->stop ();
  http_.reset ();
  for (auto &slot : slots_)
    cleanUp (slot);
  for (int fd : {epoll_, signalFd_, wakeFd_})
    if (fd >= 0)
      close (fd);
}

bool
Engine::setup (std::string *error)
{
  if (settings_.iceAddress.empty ()) {
    bindAddress_ = SockAddr::parse ("0.0.0.0", 0);
  } else {
    bindAddress_ = SockAddr::parse (settings_.iceAddress, 0);
    if (!bindAddress_.valid ()) {
      *error = "--ice-address must be a numeric IPv4 or IPv6 address (got '" +
          settings_.iceAddress + "')";
      return false;
    }
  }

  /* One socket per viewer: make room. */
  rlimit nofile{};
  if (getrlimit (RLIMIT_NOFILE, &nofile) == 0) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit (RLIMIT_NOFILE, &nofile);
    getrlimit (RLIMIT_NOFILE, &nofile);
    if (nofile.rlim_cur != RLIM_INFINITY && settings_.viewers + 64 > nofile.rlim_cur) {
      *error = std::to_string (settings_.viewers) + " viewers need as many sockets, and the "
          "open-file limit is " + std::to_string (nofile.rlim_cur) + " (raise it: ulimit -n)";
      return false;
    }
  }

  std::string why;
  auto cert = DtlsCertificate::generate (&why);
  if (!cert || !(dtls_ = DtlsContext::create (cert, kDtlsDefaultSrtpProfiles, &why))) {
    *error = "cannot make the DTLS certificate: " + why;
    return false;
  }

  epoll_ = epoll_create1 (EPOLL_CLOEXEC);
  wakeFd_ = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  sigset_t mask;
  sigemptyset (&mask);
  sigaddset (&mask, SIGINT);
  sigaddset (&mask, SIGTERM);
  signalFd_ = signalfd (-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (epoll_ < 0 || wakeFd_ < 0 || signalFd_ < 0) {
    *error = std::string ("cannot set up the event loop: ") + std::strerror (errno);
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kSignalTag;
  epoll_ctl (epoll_, EPOLL_CTL_ADD, signalFd_, &ev);
  ev.data.u64 = kWakeTag;
  epoll_ctl (epoll_, EPOLL_CTL_ADD, wakeFd_, &ev);

  const unsigned timeout = static_cast<unsigned> (std::ceil (settings_.connectTimeoutS)) + 5;
  http_ = std::make_unique<HttpClient> (settings_.httpConnections, timeout,
      [this] (std::function<void ()> completion) {
        {
          std::lock_guard<std::mutex> guard (completionsLock_);
          completions_.push_back (std::move (completion));
        }
        const uint64_t one = 1;
        (void) !write (wakeFd_, &one, sizeof one);
      });
  slots_.resize (settings_.publishers + settings_.viewers);
  if (settings_.publishers > 0) {
    source_ = std::make_unique<MediaSource> (settings_.source,
        [this] (bool video, std::vector<uint8_t> packet) {
          {
            std::lock_guard<std::mutex> guard (completionsLock_);
            completions_.push_back ([this, video, p = std::move (packet)] { onMedia (video, p); });
          }
          const uint64_t one = 1;
          (void) !write (wakeFd_, &one, sizeof one);
        });
  }
  return true;
}

Engine::Cpu
Engine::readCpu () const
{
  Cpu c;
  c.processMs = processCpuMs ();
  c.engineMs = threadCpuMs ();
  c.httpMs = http_ ? http_->cpuMs () : 0;
  c.serverMs = settings_.serverPid ? pidCpuMs (settings_.serverPid) : -1;
  return c;
}

void
Engine::startPeer (int64_t nowUs)
{
  const uint32_t index = started_++;
  const bool publisher = index < settings_.publishers;
  /* Viewers and publishers are numbered apart in the report. */
  const uint32_t label = publisher ? index : index - settings_.publishers;
  if (publisher)
    runInfo_.publishersRequested++;
  else
    runInfo_.viewersRequested++;
  Slot &slot = slots_[index];
  slot.viewer = std::make_unique<Viewer> (label, viewerSettings_, dtls_, rng_,
      publisher ? PeerRole::Publish : PeerRole::Play);
  Viewer &v = *slot.viewer;
  if (!publisher) {
    v.setSampled (sampledLabel (label));
    slot.vanishes = vanishLabel (label);
    if (label < slowLabels_.size () && slowLabels_[label])
      v.setSlow (settings_.slowRateKbps, settings_.slowLossPercent,
          0x510e11bbull * (uint64_t (label) + 1));
  }

  int fd = socket (bindAddress_.family (), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  SockAddr local = bindAddress_;
  if (fd >= 0 && bind (fd, bindAddress_.sa (), bindAddress_.length) == 0) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname (fd, reinterpret_cast<sockaddr *> (&ss), &len);
    local = SockAddr::fromSockaddr (reinterpret_cast<sockaddr *> (&ss), len);
  } else {
    const std::string why = std::strerror (errno);
    if (fd >= 0)
      close (fd);
    v.begin (-1, local, nowUs);
    v.failSetup ("cannot open a UDP socket on " + bindAddress_.toString () + ": " + why, nowUs);
    afterEvent (index, false);
    return;
  }
  const int on = 1;
  setsockopt (fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
  /* Datagrams a server sent in one GSO batch are read in one go and split
   * here, as a NIC's receive offload would hand them over; where the
   * kernel has no UDP_GRO each arrives on its own. */
  setsockopt (fd, SOL_UDP, UDP_GRO, &on, sizeof on);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = index;
  epoll_ctl (epoll_, EPOLL_CTL_ADD, fd, &ev);

  const std::string offer = v.begin (fd, local, nowUs);
  slot.postInFlight = true;
  postsInFlight_++;
  /* {n} in a URL: the publisher's number; for a viewer, its number modulo
   * the publishers (viewers spread over the published streams), or its
   * number when nobody publishes. */
  std::string url = publisher ? settings_.whipUrl : settings_.whepUrl;
  const uint32_t n = publisher || !settings_.publishers ? label : label % settings_.publishers;
  for (size_t at = url.find ("{n}"); at != std::string::npos; at = url.find ("{n}", at))
    url.replace (at, 3, std::to_string (n));
  HttpRequest req{"POST", url, offer, "application/sdp", settings_.authToken};
  http_->send (std::move (req), [this, index] (const HttpResponse &r) {
    onPostDone (index, r.status, r.body, r.location, r.error);
  });
  schedule (index);
}

void
Engine::onPostDone (uint32_t index, int status, const std::string &body,
    const std::string &location, const std::string &error)
{
  Slot &slot = slots_[index];
  slot.postInFlight = false;
  postsInFlight_--;
  Viewer &v = *slot.viewer;
  const int64_t now = steadyNowUs ();
  if (status == 201 || (status == 200 && !body.empty ()))
    v.onAnswer (body, location, status, now);
  else
    v.onRefused (status, body, error, now);
  if (phase_ == Phase::Closing || phase_ == Phase::Done) {
    /* Answered after the end: the server made a session; end it. */
    if (!v.location ().empty ())
      sendDelete (slot);
    return;
  }
  afterEvent (index, true);
}

void
Engine::sendDelete (Slot &slot)
{
  if (slot.deleteSent || slot.viewer->location ().empty ())
    return;
  slot.deleteSent = true;
  deletesInFlight_++;
  const uint32_t index = slot.viewer->index ();
  HttpRequest req{"DELETE", slot.viewer->location (), "", "", settings_.authToken};
  http_->send (std::move (req), [this, index] (const HttpResponse &r) {
    deletesInFlight_--;
    if (r.status != 200 && r.status != 204)
      log (LogLevel::Warning, "viewer.delete_failed", {{"viewer", std::to_string (index)},
          {"status", std::to_string (r.status)}, {"reason", r.error.empty () ? r.body : r.error}});
  });
}

void
Engine::cleanUp (Slot &slot)
{
  if (slot.cleaned || !slot.viewer)
    return;
  slot.cleaned = true;
  if (slot.viewer->fd () >= 0)
    close (slot.viewer->fd ());  /* leaves the epoll set with it */
  if (slot.viewer->sampler ())
    slot.viewer->sampler ()->stop ();
}

void
Engine::afterEvent (uint32_t index, bool timersChanged)
{
  Slot &slot = slots_[index];
  Viewer &v = *slot.viewer;
  if (v.failed () && !slot.cleaned) {
    const ViewerResult r = v.result ();
    if (failuresLogged_++ < kFailuresLogged)
      log (LogLevel::Warning, v.publisher () ? "publisher.failed" : "viewer.failed",
          {{v.publisher () ? "publisher" : "viewer", std::to_string (v.index ())},
          {"phase", failPhaseName (r.failPhase)}, {"kind", r.failKind}, {"reason", r.failReason}});
    else if (failuresLogged_ == kFailuresLogged + 1)
      log (LogLevel::Warning, "viewer.failed", {{"more", "further failures are in the report"}});
    cleanUp (slot);
    sendDelete (slot);
    return;
  }
  if (timersChanged)
    schedule (index);
}

void
Engine::schedule (uint32_t index)
{
  Slot &slot = slots_[index];
  const int64_t t = slot.viewer->nextWakeUs ();
  if (t == slot.wakeAt)
    return;
  slot.wakeAt = t;
  if (t != INT64_MAX)
    timers_.emplace (t, index);
}

void
Engine::fireTimers (int64_t nowUs)
{
  /* --vanish: those whose time has come leave now. */
  if (settings_.vanish && nowUs >= nextVanishCheckUs_) {
    nextVanishCheckUs_ = nowUs + 100000;
    const int64_t after = static_cast<int64_t> (settings_.vanishAfterS * 1e6);
    for (uint32_t i = settings_.publishers; i < started_; i++) {
      Slot &slot = slots_[i];
      const int64_t joined = slot.viewer->firstMediaUs ();
      if (slot.vanishes && !slot.cleaned && joined && nowUs - joined >= after) {
        slot.viewer->vanish (nowUs);
        cleanUp (slot);
        log (LogLevel::Info, "viewer.vanished", {{"viewer", std::to_string (i)},
            {"session", slot.viewer->location ()}});
      }
    }
  }
  while (!timers_.empty () && timers_.top ().first <= nowUs) {
    const Timer t = timers_.top ();
    timers_.pop ();
    Slot &slot = slots_[t.second];
    if (slot.wakeAt != t.first || slot.cleaned)
      continue;  /* rescheduled since */
    slot.wakeAt = INT64_MAX;
    slot.viewer->onTimer (nowUs);
    afterEvent (t.second, true);
  }
}

void
Engine::onMedia (bool video, const std::vector<uint8_t> &packet)
{
  if (phase_ == Phase::Closing || phase_ == Phase::Done)
    return;
  bool keyframe = false;
  for (uint32_t i = 0; i < started_ && i < settings_.publishers; i++) {
    Slot &slot = slots_[i];
    if (slot.cleaned)
      continue;
    slot.viewer->sendMedia (video, packet.data (), packet.size ());
    keyframe |= slot.viewer->takeKeyframeRequest ();
  }
  /* PLI/FIR from any publisher's server: one keyframe, at most once a second. */
  const int64_t now = steadyNowUs ();
  if (keyframe && now - lastKeyframeRequestUs_ >= 1000000) {
    lastKeyframeRequestUs_ = now;
    source_->requestKeyframe ();
  }
}

bool
Engine::publishersSettled () const
{
  for (uint32_t i = 0; i < settings_.publishers; i++)
    if (i >= started_ || !slots_[i].viewer->settled ())
      return false;
  return true;
}

void
Engine::readSocket (uint32_t index)
{
  struct alignas (cmsghdr) Control {
    uint8_t bytes[CMSG_SPACE (sizeof (timespec)) + CMSG_SPACE (sizeof (int))];
  };
  static uint8_t buffers[kBatch][kDatagramMax];
  static sockaddr_storage names[kBatch];
  static Control controls[kBatch];
  static iovec iovs[kBatch];
  static mmsghdr msgs[kBatch];
  Slot &slot = slots_[index];
  Viewer &v = *slot.viewer;
  bool changed = false;
  for (;;) {
    if (slot.cleaned)
      return;
    for (size_t i = 0; i < kBatch; i++) {
      iovs[i] = {buffers[i], kDatagramMax};
      msgs[i].msg_hdr = {};
      msgs[i].msg_hdr.msg_name = &names[i];
      msgs[i].msg_hdr.msg_namelen = sizeof names[i];
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_control = controls[i].bytes;
      msgs[i].msg_hdr.msg_controllen = sizeof controls[i].bytes;
    }
    const int n = recvmmsg (v.fd (), msgs, kBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0)
      break;
    const int64_t now = steadyNowUs ();
    timespec real{};
    clock_gettime (CLOCK_REALTIME, &real);
    const int64_t realNow = static_cast<int64_t> (real.tv_sec) * 1000000 + real.tv_nsec / 1000;
    for (int i = 0; i < n; i++) {
      /* The kernel's receive time (SO_TIMESTAMPNS, CLOCK_REALTIME), and
       * the size of each datagram when several came glued (UDP_GRO). */
      int64_t arrival = 0;
      size_t segment = msgs[i].msg_len;
      for (cmsghdr *c = CMSG_FIRSTHDR (&msgs[i].msg_hdr); c; c = CMSG_NXTHDR (&msgs[i].msg_hdr, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
          timespec ts;
          std::memcpy (&ts, CMSG_DATA (c), sizeof ts);
          arrival = static_cast<int64_t> (ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
        } else if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
          int size;
          std::memcpy (&size, CMSG_DATA (c), sizeof size);
          if (size > 0)
            segment = static_cast<size_t> (size);
        }
      }
      if (arrival && counting_) {
        const double lagMs = static_cast<double> (realNow - arrival) / 1000.0;
        runInfo_.datagramsRead++;
        if (lagMs > kLagThresholdMs)
          runInfo_.datagramsLagged++;
        runInfo_.readLagMaxMs = std::max (runInfo_.readLagMaxMs, lagMs);
      }
      const SockAddr from = SockAddr::fromSockaddr (
          reinterpret_cast<sockaddr *> (&names[i]), msgs[i].msg_hdr.msg_namelen);
      for (size_t at = 0; at < msgs[i].msg_len && !v.failed (); at += segment) {
        const size_t size = std::min (segment, msgs[i].msg_len - at);
        changed |= v.onDatagram (buffers[i] + at, size, from, now, arrival);
      }
      if (v.failed ())
        break;
    }
    if (v.failed () || static_cast<size_t> (n) < kBatch)
      break;
  }
  afterEvent (index, changed);
}

void
Engine::drainCompletions ()
{
  uint64_t count;
  (void) !read (wakeFd_, &count, sizeof count);
  std::vector<std::function<void ()>> work;
  {
    std::lock_guard<std::mutex> guard (completionsLock_);
    work.swap (completions_);
  }
  for (auto &fn : work)
    fn ();
}

void
Engine::beginClose (int64_t nowUs, bool interrupted)
{
  if (phase_ == Phase::Closing || phase_ == Phase::Done)
    return;
  const Cpu end = readCpu ();
  phase_ = Phase::Closing;
  counting_ = false;
  if (source_)
    source_->stop ();
  runInfo_.interrupted = interrupted;
  runInfo_.elapsedS = startUs_ ? static_cast<double> (nowUs - startUs_) / 1e6 : 0;
  const double idle = std::max (0.0, runInfo_.serverIdleMsPerS);
  if (startUs_) {
    runInfo_.cpuMs = end.processMs - cpuStart_.processMs;
    runInfo_.networkCpuMs = (end.engineMs - cpuStart_.engineMs) + (end.httpMs - cpuStart_.httpMs);
    if (end.serverMs >= 0 && cpuStart_.serverMs >= 0)
      runInfo_.serverCpuMs = std::max (0.0, end.serverMs - cpuStart_.serverMs -
          idle * runInfo_.elapsedS);
  }
  if (runInfo_.steadyFromUs) {
    runInfo_.steadyToUs = nowUs;
    runInfo_.steadyS = static_cast<double> (nowUs - runInfo_.steadyFromUs) / 1e6;
    runInfo_.steadyCpuMs = end.processMs - cpuSteady_.processMs;
    runInfo_.steadyNetworkCpuMs = (end.engineMs - cpuSteady_.engineMs) +
        (end.httpMs - cpuSteady_.httpMs);
    if (end.serverMs >= 0 && cpuSteady_.serverMs >= 0)
      runInfo_.steadyServerCpuMs = std::max (0.0, end.serverMs - cpuSteady_.serverMs -
          idle * runInfo_.steadyS);
  }
  for (uint32_t i = 0; i < started_; i++) {
    Slot &slot = slots_[i];
    if (slot.viewer->vanished ())
      continue;  /* left without a word: no DELETE either */
    slot.viewer->finish (nowUs);
    cleanUp (slot);
    sendDelete (slot);
  }
  closeDeadlineUs_ = nowUs + static_cast<int64_t> (settings_.closeTimeoutS * 1e6);
  std::ifstream status ("/proc/self/status");
  for (std::string line; std::getline (status, line);)
    if (line.rfind ("VmRSS:", 0) == 0)
      runInfo_.rssMb = std::strtod (line.c_str () + 6, nullptr) / 1024.0;
  log (LogLevel::Info, "loadtest.closing", {{"sessions", std::to_string (deletesInFlight_)},
      {"answers_pending", std::to_string (postsInFlight_)}, {"interrupted", interrupted ? "yes" : "no"}});
}

void
Engine::handleSignal ()
{
  signalfd_siginfo info{};
  while (read (signalFd_, &info, sizeof info) == sizeof info) {
    if (phase_ == Phase::Closing) {
      log (LogLevel::Warning, "loadtest.abandon", {{"reason", "second signal: not waiting for DELETEs"}});
      phase_ = Phase::Done;
      return;
    }
    log (LogLevel::Info, "loadtest.interrupted", {{"signal", strsignal (static_cast<int> (info.ssi_signo))}});
    beginClose (steadyNowUs (), true);
  }
}

void
Engine::progress (int64_t nowUs)
{
  unsigned connected = 0, failed = 0, publishing = 0;
  uint64_t packets = 0, expected = 0, lost = 0;
  for (uint32_t i = 0; i < started_; i++) {
    const ViewerResult r = slots_[i].viewer->result ();
    if (r.publisher) {
      publishing += r.connected && r.failPhase == FailPhase::None;
      continue;
    }
    connected += r.connected && r.failPhase == FailPhase::None;
    failed += r.failPhase != FailPhase::None;
    packets += r.packets;
    expected += r.expected;
    lost += r.lost;
  }
  char loss[32];
  std::snprintf (loss, sizeof loss, "%.3f", expected ? 100.0 * static_cast<double> (lost) /
      static_cast<double> (expected) : 0.0);
  char t[32];
  std::snprintf (t, sizeof t, "%.1f", static_cast<double> (nowUs - startUs_) / 1e6);
  log (LogLevel::Info, "loadtest.progress", {{"t", t},
      {"started", std::to_string (runInfo_.viewersRequested)},
      {"receiving", std::to_string (connected)}, {"failed", std::to_string (failed)},
      {"packets", std::to_string (packets)}, {"loss_percent", loss},
      {"publishing", std::to_string (publishing)}});
}

bool
Engine::allSettled () const
{
  for (uint32_t i = 0; i < started_; i++)
    if (!slots_[i].viewer->settled ())
      return false;
  return true;
}

/* The server's CPU rate before any viewer: what it spends on its own
 * (encoding a demo stream, say), subtracted from the per-viewer figures.
 * False when a signal ended the wait. */
bool
Engine::measureServerIdle ()
{
  const double before = pidCpuMs (settings_.serverPid);
  if (before < 0) {
    log (LogLevel::Warning, "loadtest.server_pid", {{"pid", std::to_string (settings_.serverPid)},
        {"reason", "cannot read its CPU time from /proc"}});
    return true;
  }
  const int64_t from = steadyNowUs ();
  const int64_t until = from + static_cast<int64_t> (settings_.serverIdleS * 1e6);
  epoll_event events[8];
  for (int64_t now = from; now < until; now = steadyNowUs ()) {
    const int n = epoll_wait (epoll_, events, 8, static_cast<int> ((until - now + 999) / 1000));
    for (int i = 0; i < n; i++) {
      if (events[i].data.u64 == kSignalTag) {
        signalfd_siginfo info{};
        (void) !read (signalFd_, &info, sizeof info);
        log (LogLevel::Info, "loadtest.interrupted", {{"signal", strsignal (static_cast<int> (info.ssi_signo))}});
        runInfo_.interrupted = true;
        return false;
      }
      if (events[i].data.u64 == kWakeTag)
        drainCompletions ();
    }
  }
  const double after = pidCpuMs (settings_.serverPid);
  const double seconds = static_cast<double> (steadyNowUs () - from) / 1e6;
  runInfo_.serverIdleMsPerS = seconds > 0 ? (after - before) / seconds : 0;
  char rate[32];
  std::snprintf (rate, sizeof rate, "%.1f", runInfo_.serverIdleMsPerS);
  log (LogLevel::Info, "loadtest.server_idle", {{"pid", std::to_string (settings_.serverPid)},
      {"cpu_ms_per_s", rate}});
  return true;
}

void
Engine::run ()
{
  runInfo_.url = settings_.whepUrl;
  runInfo_.whipUrl = settings_.whipUrl;
  runInfo_.rampPerSecond = settings_.rampPerSecond;
  runInfo_.durationS = settings_.durationS;
  runInfo_.serverPid = settings_.serverPid;
  runInfo_.viewersRequested = 0;
  runInfo_.publishersRequested = 0;
  const uint32_t total = settings_.publishers + settings_.viewers;
  if (source_) {
    std::string error;
    if (!source_->start (&error)) {
      log (LogLevel::Error, "loadtest.source_failed", {{"reason", error}});
      runInfo_.sourceError = error;
      return;
    }
    log (LogLevel::Info, "loadtest.source", {{"stamped", source_->stamped () ? "yes" : "no"}});
  }
  const double perViewerUs = settings_.rampPerSecond > 0 ? 1e6 / settings_.rampPerSecond : 0;
  epoll_event events[256];
  if (settings_.serverPid && settings_.serverIdleS > 0 && !measureServerIdle ())
    return;

  while (phase_ != Phase::Done) {
    int64_t now = steadyNowUs ();

    /* Ramp */
    if (phase_ == Phase::Ramping) {
      if (startUs_ == 0) {
        startUs_ = now;
        cpuStart_ = readCpu ();
        nextProgressUs_ = now + static_cast<int64_t> (settings_.progressIntervalS * 1e6);
      }
      while (started_ < settings_.publishers &&
             now >= startUs_ + static_cast<int64_t> (perViewerUs * started_))
        startPeer (now);
      if (started_ >= settings_.publishers && started_ < total) {
        if (!viewersFromUs_ && settings_.publishers == 0) {
          viewersFromUs_ = startUs_;
        } else if (!viewersFromUs_ && now >= nextSettleCheckUs_) {
          nextSettleCheckUs_ = now + 100000;
          if (publishersSettled ())
            viewersFromUs_ = now + static_cast<int64_t> (settings_.playDelayS * 1e6);
        }
        while (viewersFromUs_ && started_ < total && now >= viewersFromUs_ +
               static_cast<int64_t> (perViewerUs * (started_ - settings_.publishers)))
          startPeer (now);
      }
      if (started_ >= total) {
        phase_ = Phase::Holding;
        holdEndUs_ = now + static_cast<int64_t> (settings_.durationS * 1e6);
      }
    }
    if (phase_ == Phase::Holding && !runInfo_.steadyFromUs && now >= nextSettleCheckUs_) {
      nextSettleCheckUs_ = now + 100000;
      if (allSettled ()) {
        runInfo_.steadyFromUs = now;
        cpuSteady_ = readCpu ();
        bool anyActive = false;
        for (uint32_t i = 0; i < started_ && !anyActive; i++)
          anyActive = !slots_[i].viewer->failed ();
        if (!anyActive) {
          log (LogLevel::Warning, "loadtest.all_failed", {{"peers", std::to_string (started_)}});
          beginClose (now, false);
        }
      }
    }
    if (phase_ == Phase::Holding && now >= holdEndUs_)
      beginClose (now, false);
    if (phase_ == Phase::Closing &&
        ((postsInFlight_ == 0 && deletesInFlight_ == 0) || now >= closeDeadlineUs_)) {
      if (postsInFlight_ || deletesInFlight_)
        log (LogLevel::Warning, "loadtest.close_timeout", {{"deletes_pending",
            std::to_string (deletesInFlight_)}, {"answers_pending", std::to_string (postsInFlight_)}});
      phase_ = Phase::Done;
      break;
    }
    if (settings_.progressIntervalS > 0 && phase_ != Phase::Closing && now >= nextProgressUs_) {
      progress (now);
      nextProgressUs_ = now + static_cast<int64_t> (settings_.progressIntervalS * 1e6);
      for (uint32_t i = 0; i < started_; i++)
        if (auto *s = slots_[i].viewer->sampler ())
          s->pollError ();
      if (source_) {
        const std::string e = source_->pollError ();
        if (!e.empty ())
          log (LogLevel::Error, "loadtest.source_error", {{"reason", e}});
      }
    }

    /* How long to sleep */
    int64_t wake = now + 1000000;
    if (!timers_.empty ())
      wake = std::min (wake, timers_.top ().first);
    if (phase_ == Phase::Ramping) {
      if (started_ < settings_.publishers)
        wake = std::min (wake, startUs_ + static_cast<int64_t> (perViewerUs * started_));
      else if (viewersFromUs_)
        wake = std::min (wake, viewersFromUs_ + static_cast<int64_t> (perViewerUs *
            (started_ - settings_.publishers)));
      else
        wake = std::min (wake, now + 100000);
    }
    if (phase_ == Phase::Holding)
      wake = std::min (wake, holdEndUs_);
    if (phase_ == Phase::Closing)
      wake = std::min (wake, closeDeadlineUs_);
    /* Coalesce: no second poll within a tick of the last. */
    const int64_t tickUs = static_cast<int64_t> (settings_.tickMs * 1000);
    if (tickUs > 0 && now < lastPollUs_ + tickUs) {
      const int64_t pause = lastPollUs_ + tickUs - now;
      timespec ts{static_cast<time_t> (pause / 1000000), static_cast<long> (pause % 1000000) * 1000};
      nanosleep (&ts, nullptr);
      now = steadyNowUs ();
    }
    const int64_t waitUs = std::max<int64_t> (0, wake - now);
    const int timeoutMs = static_cast<int> ((waitUs + 999) / 1000);

    const int n = epoll_wait (epoll_, events, 256, timeoutMs);
    lastPollUs_ = steadyNowUs ();
    for (int i = 0; i < n; i++) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kSignalTag)
        handleSignal ();
      else if (tag == kWakeTag)
        drainCompletions ();
      else if (phase_ != Phase::Closing && phase_ != Phase::Done)
        readSocket (static_cast<uint32_t> (tag));
    }
    if (phase_ != Phase::Closing && phase_ != Phase::Done)
      fireTimers (steadyNowUs ());
  }
}

std::vector<ViewerResult>
Engine::results () const
{
  std::vector<ViewerResult> out;
  out.reserve (started_);
  for (uint32_t i = 0; i < started_; i++)
    out.push_back (slots_[i].viewer->result ());
  return out;
}

}  // namespace xdn::loadtest
