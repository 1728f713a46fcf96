#include "runner/config/stage_needs.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

namespace ladle::runner {
namespace {

struct Node {
  std::size_t stage, step;
  bool operator<(const Node& o) const { return std::tie(stage, step) < std::tie(o.stage, o.step); }
  bool operator==(const Node& o) const { return stage == o.stage && step == o.step; }
};

struct Edge {
  Node to;
  Location at;  // where the entry is written
};

std::string Address(const Pipeline& p, Node n) {
  return p.stages[n.stage].name + "/" + p.stages[n.stage].steps[n.step].name;
}

// Every step's resolved needs, in both directions, for the cycle search.
using Graph = std::map<Node, std::vector<Edge>>;

// Depth-first search without recursion; reports each cycle that spans more
// than one stage (a cycle inside one stage is CheckCycles' to report),
// starting from its first step in pipeline order.
void ReportCyclesAcrossStages(const Pipeline& p, const Graph& graph, YamlChecker* c) {
  enum Color { kWhite, kGrey, kBlack };
  std::map<Node, Color> color;
  for (const auto& [start, edges] : graph) {
    if (color[start] != kWhite) continue;
    std::vector<std::pair<Node, std::size_t>> path = {{start, 0}};
    color[start] = kGrey;
    while (!path.empty()) {
      auto& [node, edge] = path.back();
      auto it = graph.find(node);
      const std::size_t size = it == graph.end() ? 0 : it->second.size();
      if (edge == size) {
        color[node] = kBlack;
        path.pop_back();
        continue;
      }
      const Node next = it->second[edge++].to;
      if (color[next] == kWhite) {
        color[next] = kGrey;
        path.emplace_back(next, 0);
      } else if (color[next] == kGrey) {
        auto from = std::find_if(path.begin(), path.end(),
                                 [&](const auto& e) { return e.first == next; });
        std::vector<std::pair<Node, std::size_t>> cycle(from, path.end());
        bool across = std::any_of(cycle.begin(), cycle.end(),
                                  [&](const auto& e) { return e.first.stage != next.stage; });
        if (!across) continue;
        std::rotate(cycle.begin(),
                    std::min_element(cycle.begin(), cycle.end(),
                                     [](const auto& a, const auto& b) { return a.first < b.first; }),
                    cycle.end());
        std::string text;
        for (const auto& e : cycle) text += Address(p, e.first) + " -> ";
        const Location at = graph.at(cycle[0].first)[cycle[0].second - 1].at;
        c->Error(at, "'needs' cycle across stages: " + text + Address(p, cycle[0].first));
      }
    }
  }
}

}  // namespace

std::pair<std::string, std::string> SplitNeed(const std::string& need) {
  auto slash = need.find('/');
  if (slash == std::string::npos) return {"", need};
  return {need.substr(0, slash), need.substr(slash + 1)};
}

void NormalizeOwnStageNeeds(Stage* stage) {
  if (stage->name.empty()) return;
  for (Step& step : stage->steps)
    for (std::string& need : step.needs)
      if (SplitNeed(need).first == stage->name) need = SplitNeed(need).second;
}

void CheckNeedsAcrossStages(const Pipeline& p, const NeedsLocations& at, YamlChecker* c) {
  std::map<std::string, std::size_t> stage_index;
  std::vector<std::string_view> stage_names;
  for (std::size_t i = 0; i < p.stages.size(); ++i) {
    if (p.stages[i].name.empty()) continue;
    stage_index.emplace(p.stages[i].name, i);
    stage_names.push_back(p.stages[i].name);
  }
  auto find_step = [&](std::size_t stage, const std::string& name) -> std::optional<std::size_t> {
    const auto& steps = p.stages[stage].steps;
    for (std::size_t k = 0; k < steps.size(); ++k)
      if (!steps[k].name.empty() && steps[k].name == name) return k;
    return std::nullopt;
  };
  Graph graph;
  bool forward = false;
  for (std::size_t i = 0; i < p.stages.size() && i < at.size(); ++i) {
    const Stage& stage = p.stages[i];
    for (std::size_t j = 0; j < stage.steps.size() && j < at[i].size(); ++j) {
      const Step& step = stage.steps[j];
      const std::string who = "step " + Quote(step.name) + " of stage " + Quote(stage.name);
      std::set<std::string> seen;
      for (std::size_t k = 0; k < step.needs.size() && k < at[i][j].size(); ++k) {
        const Location where = at[i][j][k];
        auto [other, name] = SplitNeed(step.needs[k]);
        if (other.empty()) {  // its own stage: CheckNeeds reports problems
          if (auto target = find_step(i, name); target && *target != j)
            graph[{i, j}].push_back({{i, *target}, where});
          continue;
        }
        auto s = stage_index.find(other);
        if (s == stage_index.end()) {
          c->Error(where, who + " needs " + Quote(step.needs[k]) + ", but there is no stage " +
                              Quote(other) + DidYouMean(other, stage_names));
          continue;
        }
        auto target = find_step(s->second, name);
        if (!target) {
          std::vector<std::string_view> names;
          for (const Step& st : p.stages[s->second].steps) names.push_back(st.name);
          c->Error(where, who + " needs " + Quote(step.needs[k]) + ", but stage " + Quote(other) +
                              " has no step " + Quote(name) + DidYouMean(name, names));
          continue;
        }
        if (!seen.insert(step.needs[k]).second) {
          c->Error(where, who + " lists " + Quote(step.needs[k]) + " twice in 'needs'");
          continue;
        }
        if (s->second > i) {
          forward = true;
          c->Error(where, who + " needs " + Quote(step.needs[k]) +
                              ", a step of a later stage: stages run in order, so a step can "
                              "need only steps of its own or earlier stages");
        }
        graph[{i, j}].push_back({{s->second, *target}, where});
      }
    }
  }
  // Needs of earlier stages alone cannot close a cycle across stages.
  if (forward) ReportCyclesAcrossStages(p, graph, c);
}

}  // namespace ladle::runner
