#include "xdn-relay-transport.h"

#include "xdn-hub.h"

namespace xdn::relay {

TrackKind
trackKindFromCaps (GstCaps *caps)
{
  if (!caps || gst_caps_get_size (caps) == 0)
    return TrackKind::Other;
  const gchar *media =
      gst_structure_get_string (gst_caps_get_structure (caps, 0), "media");
  if (!media)
    return TrackKind::Other;
  if (g_str_equal (media, "video"))
    return TrackKind::Video;
  if (g_str_equal (media, "audio"))
    return TrackKind::Audio;
  return TrackKind::Other;
}

const char *
trackKindName (TrackKind kind)
{
  switch (kind) {
    case TrackKind::Video:
      return "video";
    case TrackKind::Audio:
      return "audio";
    case TrackKind::Other:
      break;
  }
  return "other";
}

RelayTransport &
transportForUri (const std::string &uri)
{
  if (uri.empty ())
    return Hub::instance ();
  if (g_str_has_prefix (uri.c_str (), "srt://"))
    throw RelayError (RelayError::Code::Unsupported,
        "SRT mode is not available yet (uri " + uri + ")");
  throw RelayError (RelayError::Code::Unsupported,
      "unsupported relay uri " + uri + " (leave uri empty for the in-process hub)");
}

GstStructure *
trackStatsToStructure (const TrackStats &track)
{
  GUniquePtr<gchar> caps (track.caps ? gst_caps_to_string (track.caps.get ()) : nullptr);
  return gst_structure_new ("track",
      "id", G_TYPE_UINT, track.id,
      "kind", G_TYPE_STRING, trackKindName (track.kind),
      "codec", G_TYPE_STRING, track.codec.c_str (),
      "caps", G_TYPE_STRING, caps ? caps.get () : "",
      "packets", G_TYPE_UINT64, track.packets,
      "bytes", G_TYPE_UINT64, track.bytes,
      "keyframe-requests", G_TYPE_UINT64, track.keyframeRequests,
      "ended", G_TYPE_BOOLEAN, track.ended, nullptr);
}

}  // namespace xdn::relay
