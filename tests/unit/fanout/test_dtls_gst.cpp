/* Interop: DtlsSession against GStreamer's DTLS-SRTP elements (dtlssrtpenc
 * and dtlssrtpdec from gst-plugins-bad, on OpenSSL) in a gst-launch-1.0
 * process, over UDP on loopback. The test's side is the edge (server) or a
 * viewer (client); both sides send RTP and the other decrypts it:
 *
 *   gst-launch:  udpsrc -> dtlssrtpdec -> udpsink (plain RTP back to the test)
 *                audiotestsrc -> rtppcmupay -> dtlssrtpenc -> udpsink (to the test)
 *
 * Skipped when gst-launch-1.0 or the dtls plugin is not installed. */
#include <gtest/gtest.h>

#include "dtls-test-util.h"
#include "fanout-test-util.h"
#include "xdn-fanout-bytes.h"
#include "xdn-fanout-dtls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace xdn::fanout;
using namespace fanouttest;

namespace {

constexpr uint8_t kOurPayloadType = 111;
constexpr uint32_t kOurSsrc = 0x0a0b0c0d;
constexpr uint32_t kGstSsrc = 0x12345678;

class UdpSocket {
public:
  UdpSocket ()
  {
    fd_ = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in sin {};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    bind (fd_, reinterpret_cast<sockaddr *> (&sin), sizeof (sin));
    socklen_t len = sizeof (sin);
    getsockname (fd_, reinterpret_cast<sockaddr *> (&sin), &len);
    port_ = ntohs (sin.sin_port);
  }
  ~UdpSocket () { ::close (fd_); }
  UdpSocket (const UdpSocket &) = delete;
  UdpSocket &operator= (const UdpSocket &) = delete;

  int fd () const { return fd_; }
  uint16_t port () const { return port_; }

  void sendTo (uint16_t port, const uint8_t *data, size_t size)
  {
    sockaddr_in to {};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    to.sin_port = htons (port);
    sendto (fd_, data, size, 0, reinterpret_cast<sockaddr *> (&to), sizeof (to));
  }

  /* One datagram if one is waiting; empty otherwise. */
  std::vector<uint8_t> receive ()
  {
    std::vector<uint8_t> buf (2048);
    ssize_t n = recv (fd_, buf.data (), buf.size (), 0);
    buf.resize (n > 0 ? static_cast<size_t> (n) : 0);
    return buf;
  }

private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

/* A UDP port nobody uses now (bound, then let go) for udpsrc. */
uint16_t
freePort ()
{
  UdpSocket s;
  return s.port ();
}

bool
onPath (const char *program)
{
  const char *path = getenv ("PATH");
  std::stringstream dirs (path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline (dirs, dir, ':'))
    if (!dir.empty () && access ((dir + "/" + program).c_str (), X_OK) == 0)
      return true;
  return false;
}

bool
haveGstDtls ()
{
  if (!onPath ("gst-launch-1.0") || !onPath ("gst-inspect-1.0"))
    return false;
  return system ("gst-inspect-1.0 --exists dtlssrtpenc && gst-inspect-1.0 --exists dtlssrtpdec"
                 " && gst-inspect-1.0 --exists rtppcmupay >/dev/null 2>&1") == 0;
}

/* gst-launch-1.0 in a process group of its own, killed with its group when
 * the test ends; its output goes to a file shown when the test fails. */
class GstLaunch {
public:
  explicit GstLaunch (const std::vector<std::string> &args)
  {
    const char *dir = getenv ("TMPDIR");
    std::string tmpl = std::string (dir && *dir ? dir : "/tmp") + "/xdn-dtls-gst-XXXXXX";
    int logFd = mkstemp (tmpl.data ());
    log_ = tmpl;
    std::vector<char *> argv;
    argv.push_back (const_cast<char *> ("gst-launch-1.0"));
    for (const auto &a : args)
      argv.push_back (const_cast<char *> (a.c_str ()));
    argv.push_back (nullptr);
    pid_ = fork ();
    if (pid_ == 0) {
      setpgid (0, 0);
      dup2 (logFd, 1);
      dup2 (logFd, 2);
      execvp ("gst-launch-1.0", argv.data ());
      _exit (127);
    }
    if (pid_ > 0)
      setpgid (pid_, pid_);
    ::close (logFd);
  }

  ~GstLaunch ()
  {
    stop ();
    unlink (log_.c_str ());
  }

  bool running ()
  {
    if (pid_ <= 0)
      return false;
    int status = 0;
    if (waitpid (pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }

  void stop ()
  {
    if (pid_ <= 0)
      return;
    kill (-pid_, SIGTERM);
    auto end = std::chrono::steady_clock::now () + std::chrono::seconds (3);
    int status = 0;
    while (waitpid (pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now () > end) {
        kill (-pid_, SIGKILL);
        waitpid (pid_, &status, 0);
        break;
      }
      poll (nullptr, 0, 10);
    }
    pid_ = -1;
  }

  std::string output () const
  {
    std::ifstream f (log_);
    std::stringstream s;
    s << f.rdbuf ();
    return s.str ();
  }

private:
  pid_t pid_ = -1;
  std::string log_;
};

struct InteropResult {
  DtlsState state = DtlsState::New;
  std::string error;
  std::optional<SrtpProfile> profile;
  int decryptedFromGst = 0;      /* SRTP from GStreamer we decrypted */
  /* srtpenc may send a packet or two under its initial random key before
   * the DTLS keys reach it: counted apart */
  int undecryptableFirst = 0;
  int undecryptable = 0;         /* after one decrypted */
  int echoedByGst = 0;           /* our SRTP that GStreamer decrypted, byte for byte */
  int echoMismatch = 0;
};

/* Runs one exchange: our session in @role against gst-launch in the other,
 * until both directions carried @wanted packets or 15 s passed. */
InteropResult
runInterop (DtlsRole role, int wanted, std::string &log)
{
  InteropResult result;
  UdpSocket ours;    /* DTLS and SRTP to and from GStreamer */
  UdpSocket plain;   /* what dtlssrtpdec decrypted, sent back by udpsink */
  uint16_t gstPort = freePort ();

  auto gstCert = DtlsCertificate::generate ();
  auto ctx = contextFor (serverCertificate ());
  const bool gstIsClient = role == DtlsRole::Server;

  GstLaunch gst ({"-q",
      "udpsrc", "address=127.0.0.1", "port=" + std::to_string (gstPort), "!",
      "dtlssrtpdec", "name=dec", "connection-id=xdn", /* quoted: a PEM has newlines */
      "pem=\"" + gstCert->pem () + "\"",
      "dec.rtp_src", "!", "udpsink", "host=127.0.0.1", "port=" + std::to_string (plain.port ()),
      "sync=false", "async=false",
      "dec.rtcp_src", "!", "fakesink", "sync=false", "async=false",
      "audiotestsrc", "is-live=true", "samplesperbuffer=160", "!",
      "audio/x-raw,rate=8000,channels=1", "!", "mulawenc", "!",
      "rtppcmupay", "ssrc=" + std::to_string (kGstSsrc), "!", "enc.rtp_sink_0",
      "dtlssrtpenc", "name=enc", "connection-id=xdn",
      std::string ("is-client=") + (gstIsClient ? "true" : "false"), "!",
      "udpsink", "host=127.0.0.1", "port=" + std::to_string (ours.port ()),
      "sync=false", "async=false"});

  DtlsSession session (ctx, role, gstCert->fingerprint (),
      [&] (const uint8_t *d, size_t n) { ours.sendTo (gstPort, d, n); });

  SrtpContext out, in;
  bool keyed = false;
  uint16_t seq = 1000;
  std::vector<std::vector<uint8_t>> sentPlain;
  auto nextSend = std::chrono::steady_clock::now ();
  auto nextHello = std::chrono::steady_clock::now () + std::chrono::milliseconds (300);
  auto end = std::chrono::steady_clock::now () + std::chrono::seconds (15);

  if (role == DtlsRole::Server)
    session.start ();

  while (std::chrono::steady_clock::now () < end && gst.running ()) {
    if (result.decryptedFromGst >= wanted && result.echoedByGst >= wanted)
      break;
    /* our ClientHello waits until gst-launch had time to bind its port; the
     * retransmission timer would cover a loss anyway */
    if (role == DtlsRole::Client && session.state () == DtlsState::New
        && std::chrono::steady_clock::now () >= nextHello)
      session.start ();

    pollfd fds[2] = {{ours.fd (), POLLIN, 0}, {plain.fd (), POLLIN, 0}};
    int timeout = 20;
    if (auto t = session.nextTimeout ()) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds> (
          *t - std::chrono::steady_clock::now ()).count ();
      timeout = static_cast<int> (std::max<long> (0, std::min<long> (timeout, ms)));
    }
    poll (fds, 2, timeout);
    session.onTimeout ();
    if (session.state () == DtlsState::Failed)
      break;

    for (auto d = ours.receive (); !d.empty (); d = ours.receive ()) {
      if (d[0] >= 20 && d[0] <= 63) {
        session.feed (d.data (), d.size ());
      } else if (d[0] >= 128 && d[0] <= 191 && keyed) {
        /* RTCP (payload type 200-206 with the marker bit) is not counted */
        bool rtcp = d.size () > 1 && d[1] >= 192 && d[1] <= 223;
        size_t n = 0;
        SrtpStatus s = rtcp ? in.unprotectRtcp (d.data (), d.size (), n)
                            : in.unprotectRtp (d.data (), d.size (), n);
        if (s != SrtpStatus::Ok)
          (result.decryptedFromGst > 0 ? result.undecryptable : result.undecryptableFirst)++;
        else if (!rtcp && n >= 12 && (d[1] & 0x7f) == 0 && rd32 (d.data () + 8) == kGstSsrc)
          result.decryptedFromGst++;
      }
    }
    for (auto d = plain.receive (); !d.empty (); d = plain.receive ()) {
      bool found = false;
      for (auto &p : sentPlain)
        found = found || p == d;
      (found ? result.echoedByGst : result.echoMismatch)++;
    }

    if (!keyed && session.state () == DtlsState::Connected) {
      keyed = session.srtpKeys ()->initOutbound (out) && session.srtpKeys ()->initInbound (in);
      result.profile = session.srtpKeys ()->profile;
    }
    if (keyed && std::chrono::steady_clock::now () >= nextSend) {
      auto rtp = rtpPacket (seq, 160u * seq, kOurSsrc, 160, kOurPayloadType);
      seq++;
      sentPlain.push_back (rtp);
      rtp.resize (rtp.size () + SrtpContext::kMaxTrailer);
      size_t n = 0;
      if (out.protectRtp (rtp.data (), sentPlain.back ().size (), rtp.size (), n) == SrtpStatus::Ok)
        ours.sendTo (gstPort, rtp.data (), n);
      nextSend = std::chrono::steady_clock::now () + std::chrono::milliseconds (20);
    }
  }
  result.state = session.state ();
  result.error = session.error ();
  if (session.state () == DtlsState::Connected)
    session.close ();
  gst.stop ();
  log = gst.output ();
  return result;
}

}  // namespace

class DtlsGstInterop : public ::testing::TestWithParam<DtlsRole> {
protected:
  void SetUp () override
  {
    if (!haveGstDtls ())
      GTEST_SKIP () << "gst-launch-1.0 with the dtls, srtp and rtp plugins is not installed";
  }
};

TEST_P (DtlsGstInterop, HandshakesAndCarriesSrtpBothWays)
{
  std::string log;
  InteropResult r = runInterop (GetParam (), 10, log);
  EXPECT_EQ (r.state, DtlsState::Connected) << r.error << "\ngst-launch said:\n" << log;
  /* GStreamer offers only AES_CM_80 */
  EXPECT_EQ (r.profile, SrtpProfile::AesCm128HmacSha1_80);
  EXPECT_GE (r.decryptedFromGst, 10) << "gst-launch said:\n" << log;
  EXPECT_GE (r.echoedByGst, 10) << "gst-launch said:\n" << log;
  EXPECT_EQ (r.echoMismatch, 0);
  EXPECT_EQ (r.undecryptable, 0);
  EXPECT_LE (r.undecryptableFirst, 3);
}

INSTANTIATE_TEST_SUITE_P (Roles, DtlsGstInterop,
    ::testing::Values (DtlsRole::Server, DtlsRole::Client),
    [] (const ::testing::TestParamInfo<DtlsRole> &info) {
      return std::string (info.param == DtlsRole::Server ? "WeAreServer" : "WeAreClient");
    });
