/* OpenXDN GStreamer plugin: registers every element of the plugin. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>

#include "xdn-elements.h"

static gboolean
plugin_init (GstPlugin * plugin)
{
  return xdn_register_elements (plugin);
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, xdn,
    "OpenXDN real-time streaming elements", plugin_init, VERSION, "LGPL",
    "OpenXDN", "https://github.com/openxdn/openxdn")
