#include "placement.h"

#include <tuple>

namespace xdn::manager {

const NodeRecord *
pickNode (const std::vector<Candidate> &candidates, const std::string &region)
{
  const Candidate *best = nullptr;
  auto key = [&] (const Candidate &c) {
    bool outside = !region.empty () && c.node->info.region != region;
    return std::make_tuple (c.full, outside, !c.preferred, c.load, c.secondary);
  };
  for (const auto &c : candidates) {
    if (!c.node)
      continue;
    if (!best) {
      best = &c;
      continue;
    }
    auto a = key (c), b = key (*best);
    if (a < b || (a == b && c.node->info.id < best->node->info.id))
      best = &c;
  }
  return best ? best->node : nullptr;
}

bool
canOriginate (const std::string &role)
{
  return role == "origin" || role == "all";
}

bool
canServeViewers (const std::string &role)
{
  return role == "edge" || role == "all";
}

bool
isRelay (const std::string &role)
{
  return role == "relay";
}

namespace {

std::string
withoutTrailingSlash (std::string url)
{
  while (!url.empty () && url.back () == '/')
    url.pop_back ();
  return url;
}

}  // namespace

std::string
whipUrl (const NodeInfo &node, const std::string &name)
{
  return withoutTrailingSlash (node.http) + "/whip/" + name;
}

std::string
whepUrl (const NodeInfo &node, const std::string &name)
{
  return withoutTrailingSlash (node.http) + "/whep/" + name;
}

std::string
srtPublishUrl (const NodeInfo &node, const std::string &name)
{
  if (node.srt.empty ())
    return "";
  return withoutTrailingSlash (node.srt) + "?streamid=#!::r=" + name + ",m=publish";
}

}  // namespace xdn::manager
