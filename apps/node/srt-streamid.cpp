#include "srt-streamid.h"

#include "xdn-stream-name.h"

#include <set>

namespace xdn {

namespace {

constexpr char kAccessControlPrefix[] = "#!::";

SrtStreamIdError
fail (SrtStreamIdError::Kind kind, std::string reason)
{
  SrtStreamIdError e;
  e.kind = kind;
  e.reason = std::move (reason);
  return e;
}

bool
hasControlCharacters (const std::string &s)
{
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f)
      return true;
  }
  return false;
}

SrtStreamIdError
checkResource (const std::string &name)
{
  std::string why = streamNameError (name);
  if (!why.empty ())
    return fail (SrtStreamIdError::Kind::Malformed, "stream name " + why);
  return {};
}

}  // namespace

const char *
srtStreamIdModeName (SrtStreamId::Mode mode)
{
  switch (mode) {
    case SrtStreamId::Mode::Request: return "request";
    case SrtStreamId::Mode::Publish: return "publish";
    case SrtStreamId::Mode::Bidirectional: return "bidirectional";
  }
  return "?";
}

std::string
redactSrtStreamId (const std::string &text)
{
  if (text.compare (0, 2, "#!") != 0)
    return text;
  std::string out;
  size_t pos = 0;
  while (pos < text.size ()) {
    size_t comma = text.find (',', pos);
    if (comma == std::string::npos)
      comma = text.size ();
    std::string item = text.substr (pos, comma - pos);
    /* The first item carries the "#!::" prefix. */
    size_t keyStart = pos == 0 && item.compare (0, 4, kAccessControlPrefix) == 0 ? 4 : 0;
    size_t eq = item.find ('=');
    if (eq != std::string::npos && eq > keyStart) {
      std::string key = item.substr (keyStart, eq - keyStart);
      if (key == "s" || key == "t")
        item = item.substr (0, eq + 1) + "***";
    }
    out += item;
    if (comma < text.size ())
      out += ',';
    pos = comma + 1;
  }
  return out;
}

SrtStreamIdError
parseSrtStreamId (const std::string &text, SrtStreamId *out)
{
  using Kind = SrtStreamIdError::Kind;
  *out = SrtStreamId ();

  if (text.empty ())
    return fail (Kind::Malformed, "streamid is empty (expected #!::r=NAME,m=publish)");
  if (text.size () > kMaxSrtStreamIdLength)
    return fail (Kind::Malformed, "streamid is longer than 512 characters");
  if (hasControlCharacters (text))
    return fail (Kind::Malformed, "streamid contains control characters");

  /* Plain form: the whole streamid is the stream name. */
  if (text.compare (0, 2, "#!") != 0) {
    out->resource = text;
    out->mode = SrtStreamId::Mode::Publish;
    return checkResource (text);
  }

  if (text.compare (0, 4, kAccessControlPrefix) != 0)
    return fail (Kind::Malformed, "streamid starts with '#!' but not with '#!::' "
        "(nested {} syntax is not supported)");

  std::string content = text.substr (4);
  if (content.empty ())
    return fail (Kind::Malformed, "streamid has no keys after '#!::'");

  std::set<std::string> seen;
  bool haveMode = false;
  std::string type, session;
  size_t pos = 0;
  while (pos <= content.size ()) {
    size_t comma = content.find (',', pos);
    if (comma == std::string::npos)
      comma = content.size ();
    std::string pair = content.substr (pos, comma - pos);
    pos = comma + 1;

    size_t eq = pair.find ('=');
    if (pair.empty () || eq == std::string::npos || eq == 0)
      return fail (Kind::Malformed, "streamid item '" + pair + "' is not key=value");
    std::string key = pair.substr (0, eq);
    std::string value = pair.substr (eq + 1);
    if (!seen.insert (key).second)
      return fail (Kind::Malformed, "streamid key '" + key + "' appears twice");

    if (key == "r") {
      out->resource = value;
    } else if (key == "m") {
      haveMode = true;
      if (value == "publish")
        out->mode = SrtStreamId::Mode::Publish;
      else if (value == "request")
        out->mode = SrtStreamId::Mode::Request;
      else if (value == "bidirectional")
        out->mode = SrtStreamId::Mode::Bidirectional;
      else
        return fail (Kind::UnsupportedMode, "streamid mode m=" + value + " is unknown");
    } else if (key == "s") {
      session = value;
    } else if (key == "t") {
      type = value;
    } else if (key == "u") {
      out->user = value;
    } else if (key == "h") {
      out->host = value;
    }
    /* Other keys (user_*, company_*) are tolerated and ignored. */
  }

  if (out->resource.empty ())
    return fail (Kind::Malformed, "streamid has no r=NAME");
  if (SrtStreamIdError e = checkResource (out->resource))
    return e;

  if (type == "file" || type == "auth")
    return fail (Kind::UnsupportedType, "streamid type t=" + type + " is not served");
  if (!session.empty ())
    out->token = session;
  else if (!type.empty () && type != "stream")
    out->token = type;

  if (out->mode == SrtStreamId::Mode::Bidirectional) {
    return fail (Kind::UnsupportedMode, std::string ("streamid mode m=") +
        srtStreamIdModeName (out->mode) + (haveMode ? "" : " (the default)") +
        " is not served here; use m=publish or m=request");
  }
  return {};
}

}  // namespace xdn
