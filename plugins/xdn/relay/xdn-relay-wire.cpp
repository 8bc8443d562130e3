#include "xdn-relay-wire.h"

#include <json-glib/json-glib.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "xdn-gref.h"

namespace xdn::relay::wire {

const char *
kindName (Kind kind)
{
  switch (kind) {
    case Kind::Rtp:
      return "rtp";
    case Kind::Description:
      return "description";
    case Kind::TrackEnd:
      return "track-end";
    case Kind::StreamEnd:
      return "stream-end";
    case Kind::KeyframeRequest:
      return "keyframe-request";
    case Kind::Fragment:
      return "fragment";
  }
  return "unknown";
}

const char *
errorName (Error error)
{
  switch (error) {
    case Error::None:
      return "none";
    case Error::Truncated:
      return "truncated";
    case Error::BadVersion:
      return "unknown version";
    case Error::UnknownKind:
      return "unknown kind";
    case Error::Oversized:
      return "oversized";
    case Error::BadBody:
      return "malformed body";
    case Error::BadFragment:
      return "malformed fragment";
  }
  return "?";
}

Error
parseMessage (const uint8_t *data, size_t size, Message &out)
{
  if (!data || size < kHeaderSize)
    return Error::Truncated;
  if (data[0] != kVersion)
    return Error::BadVersion;
  if (size > kMaxMessageSize)
    return Error::Oversized;
  const uint8_t kind = data[1];
  if (kind < uint8_t (Kind::Rtp) || kind > uint8_t (Kind::Fragment))
    return Error::UnknownKind;
  out.kind = static_cast<Kind> (kind);
  out.track = guint16 ((data[2] << 8) | data[3]);
  out.body = data + kHeaderSize;
  out.bodySize = size - kHeaderSize;
  switch (out.kind) {
    case Kind::Rtp:
      /* The fixed RTP header, version 2. */
      if (out.bodySize < 12)
        return Error::Truncated;
      if ((out.body[0] >> 6) != 2)
        return Error::BadBody;
      break;
    case Kind::Description:
      if (out.bodySize == 0)
        return Error::Truncated;
      break;
    case Kind::Fragment:
      if (out.bodySize <= kFragmentHeaderSize)
        return Error::Truncated;
      break;
    case Kind::TrackEnd:
    case Kind::StreamEnd:
    case Kind::KeyframeRequest:
      break;
  }
  return Error::None;
}

bool
fragmentMessage (const uint8_t *data, size_t size, size_t payload_size,
    guint16 message_id, const std::function<bool (const uint8_t *, size_t)> &emit)
{
  if (size > kMaxMessageSize || payload_size < kMinPayloadSize)
    return false;
  payload_size = std::min (payload_size, kMaxPayloadSize);
  const size_t chunk = payload_size - kHeaderSize - kFragmentHeaderSize;
  const size_t count = (size + chunk - 1) / chunk;
  if (count > 0xffff)
    return false;
  uint8_t out[kMaxPayloadSize];
  for (size_t i = 0; i < count; i++) {
    const size_t offset = i * chunk;
    const size_t n = std::min (chunk, size - offset);
    writeHeader (out, Kind::Fragment, 0);
    uint8_t *f = out + kHeaderSize;
    f[0] = uint8_t (message_id >> 8);
    f[1] = uint8_t (message_id & 0xff);
    f[2] = uint8_t (i >> 8);
    f[3] = uint8_t (i & 0xff);
    f[4] = uint8_t (count >> 8);
    f[5] = uint8_t (count & 0xff);
    memcpy (f + kFragmentHeaderSize, data + offset, n);
    if (!emit (out, kHeaderSize + kFragmentHeaderSize + n))
      return false;
  }
  return true;
}

void
Reassembler::abandon ()
{
  if (active_)
    abandoned_++;
  active_ = false;
  data_.clear ();
}

void
Reassembler::reset ()
{
  active_ = false;
  data_.clear ();
}

Reassembler::Result
Reassembler::feed (const uint8_t *body, size_t size, std::vector<uint8_t> &out, Error &error)
{
  error = Error::None;
  if (size <= kFragmentHeaderSize) {
    error = Error::Truncated;
    return Result::Error;
  }
  const guint16 id = guint16 ((body[0] << 8) | body[1]);
  const guint16 index = guint16 ((body[2] << 8) | body[3]);
  const guint16 count = guint16 ((body[4] << 8) | body[5]);
  const uint8_t *bytes = body + kFragmentHeaderSize;
  const size_t n = size - kFragmentHeaderSize;

  if (count < 2 || index >= count) {
    abandon ();
    error = Error::BadFragment;
    return Result::Error;
  }
  if (index == 0) {
    abandon ();  /* a message whose last fragments never came */
    active_ = true;
    id_ = id;
    count_ = count;
    next_ = 0;
  } else if (!active_ || id != id_ || index != next_ || count != count_) {
    /* A fragment went missing: this message is lost; wait for the next. */
    abandon ();
    return Result::Incomplete;
  }
  if (data_.size () + n > kMaxMessageSize) {
    abandon ();
    error = Error::Oversized;
    return Result::Error;
  }
  data_.insert (data_.end (), bytes, bytes + n);
  next_++;
  if (next_ < count_)
    return Result::Incomplete;

  active_ = false;
  out.swap (data_);
  data_.clear ();
  if (out.size () >= 2 && out[0] == kVersion && out[1] == uint8_t (Kind::Fragment)) {
    error = Error::BadFragment;
    return Result::Error;
  }
  return Result::Complete;
}

/* ---------------------------------------------------------------------- */

std::string
encodeDescription (const std::string &stream, const std::vector<TrackDescription> &tracks)
{
  GRef<JsonBuilder> b = adoptGRef (json_builder_new ());
  json_builder_begin_object (b.get ());
  json_builder_set_member_name (b.get (), "stream");
  json_builder_add_string_value (b.get (), stream.c_str ());
  json_builder_set_member_name (b.get (), "tracks");
  json_builder_begin_array (b.get ());
  for (const auto &t : tracks) {
    GUniquePtr<gchar> caps (t.caps ? gst_caps_to_string (t.caps.get ()) : g_strdup (""));
    json_builder_begin_object (b.get ());
    json_builder_set_member_name (b.get (), "id");
    json_builder_add_int_value (b.get (), t.id);
    json_builder_set_member_name (b.get (), "kind");
    json_builder_add_string_value (b.get (), trackKindName (t.kind));
    json_builder_set_member_name (b.get (), "caps");
    json_builder_add_string_value (b.get (), caps.get ());
    json_builder_end_object (b.get ());
  }
  json_builder_end_array (b.get ());
  json_builder_end_object (b.get ());

  JsonNode *root = json_builder_get_root (b.get ());
  GRef<JsonGenerator> gen = adoptGRef (json_generator_new ());
  json_generator_set_root (gen.get (), root);
  GUniquePtr<gchar> text (json_generator_to_data (gen.get (), nullptr));
  json_node_unref (root);
  return text.get ();
}

bool
decodeDescription (const char *text, size_t size, Description &out, std::string &error)
{
  out = Description ();
  if (!text || size == 0) {
    error = "empty description";
    return false;
  }
  if (size > kMaxMessageSize) {
    error = "description too long";
    return false;
  }
  GRef<JsonParser> parser = adoptGRef (json_parser_new_immutable ());
  GError *err = nullptr;
  if (!json_parser_load_from_data (parser.get (), text, gssize (size), &err)) {
    error = std::string ("not JSON: ") + (err ? err->message : "?");
    g_clear_error (&err);
    return false;
  }
  JsonNode *root = json_parser_get_root (parser.get ());
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    error = "not a JSON object";
    return false;
  }
  JsonObject *obj = json_node_get_object (root);

  JsonNode *stream = json_object_get_member (obj, "stream");
  if (stream) {
    if (!JSON_NODE_HOLDS_VALUE (stream) || json_node_get_value_type (stream) != G_TYPE_STRING) {
      error = "\"stream\" is not a string";
      return false;
    }
    out.stream = json_node_get_string (stream);
  }

  JsonNode *tracks = json_object_get_member (obj, "tracks");
  if (!tracks || !JSON_NODE_HOLDS_ARRAY (tracks)) {
    error = "\"tracks\" is missing or not an array";
    return false;
  }
  JsonArray *array = json_node_get_array (tracks);
  const guint n = json_array_get_length (array);
  if (n > kMaxTracks) {
    error = "more than " + std::to_string (kMaxTracks) + " tracks";
    return false;
  }
  std::set<guint> ids;
  for (guint i = 0; i < n; i++) {
    const std::string where = "track " + std::to_string (i) + ": ";
    JsonNode *node = json_array_get_element (array, i);
    if (!JSON_NODE_HOLDS_OBJECT (node)) {
      error = where + "not an object";
      return false;
    }
    JsonObject *t = json_node_get_object (node);
    JsonNode *id = json_object_get_member (t, "id");
    if (!id || !JSON_NODE_HOLDS_VALUE (id) || json_node_get_value_type (id) != G_TYPE_INT64) {
      error = where + "\"id\" is missing or not an integer";
      return false;
    }
    const gint64 idv = json_node_get_int (id);
    if (idv < 0 || idv > gint64 (kMaxTrackId)) {
      error = where + "\"id\" out of range";
      return false;
    }
    if (!ids.insert (guint (idv)).second) {
      error = where + "id " + std::to_string (idv) + " given twice";
      return false;
    }
    JsonNode *caps = json_object_get_member (t, "caps");
    if (!caps || !JSON_NODE_HOLDS_VALUE (caps) || json_node_get_value_type (caps) != G_TYPE_STRING) {
      error = where + "\"caps\" is missing or not a string";
      return false;
    }
    GRef<GstCaps> parsed = adoptGRef (gst_caps_from_string (json_node_get_string (caps)));
    if (!parsed || gst_caps_get_size (parsed.get ()) != 1 ||
        !gst_structure_has_name (gst_caps_get_structure (parsed.get (), 0), "application/x-rtp")) {
      error = where + "\"caps\" are not application/x-rtp caps";
      return false;
    }
    TrackDescription d;
    d.id = guint (idv);
    d.caps = std::move (parsed);
    /* "kind" is informative: the caps' media field decides, as in the hub. */
    d.kind = trackKindFromCaps (d.caps.get ());
    out.tracks.push_back (std::move (d));
  }
  return true;
}

}  // namespace xdn::relay::wire
