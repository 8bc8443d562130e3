#include "codecs.h"

#include <cstdlib>
#include <sstream>

namespace xdn {

namespace {

/* H.264 that a constrained-baseline stream satisfies: profile_idc 0x42
 * (baseline) or constraint_set1 (constrained baseline), packetization
 * mode 1. */
bool
acceptableH264 (const GstStructure *s)
{
  const gchar *mode = gst_structure_get_string (s, "packetization-mode");
  if (!mode || g_strcmp0 (mode, "1") != 0)
    return false;
  const gchar *profile = gst_structure_get_string (s, "profile-level-id");
  if (!profile)
    return true;  /* RFC 6184: absent means baseline */
  if (strlen (profile) != 6)
    return false;
  unsigned long v = strtoul (profile, nullptr, 16);
  unsigned profile_idc = (v >> 16) & 0xff;
  unsigned iop = (v >> 8) & 0xff;
  return profile_idc == 0x42 || (iop & 0x40);
}

bool
accepts (const GstStructure *s, const std::string &media, const std::string &wanted)
{
  const gchar *name = gst_structure_get_string (s, "encoding-name");
  if (!name)
    return false;
  std::string enc = name;
  for (auto &ch : enc)
    ch = g_ascii_toupper (ch);
  if (!wanted.empty () && enc != wanted)
    return false;
  if (media == "video")
    return enc == "VP8" || (enc == "H264" && acceptableH264 (s));
  if (media == "audio")
    return enc == "OPUS";
  return false;
}

}  // namespace

GstCaps *
chooseOfferedCodec (const GstSDPMedia *media, const std::string &encodingName)
{
  std::string kind = gst_sdp_media_get_media (media);
  GstCaps *best = nullptr;
  int best_rank = 0;
  for (guint i = 0; i < gst_sdp_media_formats_len (media); i++) {
    int pt = atoi (gst_sdp_media_get_format (media, i));
    GstCaps *caps = gst_sdp_media_get_caps_from_media (media, pt);
    if (!caps)
      continue;
    caps = gst_caps_make_writable (caps);
    GstStructure *s = gst_caps_get_structure (caps, 0);
    gst_structure_set_name (s, "application/x-rtp");
    if (!accepts (s, kind, encodingName)) {
      gst_caps_unref (caps);
      continue;
    }
    /* Prefer constrained baseline H.264 (42e0xx) over plain baseline. */
    const gchar *profile = gst_structure_get_string (s, "profile-level-id");
    int rank = (profile && g_str_has_prefix (profile, "42e0")) ? 2 : 1;
    if (rank > best_rank) {
      if (best)
        gst_caps_unref (best);
      best = caps;
      best_rank = rank;
    } else {
      gst_caps_unref (caps);
    }
  }
  return best;
}

std::string
encodingNameOf (const GstCaps *caps)
{
  if (!caps || gst_caps_is_empty (caps))
    return "";
  const gchar *name = gst_structure_get_string (gst_caps_get_structure (caps, 0), "encoding-name");
  std::string enc = name ? name : "";
  for (auto &ch : enc)
    ch = g_ascii_toupper (ch);
  return enc;
}

std::string
announceAddress (const std::string &sdp, const std::string &from, const std::string &to)
{
  if (from.empty () || to.empty ())
    return sdp;
  std::istringstream in (sdp);
  std::string line, out;
  while (std::getline (in, line)) {
    bool cr = !line.empty () && line.back () == '\r';
    if (cr)
      line.pop_back ();
    if (line.rfind ("a=candidate:", 0) == 0) {
      /* a=candidate:foundation component transport priority ADDRESS port ... */
      std::istringstream fields (line);
      std::string field, rebuilt;
      int index = 0;
      while (fields >> field) {
        if (index == 4 && field == from)
          field = to;
        rebuilt += (index ? " " : "") + field;
        index++;
      }
      line = rebuilt;
    }
    out += line + (cr ? "\r\n" : "\n");
  }
  return out;
}

}  // namespace xdn
