#include "xdn-relay-transport.h"

#include "xdn-hub.h"
#include "xdn-relay-srt.h"

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

void
checkTransportSettings (const TransportSettings &settings)
{
  if (settings.uri.empty () && settings.socket < 0)
    return;
  if (!settings.uri.empty () && settings.socket >= 0)
    throw RelayError (RelayError::Code::Unsupported,
        "set either uri or socket, not both (uri " + settings.uri + ", socket "
        + std::to_string (settings.socket) + ")");
  if (!settings.uri.empty ()) {
    SrtUri uri;
    std::string error;
    if (!parseSrtUri (settings.uri, uri, error))
      throw RelayError (RelayError::Code::Unsupported, "unsupported relay uri " + settings.uri
          + ": " + error + " (srt://HOST:PORT, or empty for the in-process hub)");
  }
  const size_t plen = settings.passphrase.size ();
  if (plen != 0 && (plen < 10 || plen > 79))
    throw RelayError (RelayError::Code::Unsupported,
        "the SRT passphrase must be 10 to 79 characters long (it has "
        + std::to_string (plen) + ")");
}

std::shared_ptr<RelayTransport>
openTransport (const TransportSettings &settings)
{
  checkTransportSettings (settings);
  if (settings.isHub ())
    return std::shared_ptr<RelayTransport> (&Hub::instance (), [] (RelayTransport *) {});
  return std::make_shared<SrtTransport> (settings);
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

GstStructure *
linkStateToStructure (const LinkState &state)
{
  return gst_structure_new ("xdn-relay-link",
      "uri", G_TYPE_STRING, state.uri.c_str (),
      "state", G_TYPE_STRING, state.state.c_str (),
      "reason", G_TYPE_STRING, state.reason.c_str (),
      "reject-code", G_TYPE_INT, state.rejectCode, nullptr);
}

}  // namespace xdn::relay
