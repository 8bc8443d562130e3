#include "xdn-webrtc-codecs.h"

#include <cstdlib>
#include <set>

namespace xdn {

RtpCodec
codecFromMediaCaps (const GstCaps *caps)
{
  if (!caps || gst_caps_is_empty (caps) || gst_caps_is_any (caps))
    return RtpCodec::None;
  const char *name = gst_structure_get_name (gst_caps_get_structure (caps, 0));
  if (g_str_equal (name, "video/x-h264"))
    return RtpCodec::H264;
  if (g_str_equal (name, "video/x-vp8"))
    return RtpCodec::VP8;
  if (g_str_equal (name, "audio/x-opus"))
    return RtpCodec::Opus;
  return RtpCodec::None;
}

RtpCodec
codecFromRtpCaps (const GstCaps *caps)
{
  if (!caps || gst_caps_is_empty (caps) || gst_caps_is_any (caps))
    return RtpCodec::None;
  const char *enc = gst_structure_get_string (gst_caps_get_structure (caps, 0),
      "encoding-name");
  if (!enc)
    return RtpCodec::None;
  if (g_ascii_strcasecmp (enc, "H264") == 0)
    return RtpCodec::H264;
  if (g_ascii_strcasecmp (enc, "VP8") == 0)
    return RtpCodec::VP8;
  if (g_ascii_strcasecmp (enc, "OPUS") == 0)
    return RtpCodec::Opus;
  return RtpCodec::None;
}

const char *
codecName (RtpCodec codec)
{
  switch (codec) {
    case RtpCodec::H264: return "H264";
    case RtpCodec::VP8: return "VP8";
    case RtpCodec::Opus: return "OPUS";
    case RtpCodec::None: break;
  }
  return "none";
}

int
codecPayloadType (RtpCodec codec)
{
  switch (codec) {
    case RtpCodec::H264: return kPayloadH264;
    case RtpCodec::VP8: return kPayloadVP8;
    case RtpCodec::Opus: return kPayloadOpus;
    case RtpCodec::None: break;
  }
  return -1;
}

bool
codecIsVideo (RtpCodec codec)
{
  return codec == RtpCodec::H264 || codec == RtpCodec::VP8;
}

GstCaps *
rtpCapsForCodec (RtpCodec codec)
{
  switch (codec) {
    case RtpCodec::H264:
      return gst_caps_new_simple ("application/x-rtp",
          "media", G_TYPE_STRING, "video", "encoding-name", G_TYPE_STRING, "H264",
          "clock-rate", G_TYPE_INT, 90000, "payload", G_TYPE_INT, kPayloadH264,
          "packetization-mode", G_TYPE_STRING, "1",
          "level-asymmetry-allowed", G_TYPE_STRING, "1",
          "rtcp-fb-nack", G_TYPE_BOOLEAN, TRUE,
          "rtcp-fb-nack-pli", G_TYPE_BOOLEAN, TRUE,
          "rtcp-fb-ccm-fir", G_TYPE_BOOLEAN, TRUE, NULL);
    case RtpCodec::VP8:
      return gst_caps_new_simple ("application/x-rtp",
          "media", G_TYPE_STRING, "video", "encoding-name", G_TYPE_STRING, "VP8",
          "clock-rate", G_TYPE_INT, 90000, "payload", G_TYPE_INT, kPayloadVP8,
          "rtcp-fb-nack", G_TYPE_BOOLEAN, TRUE,
          "rtcp-fb-nack-pli", G_TYPE_BOOLEAN, TRUE,
          "rtcp-fb-ccm-fir", G_TYPE_BOOLEAN, TRUE, NULL);
    case RtpCodec::Opus:
      return gst_caps_new_simple ("application/x-rtp",
          "media", G_TYPE_STRING, "audio", "encoding-name", G_TYPE_STRING, "OPUS",
          "clock-rate", G_TYPE_INT, 48000, "payload", G_TYPE_INT, kPayloadOpus,
          "encoding-params", G_TYPE_STRING, "2",
          "minptime", G_TYPE_STRING, "10",
          "useinbandfec", G_TYPE_STRING, "1", NULL);
    case RtpCodec::None:
      break;
  }
  return nullptr;
}

void
completeH264Fmtp (GstSDPMessage *sdp)
{
  for (guint m = 0; m < gst_sdp_message_medias_len (sdp); m++) {
    GstSDPMedia *media = const_cast<GstSDPMedia *> (gst_sdp_message_get_media (sdp, m));
    std::set<int> h264;
    for (guint a = 0; a < gst_sdp_media_attributes_len (media); a++) {
      const GstSDPAttribute *attr = gst_sdp_media_get_attribute (media, a);
      if (g_strcmp0 (attr->key, "rtpmap") == 0 && attr->value) {
        char *end = nullptr;
        long pt = strtol (attr->value, &end, 10);
        if (end && g_ascii_strncasecmp (end, " H264/", 6) == 0)
          h264.insert (static_cast<int> (pt));
      }
    }
    for (int pt : h264) {
      std::string prefix = std::to_string (pt) + " ";
      bool found = false;
      for (guint a = 0; a < gst_sdp_media_attributes_len (media); a++) {
        const GstSDPAttribute *attr = gst_sdp_media_get_attribute (media, a);
        if (g_strcmp0 (attr->key, "fmtp") != 0 || !attr->value
            || !g_str_has_prefix (attr->value, prefix.c_str ()))
          continue;
        found = true;
        std::string value = attr->value;
        if (value.find ("packetization-mode") == std::string::npos)
          value += ";packetization-mode=1";
        if (value.find ("profile-level-id") == std::string::npos)
          value += ";profile-level-id=42e01f";
        if (value != attr->value) {
          GstSDPAttribute replacement;
          gst_sdp_attribute_set (&replacement, "fmtp", value.c_str ());
          gst_sdp_media_replace_attribute (media, a, &replacement);
        }
        break;
      }
      if (!found)
        gst_sdp_media_add_attribute (media, "fmtp",
            (prefix + "packetization-mode=1;profile-level-id=42e01f;"
                "level-asymmetry-allowed=1").c_str ());
    }
  }
}

}  // namespace xdn
