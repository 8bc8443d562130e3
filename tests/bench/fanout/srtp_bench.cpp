/* Fan-out building blocks, measured side by side in one run:
 *  1. SRTP protect of one RTP packet (default 1200 bytes): ours
 *     (xdn-fanout-srtp: AES-CM on the CPU's AES instructions where it has
 *     them, GCM and HMAC-SHA1 on OpenSSL) against libsrtp2's srtp_protect,
 *     for each profile; the copy of the packet into the work buffer, which
 *     both pay, is measured alone too.
 *  2. AES-128-CTR of one packet, its counter block set first, under many
 *     keys in turn (one per viewer): OpenSSL's EVP against Aes128Ctr on
 *     AES-NI and on VAES.
 *  3. The SRTP authentication tag of one packet under many viewers' keys
 *     (HMAC-SHA1 of the packet and the 4-byte rollover counter): one
 *     HmacSha1 at a time against HmacSha1::many (), which hashes eight
 *     messages at once in vector registers where the CPU has AVX2 (with
 *     fewer instructions where it has AVX-512).
 *  4. Sending datagrams to loopback UDP sockets standing for viewers: one
 *     sendto per datagram, sendmmsg batches, and UDP GSO for bursts of
 *     same-size datagrams to one viewer (a video frame's packets).
 *
 * Usage: srtp_bench [--packets N] [--size BYTES] [--udp-packets N]
 *                   [--viewers N] [--burst N] [--batch N] [--rounds N]
 *                   [--only srtp|aes|hmac|udp]
 * Times are the best of --rounds runs (the machine is shared). */
#include "xdn-fanout-aes-ctr.h"
#include "xdn-fanout-hmac.h"
#include "xdn-fanout-srtp.h"
#include "xdn-fanout-udp.h"

#if defined(XDN_HAVE_LIBSRTP2)
#include <srtp2/srtp.h>
#endif

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace xdn::fanout;

namespace {

struct Options {
  size_t packets = 200000;
  size_t size = 1200;
  size_t udpPackets = 200000;
  size_t viewers = 16;
  size_t burst = 8;
  size_t batch = 64;
  int rounds = 3;
  std::string only;
};

double
threadCpuNs ()
{
  timespec ts;
  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

double
wallNs ()
{
  return std::chrono::duration<double, std::nano> (
      std::chrono::steady_clock::now ().time_since_epoch ()).count ();
}

struct Timing {
  double wallNsPer = 0;
  double cpuNsPer = 0;
};

/* Best of @rounds runs of @body, which handles @count items. */
Timing
measure (int rounds, size_t count, const std::function<void ()> &body)
{
  Timing best {1e300, 1e300};
  for (int r = 0; r < rounds; r++) {
    double w0 = wallNs (), c0 = threadCpuNs ();
    body ();
    double w = (wallNs () - w0) / count, c = (threadCpuNs () - c0) / count;
    best.wallNsPer = std::min (best.wallNsPer, w);
    best.cpuNsPer = std::min (best.cpuNsPer, c);
  }
  return best;
}

void
printRow (const char *what, const Timing &t, size_t bytes)
{
  double pps = 1e9 / t.cpuNsPer;
  printf ("| %-44s | %8.0f | %8.0f | %10.0f | %8.0f |\n", what, t.wallNsPer, t.cpuNsPer, pps,
      pps * bytes * 8 / 1e6);
}

std::vector<uint8_t>
rtpTemplate (size_t size)
{
  std::vector<uint8_t> p (size);
  p[0] = 0x80;
  p[1] = 96;
  p[8] = 0x12, p[9] = 0x34, p[10] = 0x56, p[11] = 0x78;
  for (size_t i = 12; i < size; i++)
    p[i] = static_cast<uint8_t> (i * 31);
  return p;
}

const char *
profileLabel (SrtpProfile p)
{
  return srtpProfileParams (p)->name;
}

void
benchSrtp (const Options &o)
{
  printf ("\n## SRTP protect, %zu-byte RTP packets, %zu packets per run, best of %d\n\n",
      o.size, o.packets, o.rounds);
  printf ("| %-44s | %8s | %8s | %10s | %8s |\n", "transform", "wall ns", "cpu ns", "packets/s",
      "Mbit/s");
  printf ("|%s|%s|%s|%s|%s|\n", std::string (46, '-').c_str (), std::string (10, '-').c_str (),
      std::string (10, '-').c_str (), std::string (12, '-').c_str (), std::string (10, '-').c_str ());

  const auto tmpl = rtpTemplate (o.size);
  std::vector<uint8_t> buf (o.size + 64);
  uint8_t keySalt[64];
  for (size_t i = 0; i < sizeof (keySalt); i++)
    keySalt[i] = static_cast<uint8_t> (i * 7 + 3);

  Timing copy = measure (o.rounds, o.packets, [&] {
    for (size_t i = 0; i < o.packets; i++) {
      memcpy (buf.data (), tmpl.data (), tmpl.size ());
      buf[2] = static_cast<uint8_t> (i >> 8);
      buf[3] = static_cast<uint8_t> (i);
      asm volatile ("" : : "r"(buf.data ()) : "memory");
    }
  });
  printRow ("copy of the packet only (in both rows below)", copy, o.size);

#if defined(XDN_HAVE_LIBSRTP2)
  if (srtp_init () != srtp_err_status_ok)
    fprintf (stderr, "srtp_init failed\n");
#endif

  for (SrtpProfile profile : {SrtpProfile::AesCm128HmacSha1_80, SrtpProfile::AesCm128HmacSha1_32,
           SrtpProfile::AeadAes128Gcm}) {
    const SrtpProfileParams *params = srtpProfileParams (profile);
    SrtpContext ctx;
    if (!ctx.init (profile, keySalt, keySalt + params->masterKeyLength)) {
      fprintf (stderr, "init %s failed\n", params->name);
      continue;
    }
    /* sequence numbers run on across rounds (a restart would be a replay) */
    size_t failures = 0;
    uint32_t seq = 0;
    Timing ours = measure (o.rounds, o.packets, [&] {
      for (size_t i = 0; i < o.packets; i++, seq++) {
        memcpy (buf.data (), tmpl.data (), tmpl.size ());
        buf[2] = static_cast<uint8_t> (seq >> 8);
        buf[3] = static_cast<uint8_t> (seq);
        size_t out = 0;
        failures += ctx.protectRtp (buf.data (), tmpl.size (), buf.size (), out) != SrtpStatus::Ok;
      }
    });
    std::string label = std::string ("ours ") + profileLabel (profile) + " (" +
        (params->aead ? "OpenSSL" : Aes128Ctr::kernelName (Aes128Ctr::best ())) + ")";
    printRow (label.c_str (), ours, o.size);

#if defined(XDN_HAVE_LIBSRTP2)
    srtp_policy_t policy;
    memset (&policy, 0, sizeof (policy));
    if (profile == SrtpProfile::AesCm128HmacSha1_80)
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80 (&policy.rtp);
    else if (profile == SrtpProfile::AesCm128HmacSha1_32)
      srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32 (&policy.rtp);
    else
      srtp_crypto_policy_set_aes_gcm_128_16_auth (&policy.rtp);
    policy.rtcp = policy.rtp;
    policy.key = keySalt;
    policy.ssrc.type = ssrc_any_outbound;
    policy.allow_repeat_tx = 1;
    srtp_t session = nullptr;
    if (srtp_create (&session, &policy) != srtp_err_status_ok) {
      printf ("| %-44s | %8s | %8s | %10s | %8s |\n",
          (std::string ("libsrtp2 ") + profileLabel (profile)).c_str (), "n/a", "n/a", "n/a", "n/a");
      continue;
    }
    seq = 0;
    Timing ref = measure (o.rounds, o.packets, [&] {
      for (size_t i = 0; i < o.packets; i++, seq++) {
        memcpy (buf.data (), tmpl.data (), tmpl.size ());
        buf[2] = static_cast<uint8_t> (seq >> 8);
        buf[3] = static_cast<uint8_t> (seq);
        int len = static_cast<int> (tmpl.size ());
        failures += srtp_protect (session, buf.data (), &len) != srtp_err_status_ok;
      }
    });
    srtp_dealloc (session);
    label = std::string ("libsrtp2 srtp_protect ") + profileLabel (profile);
    printRow (label.c_str (), ref, o.size);
    printf ("| %-44s | %8.2f | %8.2f | %10s | %8s |\n",
        (std::string ("  libsrtp2 / ours ") + profileLabel (profile)).c_str (),
        ref.wallNsPer / ours.wallNsPer, ref.cpuNsPer / ours.cpuNsPer, "", "");
#endif
    if (failures)
      printf ("(%zu protect calls failed: these figures are not valid)\n", failures);
  }
}

/* ---- AES-128-CTR of one packet under many keys ---- */

void
benchAesCtr (const Options &o)
{
  constexpr size_t kKeys = 256;
  printf ("\n## AES-128-CTR of %zu bytes (an SRTP payload), the counter block set for each, "
          "under %zu keys in turn, best of %d\n\n",
      o.size, kKeys, o.rounds);
  printf ("| %-44s | %8s | %8s | %10s | %8s |\n", "cipher", "wall ns", "cpu ns", "packets/s",
      "Mbit/s");
  printf ("|%s|%s|%s|%s|%s|\n", std::string (46, '-').c_str (), std::string (10, '-').c_str (),
      std::string (10, '-').c_str (), std::string (12, '-').c_str (), std::string (10, '-').c_str ());

  std::vector<uint8_t> buf (o.size);
  for (size_t i = 0; i < buf.size (); i++)
    buf[i] = static_cast<uint8_t> (i * 31);
  uint8_t key[16], iv[16] = {0xF0, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB};
  auto keyFor = [&] (size_t k) {
    for (size_t i = 0; i < sizeof (key); i++)
      key[i] = static_cast<uint8_t> (k * 13 + i);
    return key;
  };

  std::vector<EVP_CIPHER_CTX *> evp (kKeys);
  for (size_t k = 0; k < kKeys; k++) {
    evp[k] = EVP_CIPHER_CTX_new ();
    EVP_EncryptInit_ex (evp[k], EVP_aes_128_ctr (), nullptr, keyFor (k), nullptr);
  }
  Timing openssl = measure (o.rounds, o.packets, [&] {
    for (size_t i = 0; i < o.packets; i++) {
      iv[13] = static_cast<uint8_t> (i);
      int n = 0;
      EVP_EncryptInit_ex (evp[i % kKeys], nullptr, nullptr, nullptr, iv);
      EVP_EncryptUpdate (evp[i % kKeys], buf.data (), &n, buf.data (), static_cast<int> (buf.size ()));
    }
  });
  for (EVP_CIPHER_CTX *c : evp)
    EVP_CIPHER_CTX_free (c);
  printRow ("OpenSSL EVP aes-128-ctr", openssl, o.size);

  for (Aes128Ctr::Kernel kernel : {Aes128Ctr::Kernel::AesNi, Aes128Ctr::Kernel::Vaes}) {
    if (!Aes128Ctr::supported (kernel))
      continue;
    std::vector<Aes128Ctr> ctr (kKeys);
    for (size_t k = 0; k < kKeys; k++)
      ctr[k].setKey (keyFor (k), kernel);
    Timing ours = measure (o.rounds, o.packets, [&] {
      for (size_t i = 0; i < o.packets; i++) {
        iv[13] = static_cast<uint8_t> (i);
        ctr[i % kKeys].apply (iv, buf.data (), buf.size ());
      }
    });
    std::string label = std::string ("Aes128Ctr ") + Aes128Ctr::kernelName (kernel);
    printRow (label.c_str (), ours, o.size);
    printf ("| %-44s | %8.2f | %8.2f | %10s | %8s |\n", ("  OpenSSL / " + label).c_str (),
        openssl.wallNsPer / ours.wallNsPer, openssl.cpuNsPer / ours.cpuNsPer, "", "");
  }
}

/* ---- HMAC-SHA1 under many keys ---- */

void
benchHmacMany (const Options &o)
{
  printf ("\n## SRTP auth tag (HMAC-SHA1, %zu-byte packet + 4-byte ROC, 10-byte tag) under "
          "each viewer's key, %zu tags per run, best of %d\n\n",
      o.size, o.packets, o.rounds);
  printf ("| %-44s | %8s | %8s | %10s | %8s |\n", "method", "wall ns", "cpu ns", "tags/s",
      "Mbit/s");
  printf ("|%s|%s|%s|%s|%s|\n", std::string (46, '-').c_str (), std::string (10, '-').c_str (),
      std::string (10, '-').c_str (), std::string (12, '-').c_str (), std::string (10, '-').c_str ());

  const auto packet = rtpTemplate (o.size);
  for (size_t viewers : {8, 64, 512}) {
    std::vector<std::unique_ptr<HmacSha1>> keys;
    for (size_t v = 0; v < viewers; v++) {
      uint8_t key[20];
      for (size_t i = 0; i < sizeof (key); i++)
        key[i] = static_cast<uint8_t> (v * 131 + i * 7);
      keys.push_back (std::make_unique<HmacSha1> ());
      keys.back ()->setKey (key, sizeof (key));
    }
    std::vector<uint8_t> tags (viewers * 10);
    std::vector<HmacSha1::Job> jobs (viewers);
    for (size_t v = 0; v < viewers; v++)
      jobs[v] = {keys[v].get (), packet.data (), packet.size (), {0, 0, 0, 1}, 4,
          tags.data () + 10 * v, 10};
    const size_t calls = std::max<size_t> (1, o.packets / viewers);
    const size_t count = calls * viewers;

    Timing scalar = measure (o.rounds, count, [&] {
      for (size_t c = 0; c < calls; c++) {
        /* one job per call: below the vector path's smallest group */
        for (HmacSha1::Job &j : jobs)
          HmacSha1::many (&j, 1);
        asm volatile ("" : : "r"(tags.data ()) : "memory");
      }
    });
    std::string label = "one key at a time, " + std::to_string (viewers) + " viewers";
    printRow (label.c_str (), scalar, o.size);
    Timing many = measure (o.rounds, count, [&] {
      for (size_t c = 0; c < calls; c++) {
        HmacSha1::many (jobs.data (), jobs.size ());
        asm volatile ("" : : "r"(tags.data ()) : "memory");
      }
    });
    label = "HmacSha1::many, " + std::to_string (viewers) + " viewers";
    printRow (label.c_str (), many, o.size);
    printf ("| %-44s | %8.2f | %8.2f | %10s | %8s |\n", "  one at a time / many",
        scalar.wallNsPer / many.wallNsPer, scalar.cpuNsPer / many.cpuNsPer, "", "");
  }
}

/* ---- UDP ---- */

struct Receivers {
  std::vector<int> fds;
  std::vector<SockAddr> addrs;
  std::atomic<uint64_t> received {0};
  std::atomic<bool> stop {false};
  std::thread thread;

  explicit Receivers (size_t n)
  {
    for (size_t i = 0; i < n; i++) {
      int fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      int big = 32 << 20;
      if (setsockopt (fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof (big)) != 0)
        setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof (big));
      sockaddr_in sin {};
      sin.sin_family = AF_INET;
      sin.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
      bind (fd, reinterpret_cast<sockaddr *> (&sin), sizeof (sin));
      socklen_t len = sizeof (sin);
      getsockname (fd, reinterpret_cast<sockaddr *> (&sin), &len);
      fds.push_back (fd);
      addrs.push_back (SockAddr::fromSockaddr (reinterpret_cast<sockaddr *> (&sin), len));
    }
    thread = std::thread ([this] { drain (); });
  }

  ~Receivers ()
  {
    stop = true;
    thread.join ();
    for (int fd : fds)
      close (fd);
  }

  void drain ()
  {
    std::vector<pollfd> pfds;
    for (int fd : fds)
      pfds.push_back ({fd, POLLIN, 0});
    static constexpr int kVlen = 64;
    std::vector<uint8_t> bufs (kVlen * 2048);
    mmsghdr msgs[kVlen];
    iovec iovs[kVlen];
    while (!stop) {
      if (poll (pfds.data (), pfds.size (), 50) <= 0)
        continue;
      for (auto &p : pfds) {
        if (!(p.revents & POLLIN))
          continue;
        for (;;) {
          for (int k = 0; k < kVlen; k++) {
            iovs[k] = {bufs.data () + k * 2048, 2048};
            memset (&msgs[k], 0, sizeof (msgs[k]));
            msgs[k].msg_hdr.msg_iov = &iovs[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
          }
          int r = recvmmsg (p.fd, msgs, kVlen, MSG_DONTWAIT, nullptr);
          if (r <= 0)
            break;
          received += static_cast<uint64_t> (r);
        }
      }
    }
  }

  /* Waits (at most 2 s) until the count stops moving and returns it. */
  uint64_t settle ()
  {
    uint64_t last = received;
    for (int i = 0; i < 40; i++) {
      usleep (50000);
      uint64_t now = received;
      if (now == last)
        break;
      last = now;
    }
    return last;
  }
};

void
benchUdp (const Options &o)
{
  utsname u {};
  uname (&u);
  int probe = socket (AF_INET, SOCK_DGRAM, 0);
  bool gso = UdpBatchSender::gsoSupported (probe);
  close (probe);
  printf ("\n## UDP sends to %zu loopback viewers, %zu-byte datagrams, %zu per run, best of %d\n",
      o.viewers, o.size, o.udpPackets, o.rounds);
  printf ("kernel %s: UDP GSO (UDP_SEGMENT) %s\n\n", u.release, gso ? "supported" : "NOT supported");
  printf ("| %-44s | %8s | %8s | %10s | %8s | %9s | %9s |\n", "method", "wall ns", "cpu ns",
      "dgrams/s", "Mbit/s", "syscalls", "delivered");
  printf ("|%s|%s|%s|%s|%s|%s|%s|\n", std::string (46, '-').c_str (), std::string (10, '-').c_str (),
      std::string (10, '-').c_str (), std::string (12, '-').c_str (), std::string (10, '-').c_str (),
      std::string (11, '-').c_str (), std::string (11, '-').c_str ());

  Receivers rx (o.viewers);
  int fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int big = 8 << 20;
  if (setsockopt (fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof (big)) != 0)
    setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof (big));
  std::vector<uint8_t> payload (o.size, 0x5a);
  const size_t n = o.udpPackets;

  auto row = [&] (const char *what, const std::function<uint64_t ()> &send) {
    uint64_t syscalls = 0;
    uint64_t before = rx.settle ();
    Timing t = measure (o.rounds, n, [&] { syscalls = send (); });
    uint64_t got = rx.settle () - before;
    double delivered = 100.0 * got / (double (n) * o.rounds);
    double pps = 1e9 / t.cpuNsPer;
    printf ("| %-44s | %8.0f | %8.0f | %10.0f | %8.0f | %9.0f | %8.2f%% |\n", what, t.wallNsPer,
        t.cpuNsPer, pps, pps * o.size * 8 / 1e6, double (syscalls), delivered);
  };

  /* one datagram per viewer in turn (audio, small frames) */
  row ("sendto, one call per datagram", [&] {
    for (size_t i = 0; i < n; i++) {
      const SockAddr &a = rx.addrs[i % o.viewers];
      sendto (fd, payload.data (), payload.size (), 0, a.sa (), a.length);
    }
    return uint64_t (n);
  });

  std::string label = "sendmmsg, batches of " + std::to_string (o.batch);
  row (label.c_str (), [&] {
    UdpBatchSender s (fd);
    for (size_t i = 0; i < n; i++) {
      s.queue (rx.addrs[i % o.viewers], payload.data (), payload.size ());
      if (s.queued () == o.batch)
        s.flush ();
    }
    s.flush ();
    return s.stats ().syscalls;
  });

  /* bursts of --burst datagrams per viewer (a video frame's packets) */
  auto burstSend = [&] (bool useGso) {
    UdpBatchSender s (fd);
    s.setGso (useGso);
    size_t viewer = 0;
    for (size_t i = 0; i < n;) {
      for (size_t k = 0; k < o.burst && i < n; k++, i++)
        s.queue (rx.addrs[viewer], payload.data (), payload.size ());
      viewer = (viewer + 1) % o.viewers;
      if (s.queued () + o.burst > o.batch)
        s.flush ();
    }
    s.flush ();
    return s.stats ().syscalls;
  };
  label = "sendmmsg, bursts of " + std::to_string (o.burst) + " per viewer";
  row (label.c_str (), [&] { return burstSend (false); });
  if (gso) {
    label = "sendmmsg + GSO, bursts of " + std::to_string (o.burst) + " per viewer";
    row (label.c_str (), [&] { return burstSend (true); });
  }
  close (fd);
}

bool
parseArgs (int argc, char **argv, Options &o)
{
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&] (size_t &v) {
      if (i + 1 >= argc)
        return false;
      v = std::strtoul (argv[++i], nullptr, 10);
      return v > 0;
    };
    size_t rounds = 0;
    bool ok = a == "--packets" ? next (o.packets)
        : a == "--size"        ? next (o.size)
        : a == "--udp-packets" ? next (o.udpPackets)
        : a == "--viewers"     ? next (o.viewers)
        : a == "--burst"       ? next (o.burst)
        : a == "--batch"       ? next (o.batch)
        : a == "--rounds"      ? (next (rounds) && (o.rounds = static_cast<int> (rounds), true))
        : a == "--only"        ? (i + 1 < argc && (o.only = argv[++i], true))
                               : false;
    if (!ok) {
      fprintf (stderr,
          "usage: %s [--packets N] [--size BYTES] [--udp-packets N] [--viewers N] [--burst N] "
          "[--batch N] [--rounds N] [--only srtp|aes|hmac|udp]\n",
          argv[0]);
      return false;
    }
  }
  o.size = std::max<size_t> (o.size, 12);
  o.size = std::min<size_t> (o.size, 1400);
  o.batch = std::min (o.batch, UdpBatchSender::kMaxBatch);
  o.burst = std::min (o.burst, o.batch);
  return true;
}

}  // namespace

int
main (int argc, char **argv)
{
  Options o;
  if (!parseArgs (argc, argv, o))
    return 2;
  if (o.only.empty () || o.only == "srtp")
    benchSrtp (o);
  if (o.only.empty () || o.only == "aes")
    benchAesCtr (o);
  if (o.only.empty () || o.only == "hmac")
    benchHmacMany (o);
  if (o.only.empty () || o.only == "udp")
    benchUdp (o);
  return 0;
}
