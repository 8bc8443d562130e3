/* Validation of everything the manager reads from the network: JSON bodies
 * (bounded nesting, typed members, numbers in range, unknown members
 * ignored), node ids, roles, regions and URLs. Errors are short sentences
 * for the {"error": ...} answer. */
#pragma once

#include "store.h"

#include <string>
#include <vector>

namespace xdn::manager {

constexpr size_t kMaxNodeIdLength = 64;
constexpr size_t kMaxUrlLength = 512;
constexpr size_t kMaxReportedStreams = 1000;
constexpr int kMaxJsonDepth = 16;

/* [A-Za-z0-9._-]{1,64} */
bool isValidNodeId (const std::string &id);
/* Empty, or the node id alphabet. */
bool isValidRegion (const std::string &region);
bool isValidRole (const std::string &role);
/* "" when @url is http(s)://host[:port][/path] (no user, query or fragment). */
std::string httpUrlError (const std::string &url);
/* "" when @url is srt://host:port. */
std::string srtUrlError (const std::string &url);

/* Compares in a time that does not depend on where they differ or on
 * their lengths. */
bool tokensEqual (const std::string &a, const std::string &b);

/* Nesting depth of a JSON text (brackets outside strings), without parsing. */
int jsonDepth (const std::string &text);

/* POST /api/v1/nodes */
bool parseRegistration (const std::string &body, NodeInfo *node, std::string *error);
/* POST /api/v1/nodes/{id}/heartbeat */
bool parseHeartbeat (const std::string &body, NodeLoad *load, std::vector<StreamReport> *streams,
    std::string *error);

}  // namespace xdn::manager
