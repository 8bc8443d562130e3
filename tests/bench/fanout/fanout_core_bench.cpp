/* The fan-out engine's cost per delivered packet: N viewers (built as in
 * the unit tests: ICE, DTLS, SRTP) connected to a FanoutCore on loopback,
 * a paced stream of RTP packets pushed into it, and the process' CPU time
 * divided by the SRTP packets it sent. The viewers do not read (the
 * kernel drops what overflows their sockets), so the figure is the
 * server's side: rewrite, SRTP, sendmmsg, and loopback delivery.
 *
 * Not a test. Run in a private network namespace:
 *   unshare -n bash -c 'ip link set lo up; BUILD/tests/bench/fanout/fanout_core_bench \
 *       --viewers 500 --seconds 10 --pps 200 --size 1200 --threads 1' */
#include "fanout-viewer.h"
#include "xdn-fanout-core.h"

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <thread>

using namespace xdn::fanout;
using namespace std::chrono;

namespace {

double
cpuSeconds ()
{
  timespec ts;
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

long
rssKb ()
{
  long kb = 0;
  if (FILE *f = fopen ("/proc/self/status", "r")) {
    char line[256];
    while (fgets (line, sizeof (line), f))
      if (strncmp (line, "VmRSS:", 6) == 0)
        kb = strtol (line + 6, nullptr, 10);
    fclose (f);
  }
  return kb;
}

}  // namespace

int
main (int argc, char **argv)
{
  int viewers = 200, seconds = 5, pps = 200, size = 1200;
  unsigned threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp (argv[i], "--viewers"))
      viewers = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--seconds"))
      seconds = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--pps"))
      pps = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--size"))
      size = atoi (argv[i + 1]);
    else if (!strcmp (argv[i], "--threads"))
      threads = static_cast<unsigned> (atoi (argv[i + 1]));
  }
  struct rlimit rl;
  getrlimit (RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit (RLIMIT_NOFILE, &rl);

  FanoutSettings s;
  s.threads = threads;
  s.viewerTimeout = milliseconds (600000);
  std::string error;
  auto core = FanoutCore::create (s, {}, &error);
  if (!core) {
    fprintf (stderr, "fan-out: %s\n", error.c_str ());
    return 1;
  }
  TrackCodec video;
  video.trackId = 0;
  video.encodingName = "H264";
  video.clockRate = 90000;
  video.profileLevelId = "42e01f";
  video.packetizationMode = 1;
  core->setTrack (video);

  const long rssBefore = rssKb ();
  std::vector<std::unique_ptr<fanouttest::TestViewer>> list;
  for (int i = 0; i < viewers; i++) {
    auto v = std::make_unique<fanouttest::TestViewer> ();
    auto r = core->addViewer (v->offer ());
    if (!r.ok () || !v->applyAnswer (r.answer) || !v->connect ()) {
      fprintf (stderr, "viewer %d did not connect: %s\n", i, r.error.c_str ());
      return 1;
    }
    /* one receiver report: the server frees its DTLS state (as with a
     * real viewer, whose RTCP comes within seconds), the client too */
    v->sendReceiverReport (v->ssrc ("video"), 0, 0);
    v->releaseDtls ();
    int small = 64 * 1024;
    setsockopt (v->fd (), SOL_SOCKET, SO_RCVBUF, &small, sizeof (small));
    list.push_back (std::move (v));
  }
  std::this_thread::sleep_for (milliseconds (300));
  const long rssViewers = rssKb ();

  /* a keyframe, then packets at the given rate */
  const double cpu0 = cpuSeconds ();
  const auto t0 = steady_clock::now ();
  const auto sent0 = core->stats (false).packetsSent;
  const int total = seconds * pps;
  uint16_t seq = 0;
  for (int i = 0; i < total; i++) {
    auto p = fanouttest::h264Packet (seq++, 90 * i, 0x1234, i == 0, static_cast<size_t> (size - 12));
    core->push (makeBytesPacket (0, p.data (), p.size (), i == 0));
    std::this_thread::sleep_until (t0 + microseconds (int64_t (i + 1) * 1000000 / pps));
  }
  std::this_thread::sleep_for (milliseconds (200));
  const double cpu = cpuSeconds () - cpu0;
  const double wall = duration<double> (steady_clock::now () - t0).count ();
  const auto st = core->stats (false);
  const double sent = double (st.packetsSent - sent0);
  printf ("viewers %d, %d packets of %d bytes at %d/s, %u sending thread(s), gso %s\n", viewers,
      total, size, pps, threads, st.gso ? "on" : "off");
  printf ("SRTP packets sent %.0f (%.1f%% of %d), dropped %llu\n", sent,
      100.0 * sent / (double (total) * viewers), total * viewers,
      static_cast<unsigned long long> (st.dropped));
  printf ("process CPU %.2f s over %.2f s: %.2f us per packet, %.0f packets per core-second, "
      "%.1f%% of a core\n", cpu, wall, cpu * 1e6 / sent, sent / cpu, 100.0 * cpu / wall);
  printf ("RSS %ld KB before viewers, %ld KB with them: %.1f KB per viewer (viewer sockets "
      "and the test's viewer state included)\n", rssBefore, rssViewers,
      double (rssViewers - rssBefore) / viewers);
  core->stop ();
  return 0;
}
