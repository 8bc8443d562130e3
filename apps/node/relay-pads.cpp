#include "relay-pads.h"

#include "xdn-gref.h"

#include <cstdlib>
#include <cstring>

namespace xdn {

int
relayTrackOfPad (const char *padName)
{
  const char *us = padName ? strrchr (padName, '_') : nullptr;
  if (!us || !us[1])
    return -1;
  char *end = nullptr;
  long id = strtol (us + 1, &end, 10);
  return (end && *end == '\0' && id >= 0 && id < 100000) ? static_cast<int> (id) : -1;
}

std::string
linkRelayTrack (GstPad *srcpad, GstElement *sink)
{
  const int track = relayTrackOfPad (GST_PAD_NAME (srcpad));
  const std::string name = track >= 0 ? "sink_" + std::to_string (track) : "sink_%u";
  GRef<GstPad> sinkpad = adoptGRef (gst_element_get_static_pad (sink, name.c_str ()));
  if (!sinkpad)
    sinkpad = adoptGRef (gst_element_request_pad_simple (sink, name.c_str ()));
  if (!sinkpad)
    return "the sink has no pad " + name;
  if (gst_pad_is_linked (sinkpad.get ()))
    return "the sink's pad " + name + " is already linked";
  /* Linked in pad-added, the sink gets the track's caps from xdnrelaysrc at
   * once, before the first buffer. */
  if (gst_pad_link (srcpad, sinkpad.get ()) != GST_PAD_LINK_OK)
    return "cannot link to " + name;
  return "";
}

}  // namespace xdn
