/* Choosing a node among candidates: the rules of placement, apart from the
 * database so that they can be tested alone. The store gathers the
 * candidates inside its write transaction and calls these.
 *
 * Order of preference, each rule breaking the ties of the one before:
 *   1. a node with room (not at its capacity) before a full one;
 *   2. a node in the asked region (when one is asked) before any other;
 *   3. a preferred node (already carrying the stream) before the others;
 *   4. the lower load, then the lower secondary load;
 *   5. the smaller id (byte order), so that every manager picks the same. */
#pragma once

#include "store.h"

#include <string>
#include <vector>

namespace xdn::manager {

struct Candidate {
  const NodeRecord *node = nullptr;
  double load = 0;
  double secondary = 0;
  bool preferred = false;
  bool full = false;
};

/* nullptr when @candidates is empty. */
const NodeRecord *pickNode (const std::vector<Candidate> &candidates, const std::string &region);

/* Roles that may take each kind of placement. */
bool canOriginate (const std::string &role);  /* origin, all */
bool canServeViewers (const std::string &role);  /* edge, all */
bool isRelay (const std::string &role);

/* The URLs handed out for a placement. @name is a valid stream name. */
std::string whipUrl (const NodeInfo &node, const std::string &name);
std::string whepUrl (const NodeInfo &node, const std::string &name);
/* srt://host:port?streamid=#!::r=NAME,m=publish, or "" when the node has no SRT. */
std::string srtPublishUrl (const NodeInfo &node, const std::string &name);

}  // namespace xdn::manager
