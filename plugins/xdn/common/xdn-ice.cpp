#include "xdn-ice.h"

#include <sstream>

namespace xdn {

bool
configureWebRtcBin (GstElement *webrtcbin, const IceSettings &settings,
    std::string *error)
{
  g_object_set (webrtcbin, "bundle-policy", 3 /* max-bundle */, NULL);

  /* webrtcbin paces what it sends with a clocksync per stream, holding
   * each buffer until its running time plus the pipeline's latency (the
   * largest of every branch: an audio encoder alone reports 20 ms and
   * more). Live encoders and relayed packets already come in real time,
   * so that pacing only delays the picture: send as soon as it is made. */
  g_signal_connect (webrtcbin, "deep-element-added",
      G_CALLBACK (+[] (GstBin *, GstBin *, GstElement *element, gpointer) {
        GstElementFactory *factory = gst_element_get_factory (element);
        if (factory && g_strcmp0 (GST_OBJECT_NAME (factory), "clocksync") == 0)
          g_object_set (element, "sync", FALSE, NULL);
      }), nullptr);
  if (!settings.stunServer.empty ())
    g_object_set (webrtcbin, "stun-server", settings.stunServer.c_str (), NULL);
  if (!settings.turnServer.empty ())
    g_object_set (webrtcbin, "turn-server", settings.turnServer.c_str (), NULL);

  GObject *ice = nullptr;
  g_object_get (webrtcbin, "ice-agent", &ice, NULL);
  if (!ice) {
    if (error)
      *error = "webrtcbin has no ICE agent";
    return false;
  }
  g_object_set (ice, "ice-tcp", FALSE, NULL);
  /* GstWebRTCICE hands the range to libnice for each stream it adds (one
   * per session with max-bundle). min first: it may not exceed the max in
   * place, which is 65535 until max is set. */
  if (settings.minPort > 0 && settings.minPort <= settings.maxPort)
    g_object_set (ice, "min-rtp-port", settings.minPort, "max-rtp-port", settings.maxPort, NULL);

  GObject *agent = nullptr;
  g_object_get (ice, "agent", &agent, NULL);
  if (agent) {
    g_object_set (agent, "upnp", FALSE, NULL);
    g_object_unref (agent);
  }

  bool ok = true;
  for (const auto &address : settings.addresses) {
    gboolean added = FALSE;
    g_signal_emit_by_name (ice, "add-local-ip-address", address.c_str (), &added);
    if (!added) {
      if (error)
        *error = "ICE agent refused local address '" + address + "'";
      ok = false;
      break;
    }
  }
  g_object_unref (ice);
  return ok;
}

std::vector<std::string>
splitList (const std::string &list)
{
  std::vector<std::string> items;
  std::stringstream in (list);
  std::string item;
  while (std::getline (in, item, ',')) {
    auto b = item.find_first_not_of (" \t");
    auto e = item.find_last_not_of (" \t");
    if (b != std::string::npos)
      items.push_back (item.substr (b, e - b + 1));
  }
  return items;
}

}  // namespace xdn
