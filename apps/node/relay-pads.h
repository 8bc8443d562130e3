/* Linking an xdnrelaysrc's track pads (video_N, audio_N, track_N) to an
 * xdnrelaysink's request pads of the same number (sink_N), as the pull and
 * serving pipelines of the node do. */
#pragma once

#include <gst/gst.h>

#include <string>

namespace xdn {

/* The track id in a relay source pad's name ("video_3" -> 3), or -1. */
int relayTrackOfPad (const char *padName);

/* Links @srcpad to @sink's pad sink_N (requested if needed; N from the pad
 * name). xdnrelaysrc sends a new pad's caps as soon as it is linked, so the
 * sink describes the track before its first buffer. Returns "" or why not.
 * Any thread. */
std::string linkRelayTrack (GstPad *srcpad, GstElement *sink);

}  // namespace xdn
