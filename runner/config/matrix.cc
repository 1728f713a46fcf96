#include "runner/config/matrix.h"

#include <map>
#include <set>
#include <utility>

namespace ladle::runner {
namespace {

using Kind = YamlNode::Kind;

// Variable names as docs/pipeline.md "Values" says: what a shell accepts.
bool IsMatrixVariable(const std::string& s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s)
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return false;
  return true;
}

// Reads one variable's list of values; false (reported) when it has a problem.
bool ReadValues(const YamlField& field, YamlChecker* c, std::vector<std::string>* values) {
  const std::string what = "'matrix." + field.key + "'";
  std::vector<const YamlNode*> items;
  if (!c->Items(*field.value, what, false, &items)) return false;
  if (items.empty()) {
    c->Error(field.value->location, what + " must list at least one value");
    return false;
  }
  bool ok = true;
  std::set<std::string> seen;
  for (const YamlNode* item : items) {
    std::string value;
    if (!c->String(*item, what + " entries", &value)) {
      ok = false;
    } else if (value.empty()) {
      c->Error(item->location, what + " entries must not be empty");
      ok = false;
    } else if (!seen.insert(value).second) {
      c->Error(item->location, what + " lists " + Quote(value) + " twice");
      ok = false;
    } else {
      values->push_back(value);
    }
  }
  return ok;
}

char IdChar(char c) {
  bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_';
  return keep ? c : '_';
}

}  // namespace

std::string Step::DisplayName() const {
  if (matrix_of.empty()) return name;
  std::string out = matrix_of + " [";
  for (std::size_t i = 0; i < matrix_values.size(); ++i)
    out += (i ? ", " : "") + matrix_values[i].first + "=" + matrix_values[i].second;
  return out + "]";
}

void ReadMatrix(const YamlNode& node, const std::string& label, YamlChecker* c, Step* step) {
  step->matrix.clear();
  step->matrix_location = node.location;
  if (!c->Expect(node, Kind::kMap, "'matrix'")) return;
  YamlMap m = c->Map(node, "", {}, YamlKeys::kAny);
  if (m.fields().empty()) {
    c->Error(node.location, "'matrix' of " + label + " must list at least one variable");
    return;
  }
  bool ok = true;
  std::vector<std::pair<std::string, std::vector<std::string>>> matrix;
  for (const YamlField& field : m.fields()) {
    std::vector<std::string> values;
    if (!IsMatrixVariable(field.key)) {
      c->Error(field.key_node->location,
               "invalid variable name " + Quote(field.key) +
                   " in 'matrix': use letters, digits and '_', not starting with a digit");
      ok = false;
    } else if (!ReadValues(field, c, &values)) {
      ok = false;
    } else {
      matrix.emplace_back(field.key, std::move(values));
    }
  }
  if (!ok) return;
  // Saturates: a product of many lists must not overflow.
  std::size_t combinations = 1;
  std::string factors;
  for (const auto& [name, values] : matrix) {
    combinations = std::min<std::size_t>(combinations * values.size(), 1000000);
    factors += (factors.empty() ? "" : " x ") + std::to_string(values.size());
  }
  if (combinations > kMaxMatrixCombinations) {
    c->Error(node.location, "'matrix' of " + label + " makes " +
                                (combinations >= 1000000 ? "over a million"
                                                         : std::to_string(combinations)) +
                                " combinations (" + factors + "); at most " +
                                std::to_string(kMaxMatrixCombinations));
    return;
  }
  step->matrix = std::move(matrix);
}

std::vector<Vars> MatrixCombinations(
    const std::vector<std::pair<std::string, std::vector<std::string>>>& matrix) {
  std::vector<Vars> out = {Vars()};
  for (const auto& [name, values] : matrix) {
    std::vector<Vars> next;
    for (const Vars& prefix : out)
      for (const std::string& value : values) {
        Vars combination = prefix;
        combination.emplace_back(name, value);
        next.push_back(std::move(combination));
      }
    out = std::move(next);
  }
  return out;
}

std::vector<std::string> MatrixStepIds(const std::string& name,
                                       const std::vector<Vars>& combinations) {
  std::vector<std::string> ids;
  std::set<std::string> seen;
  bool numbered = false;
  for (const Vars& combination : combinations) {
    std::string values;
    for (const auto& [key, value] : combination) {
      if (!values.empty()) values += '-';
      for (char ch : value) values += IdChar(ch);
    }
    numbered |= values.size() > kMaxMatrixIdValues || !seen.insert(values).second;
    ids.push_back(name + "." + values);
  }
  if (numbered)
    for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = name + "." + std::to_string(i + 1);
  return ids;
}

void ExpandMatrices(Pipeline* pipeline, YamlChecker* checker) {
  // (stage, step as written) -> the ids of its combinations.
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> expanded;
  std::size_t total = 0;
  bool reported = false;
  for (Stage& stage : pipeline->stages) {
    std::vector<Step> steps;
    for (Step& step : stage.steps) {
      if (step.matrix.empty()) {
        steps.push_back(std::move(step));
        continue;
      }
      std::vector<Vars> combinations = MatrixCombinations(step.matrix);
      total += combinations.size();
      if (total > kMaxMatrixStepsPerPipeline && !reported) {
        reported = true;
        checker->Error(step.matrix_location,
                       "the matrices of this pipeline make more than " +
                           std::to_string(kMaxMatrixStepsPerPipeline) + " steps");
      }
      if (reported) continue;
      std::vector<std::string> ids = MatrixStepIds(step.name, combinations);
      expanded[{stage.name, step.name}] = ids;
      for (std::size_t i = 0; i < combinations.size(); ++i) {
        Step one = step;
        one.matrix.clear();
        one.name = ids[i];
        one.matrix_of = step.name;
        one.matrix_values = combinations[i];
        // The matrix's values win over the step's own `env` of the same name.
        for (const auto& [key, value] : combinations[i]) {
          bool replaced = false;
          for (auto& var : one.env)
            if (var.first == key) var.second = value, replaced = true;
          if (!replaced) one.env.emplace_back(key, value);
        }
        steps.push_back(std::move(one));
      }
    }
    stage.steps = std::move(steps);
  }
  if (expanded.empty()) return;
  for (Stage& stage : pipeline->stages) {
    for (Step& step : stage.steps) {
      std::vector<std::string> needs;
      for (const std::string& need : step.needs) {
        auto [other, name] = SplitNeed(need);
        auto it = expanded.find({other.empty() ? stage.name : other, name});
        if (it == expanded.end()) {
          needs.push_back(need);
          continue;
        }
        for (const std::string& id : it->second) needs.push_back(other.empty() ? id : other + "/" + id);
      }
      step.needs = std::move(needs);
    }
  }
}

}  // namespace ladle::runner
