/* The SRT streamid of a caller: which stream it publishes or asks for,
 * and with which credentials.
 *
 * Two forms are understood:
 *
 *   - the access-control form of the SRT specification,
 *       #!::r=live/race-7,m=publish,s=TOKEN
 *     comma-separated key=value pairs after the `#!::` prefix. Keys:
 *       r  stream name (required)
 *       m  mode: `publish` (a publisher) or `request` (the default when
 *          m is absent: a downstream node pulling the stream); whether
 *          the node serves the mode is up to the server (srt-ingest.h);
 *          `bidirectional` is refused here
 *       s  session id, taken as the publish token
 *       t  type: `stream` (the default); `file` and `auth` are not served;
 *          any other value is taken as the publish token (`t=TOKEN`)
 *       u  user name, h  host name: kept, not interpreted
 *     Other keys (`user_*`, `company_*`) are ignored.
 *
 *   - a plain stream name (`live/race-7`): publish to that name, no token.
 *
 * Parsing knows nothing of sockets; the ingest server maps a ParseError to
 * an SRT rejection code. */
#pragma once

#include <string>

namespace xdn {

/* The longest streamid libsrt carries. */
constexpr size_t kMaxSrtStreamIdLength = 512;

struct SrtStreamId {
  enum class Mode { Request, Publish, Bidirectional };

  std::string resource;     /* r: the stream name, already validated */
  Mode mode = Mode::Request;
  std::string token;        /* s, or t when it is not a standard type */
  std::string user;         /* u */
  std::string host;         /* h */
};

struct SrtStreamIdError {
  enum class Kind {
    None,
    Malformed,        /* syntax, missing r, invalid stream name: 1400 */
    UnsupportedMode,  /* m=bidirectional or unknown: 1405 */
    UnsupportedType,  /* t=file or t=auth: 1415 */
  };
  Kind kind = Kind::None;
  std::string reason;   /* says what is wrong, for the log line */

  explicit operator bool () const { return kind != Kind::None; }
};

/* Parses @text into @out. Returns an error (false-y when the streamid is
 * acceptable: m=publish or m=request). @out is filled as far as parsing got, so the
 * log line of a refusal can still name the resource. */
SrtStreamIdError parseSrtStreamId (const std::string &text, SrtStreamId *out);

const char *srtStreamIdModeName (SrtStreamId::Mode mode);

/* @text with the values of the keys that may carry a token (s, t) replaced
 * by `***`, for log lines. */
std::string redactSrtStreamId (const std::string &text);

}  // namespace xdn
