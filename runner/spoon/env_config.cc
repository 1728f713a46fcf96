#include "runner/spoon/env_config.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <utility>

#include "env/docker_client.h"
#include "runner/config/yaml_check.h"
#include "runner/config/yaml_file.h"
#include "runner/config/yaml_tree.h"

namespace ladle::runner::spoon {
namespace {

namespace fs = std::filesystem;
using Kind = YamlNode::Kind;
using Keys = std::vector<std::string_view>;

// An env.yml is a few dozen lines (docs/spoons.md "Profiles and env.yml").
const YamlFileRules kRules = [] {
  YamlFileRules rules;
  rules.empty_message = "the file is empty: no settings in it";
  rules.empty_is_warning = true;
  rules.limits = YamlLimits{256 * 1024, 32, 20000, 1 << 20};
  rules.max_visits = 20000;
  return rules;
}();

const Keys kTopKeys = {"default", "profiles"};
// The file's keys, in the order `ladle env config` prints them.
const Keys kSettingKeys = {"image",      "prefix",     "shell", "host", "ports",
                           "volumes",    "cpus",       "memory", "dns", "privileged",
                           "env",        "copy",       "run_on_create"};
const Keys kCopyKeys = {"from", "to"};

// A file key -> the SpoonSettings field (and origin key) it sets.
std::string FieldOf(std::string_view key) {
  return key == "host" ? "docker_host" : std::string(key);
}

bool AllOf(std::string_view s, std::string_view allowed) {
  return s.find_first_not_of(allowed) == std::string_view::npos;
}
constexpr std::string_view kDigits = "0123456789";
constexpr std::string_view kAlnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

bool IsVariableName(std::string_view s) {
  return !s.empty() && s.find_first_of(kDigits) != 0 &&
         AllOf(s, std::string(kAlnum) + "_");
}

bool IsProfileName(std::string_view s) {
  return !s.empty() && s.size() <= 64 && AllOf(s.substr(0, 1), kAlnum) &&
         AllOf(s, std::string(kAlnum) + "._-");
}

bool IsPort(std::string_view s) {
  if (s.empty() || s.size() > 5 || !AllOf(s, kDigits)) return false;
  int n = std::atoi(std::string(s).c_str());
  return n >= 1 && n <= 65535;
}

// [[IP:]HOST:]CONTAINER[/tcp|/udp] (docs/spoons.md "Profiles and env.yml").
bool IsPortSpec(std::string_view s) {
  std::size_t slash = s.find('/');
  if (slash != std::string_view::npos) {
    std::string_view proto = s.substr(slash + 1);
    if (proto != "tcp" && proto != "udp") return false;
    s = s.substr(0, slash);
  }
  std::size_t last = s.rfind(':');
  if (last == std::string_view::npos) return IsPort(s);
  if (!IsPort(s.substr(last + 1))) return false;
  std::string_view rest = s.substr(0, last);
  std::size_t ip = rest.rfind(':');
  if (ip == std::string_view::npos) return IsPort(rest);
  std::string_view host_port = rest.substr(ip + 1);
  return (host_port.empty() || IsPort(host_port)) && ip > 0;
}

// "2g", "512m", "1.5G", "1073741824", "100kb".
bool IsMemory(std::string_view s) {
  if (s.empty() || s.size() > 24) return false;
  std::size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0 || std::count(s.begin(), s.begin() + i, '.') > 1) return false;
  std::string unit(s.substr(i));
  std::transform(unit.begin(), unit.end(), unit.begin(), ::tolower);
  return unit.empty() || unit == "b" || unit == "k" || unit == "m" || unit == "g" ||
         unit == "kb" || unit == "mb" || unit == "gb";
}

bool IsCpus(std::string_view s) {
  if (s.empty() || s.size() > 12) return false;
  std::size_t dot = s.find('.');
  std::string_view whole = s.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? "" : s.substr(dot + 1);
  if (!AllOf(whole, kDigits) || !AllOf(frac, kDigits) || (whole.empty() && frac.empty()))
    return false;
  return std::strtod(std::string(s).c_str(), nullptr) > 0;
}

bool IsPrefix(std::string_view s) {
  return s.size() <= 32 && (s.empty() || AllOf(s.substr(0, 1), kAlnum)) &&
         AllOf(s, std::string(kAlnum) + "_.-");
}

bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// The settings one map (a file's `default:` or one of its profiles) sets,
// with the origin of each.
struct Layer {
  SpoonSettings values;
  std::vector<std::string> given;  // field names, in file order
  std::map<std::string, std::string> origin;
};

struct SettingsFile {
  std::string path;
  bool exists = false;
  Layer defaults;
  std::map<std::string, Layer> profiles;
};

// Reads one env.yml against docs/spoons.md "Profiles and env.yml". Reading
// goes on after a problem so one pass reports them all.
class EnvFileReader {
 public:
  EnvFileReader(YamlChecker* checker, SettingsFile* file) : c_(*checker), file_(*file) {}

  void Read(const YamlNode& root) {
    if (root.kind != Kind::kMap) {
      c_.Error(root.location, "the top level must be a map with 'default' and 'profiles', got " +
                                  DescribeYaml(root));
      return;
    }
    YamlMap m = c_.Map(root, "at the top level", kTopKeys, YamlKeys::kKnownAndHidden);
    if (const YamlNode* v = m.Get("default"); v && v->kind != Kind::kNull)
      ReadLayer(*v, "'default'", "", &file_.defaults);
    if (const YamlNode* v = m.Get("profiles"); v && v->kind != Kind::kNull) ReadProfiles(*v);
  }

 private:
  void ReadProfiles(const YamlNode& node) {
    if (!c_.Expect(node, Kind::kMap, "'profiles'")) return;
    YamlMap m = c_.Map(node, "in 'profiles'", {}, YamlKeys::kAny);
    for (const YamlField& f : m.fields()) {
      if (!IsProfileName(f.key)) {
        c_.Error(f.key_node->location,
                 "profile name " + Quote(f.key) +
                     " must be letters, digits, '.', '_' and '-', starting with a letter or digit");
        continue;
      }
      Layer& layer = file_.profiles[f.key];
      if (f.value->kind == Kind::kNull) continue;  // an empty profile is allowed
      ReadLayer(*f.value, "profile " + Quote(f.key), " profile " + f.key, &layer);
    }
  }

  void ReadLayer(const YamlNode& node, const std::string& what, const std::string& suffix,
                 Layer* layer) {
    if (!c_.Expect(node, Kind::kMap, what)) return;
    suffix_ = suffix;
    YamlMap m = c_.Map(node, "in " + what, kSettingKeys);
    for (const YamlField& f : m.fields()) {
      std::string origin = file_.path + ":" + std::to_string(f.key_node->location.line) + suffix;
      std::string field = FieldOf(f.key);
      if (ReadValue(f, &layer->values, &layer->origin)) {
        layer->given.push_back(field);
        if (field != "env") layer->origin[field] = origin;
      }
    }
  }

  bool Text(const YamlNode& node, std::string_view what, std::string* out) {
    if (node.kind == Kind::kNull) {
      c_.Error(node.location, std::string(what) + " must be a string, got " + DescribeYaml(node));
      return false;
    }
    if (!c_.String(node, what, out)) return false;
    if (HasControl(*out)) {
      c_.Error(node.location, std::string(what) + " must not hold control characters");
      return false;
    }
    return true;
  }

  // A string checked by `valid`; `rule` says what it must be.
  bool Checked(const YamlNode& node, std::string_view what, std::string_view rule,
               bool (*valid)(std::string_view), std::string* out) {
    std::string value;
    if (!Text(node, what, &value)) return false;
    if (!valid(value)) {
      c_.Error(node.location, std::string(what) + " must be " + std::string(rule) + ", got " +
                                  Quote(value));
      return false;
    }
    *out = value;
    return true;
  }

  bool List(const YamlNode& node, std::string_view what, std::string_view rule,
            bool (*valid)(std::string_view), std::vector<std::string>* out) {
    std::vector<const YamlNode*> items;
    if (node.kind == Kind::kNull) {  // `ports:` with nothing: an empty list, replacing below
      out->clear();
      return true;
    }
    if (!c_.Items(node, what, true, &items)) return false;
    std::vector<std::string> values;
    bool ok = true;
    std::string item_what = "each entry of " + std::string(what);
    for (const YamlNode* item : items) {
      std::string value;
      if (valid ? Checked(*item, item_what, rule, valid, &value) : Text(*item, item_what, &value))
        values.push_back(value);
      else
        ok = false;
    }
    if (ok) *out = std::move(values);
    return ok;
  }

  bool ReadValue(const YamlField& f, SpoonSettings* s,
                 std::map<std::string, std::string>* origins) {
    const YamlNode& v = *f.value;
    std::string what = Quote(f.key);
    const std::string& k = f.key;
    if (k == "image")
      return Checked(v, what, "an image reference", [](std::string_view x) { return !x.empty(); },
                     &s->image);
    if (k == "prefix")
      return Checked(v, what, "letters, digits, '_', '.' and '-' (at most 32), starting with a "
                              "letter or digit",
                     IsPrefix, &s->prefix);
    if (k == "shell")
      return Checked(v, what, "a command", [](std::string_view x) { return !x.empty(); },
                     &s->shell);
    if (k == "host") return ReadHost(v, what, &s->docker_host);
    if (k == "ports")
      return List(v, what, "[[IP:]HOST:]CONTAINER[/tcp|/udp] with ports 1-65535", IsPortSpec,
                  &s->ports);
    if (k == "volumes")
      return List(v, what, "HOST:CONTAINER[:ro] with an absolute CONTAINER path",
                  [](std::string_view x) {
                    std::size_t colon = x.find(':');
                    return colon != std::string_view::npos && colon > 0 &&
                           x.size() > colon + 1 && x[colon + 1] == '/';
                  },
                  &s->volumes);
    if (k == "cpus") return Checked(v, what, "a positive number like 1.5", IsCpus, &s->cpus);
    if (k == "memory")
      return Checked(v, what, "a size like 512m or 2g", IsMemory, &s->memory);
    if (k == "dns")
      return List(v, what, "an address", [](std::string_view x) { return !x.empty(); }, &s->dns);
    if (k == "privileged") return c_.Bool(v, what, &s->privileged);
    if (k == "env") return ReadEnv(v, s, origins);
    if (k == "copy") return ReadCopy(v, &s->copy);
    if (k == "run_on_create") return List(v, what, "", nullptr, &s->run_on_create);
    return false;
  }

  bool ReadHost(const YamlNode& v, std::string_view what, std::string* out) {
    std::string value;
    if (!Text(v, what, &value)) return false;
    env::DockerEndpoint endpoint;
    Status parsed = env::ParseDockerHost(value, &endpoint);
    if (!parsed.ok()) {
      c_.Error(v.location, std::string(what) + ": " + parsed.message());
      return false;
    }
    *out = value;
    return true;
  }

  // Each variable is its own origin ("env.NAME"): env merges by name.
  bool ReadEnv(const YamlNode& v, SpoonSettings* s,
               std::map<std::string, std::string>* origins) {
    if (!c_.Expect(v, Kind::kMap, "'env'")) return false;
    YamlMap m = c_.Map(v, "in 'env'", {}, YamlKeys::kAny);
    bool ok = true;
    for (const YamlField& f : m.fields()) {
      if (!IsVariableName(f.key)) {
        c_.Error(f.key_node->location, "variable name " + Quote(f.key) +
                                           " must be letters, digits and '_', not starting "
                                           "with a digit");
        ok = false;
        continue;
      }
      std::string value;
      if (f.value->kind == Kind::kNull) {
        value = "";
      } else if (!Text(*f.value, "variable " + Quote(f.key), &value)) {
        ok = false;
        continue;
      }
      s->env[f.key] = value;
      // The variable's own line rather than the 'env:' key's.
      std::string at =
          file_.path + ":" + std::to_string(f.key_node->location.line) + suffix_;
      (*origins)["env." + f.key] = at;
    }
    return ok;
  }

  bool ReadCopy(const YamlNode& v, std::vector<CopySpec>* out) {
    if (v.kind == Kind::kNull) {
      out->clear();
      return true;
    }
    std::vector<const YamlNode*> items;
    if (!c_.Items(v, "'copy'", false, &items)) return false;
    std::vector<CopySpec> copies;
    bool ok = true;
    for (const YamlNode* item : items) {
      CopySpec spec;
      if (item->kind == Kind::kMap) {
        YamlMap m = c_.Map(*item, "in an entry of 'copy'", kCopyKeys);
        const YamlNode* from = m.Get("from");
        const YamlNode* to = m.Get("to");
        if (!from || !to) {
          c_.Error(item->location, "each entry of 'copy' needs 'from' and 'to'");
          ok = false;
          continue;
        }
        if (!Text(*from, "'from'", &spec.from) || !Text(*to, "'to'", &spec.to) ||
            spec.from.empty() || spec.to.empty()) {
          if (spec.from.empty() || spec.to.empty())
            c_.Error(item->location, "'from' and 'to' of 'copy' must not be empty");
          ok = false;
          continue;
        }
      } else {
        std::string text;
        if (!Text(*item, "each entry of 'copy'", &text)) {
          ok = false;
          continue;
        }
        Status parsed = ParseCopySpec(text, &spec);
        if (!parsed.ok()) {
          c_.Error(item->location, parsed.message());
          ok = false;
          continue;
        }
      }
      copies.push_back(std::move(spec));
    }
    if (ok) *out = std::move(copies);
    return ok;
  }

  YamlChecker& c_;
  SettingsFile& file_;
  std::string suffix_;  // " profile P" while reading profile P
};

// Reads `path` when it exists; problems go to *diagnostics.
bool ReadSettingsFile(const std::string& path, SettingsFile* file,
                      std::vector<Diagnostic>* diagnostics) {
  file->path = path;
  std::error_code ec;
  if (path.empty() || !fs::exists(path, ec)) return true;
  file->exists = true;
  return LoadYamlFile(path, kRules,
                      [&](const YamlNode& root, YamlChecker* checker) {
                        EnvFileReader(checker, file).Read(root);
                      },
                      diagnostics);
}

// Sets the fields `layer` gives over *settings.
void Apply(const Layer& layer, SpoonSettings* s) {
  const SpoonSettings& v = layer.values;
  for (const std::string& field : layer.given) {
    if (field == "image") s->image = v.image;
    else if (field == "prefix") s->prefix = v.prefix;
    else if (field == "shell") s->shell = v.shell;
    else if (field == "docker_host") s->docker_host = v.docker_host;
    else if (field == "ports") s->ports = v.ports;
    else if (field == "volumes") s->volumes = v.volumes;
    else if (field == "cpus") s->cpus = v.cpus;
    else if (field == "memory") s->memory = v.memory;
    else if (field == "dns") s->dns = v.dns;
    else if (field == "privileged") s->privileged = v.privileged;
    else if (field == "copy") s->copy = v.copy;
    else if (field == "run_on_create") s->run_on_create = v.run_on_create;
    else if (field == "env")
      for (const auto& [name, value] : v.env) s->env[name] = value;
  }
  for (const auto& [field, origin] : layer.origin) s->origin[field] = origin;
}

// The command line as a layer.
Layer FlagsLayer(const SettingsSources& sources) {
  Layer layer;
  layer.values = sources.flags;
  for (std::string_view key : kSettingKeys) {
    std::string field = FieldOf(key);
    if (!sources.flags_given.count(field)) continue;
    layer.given.push_back(field);
    std::string flag;
    if (auto it = sources.flag_names.find(field); it != sources.flag_names.end()) {
      flag = it->second;
    } else {
      flag = field == "docker_host" ? "--host" : "--" + field;
      std::replace(flag.begin(), flag.end(), '_', '-');
    }
    if (field == "env") {
      for (const auto& entry : sources.flags.env) layer.origin["env." + entry.first] = flag;
    } else {
      layer.origin[field] = flag;
    }
  }
  return layer;
}

std::string Home(const SettingsSources& sources) {
  if (!sources.home.empty()) return sources.home;
  const char* home = std::getenv("HOME");
  return home ? home : "";
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::string YamlScalar(const std::string& s) {
  bool plain = !s.empty() && s.find_first_of("'\"{}[],&*!|>%@`\\") == std::string::npos &&
               s.find(": ") == std::string::npos && s.find(" #") == std::string::npos &&
               s.back() != ':' && s.front() != '#' &&
               s.front() != ' ' && s.back() != ' ' && s.front() != '-' && s.front() != '?' &&
               s != "true" && s != "false" && s != "null" && s != "~" && s != "yes" && s != "no";
  if (plain) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string UserSettingsFile(const SettingsSources& sources) {
  if (sources.home.empty()) {
    const char* xdg = std::getenv("XDG_CONFIG_HOME");
    if (xdg && *xdg == '/') return std::string(xdg) + "/ladle/env.yml";
  }
  std::string home = Home(sources);
  if (home.empty()) return "";
  return home + "/.config/ladle/env.yml";
}

std::string FindProjectSettingsFile(const SettingsSources& sources) {
  std::error_code ec;
  fs::path dir = sources.project_dir.empty() ? fs::current_path(ec) : fs::path(sources.project_dir);
  if (ec) return "";
  dir = fs::absolute(dir, ec).lexically_normal();
  if (ec) return "";
  if (dir.has_filename() == false && dir != dir.root_path()) dir = dir.parent_path();
  // Outside a git repository: the start folder only.
  bool in_git = false;
  for (fs::path d = dir;; d = d.parent_path()) {
    if (fs::exists(d / ".git", ec)) {
      in_git = true;
      break;
    }
    if (d == d.root_path() || d.empty()) break;
  }
  for (fs::path d = dir;; d = d.parent_path()) {
    fs::path candidate = d / ".ladle" / "env.yml";
    if (fs::exists(candidate, ec)) return candidate.string();
    if (!in_git || fs::exists(d / ".git", ec) || d == d.root_path() || d.empty()) break;
  }
  return "";
}

Status ParseCopySpec(const std::string& text, CopySpec* out) {
  std::size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    return Status::Invalid("a copy is FROM:TO (a host path, its path in the spoon), got " +
                           Quote(text));
  out->from = text.substr(0, colon);
  out->to = text.substr(colon + 1);
  return Status::OK();
}

Status LoadSpoonSettings(const SettingsSources& sources, SpoonSettings* settings,
                         SettingsReport* report) {
  *settings = SpoonSettings();
  for (std::string_view key : kSettingKeys) settings->origin[FieldOf(key)] = "built-in";

  std::string docker_host_env;
  if (sources.docker_host_env) {
    docker_host_env = *sources.docker_host_env;
  } else if (const char* v = std::getenv("DOCKER_HOST")) {
    docker_host_env = v;
  }
  if (!docker_host_env.empty()) {
    settings->docker_host = docker_host_env;
    settings->origin["docker_host"] = "$DOCKER_HOST";
  }

  SettingsFile files[2];
  std::vector<Diagnostic> diagnostics;
  bool ok = ReadSettingsFile(UserSettingsFile(sources), &files[0], &diagnostics);
  ok = ReadSettingsFile(FindProjectSettingsFile(sources), &files[1], &diagnostics) && ok;
  if (!ok) {
    std::string message = "invalid settings:";
    for (const Diagnostic& d : diagnostics)
      if (!d.warning) message += "\n  " + d.ToString();
    return Status::Invalid(message);
  }
  std::set<std::string> profile_names;
  for (const SettingsFile& file : files)
    for (const auto& entry : file.profiles) profile_names.insert(entry.first);
  if (report) {
    report->files_read.clear();
    for (const SettingsFile& file : files)
      if (file.exists) report->files_read.push_back(file.path);
    report->profiles.assign(profile_names.begin(), profile_names.end());
  }
  if (!sources.profile.empty() && !profile_names.count(sources.profile)) {
    std::vector<std::string> where;
    for (const SettingsFile& file : files)
      if (file.exists) where.push_back(file.path);
    std::string known = profile_names.empty()
                            ? "no profiles are defined"
                            : "the profiles are " + Join({profile_names.begin(),
                                                          profile_names.end()});
    return Status::Invalid("unknown profile " + Quote(sources.profile) + ": " + known +
                           (where.empty() ? " (no settings file exists: " +
                                                UserSettingsFile(sources) + ", .ladle/env.yml)"
                                          : " (in " + Join(where) + ")"));
  }

  for (const SettingsFile& file : files) Apply(file.defaults, settings);
  if (!sources.profile.empty()) {
    for (const SettingsFile& file : files)
      if (auto it = file.profiles.find(sources.profile); it != file.profiles.end())
        Apply(it->second, settings);
  }
  Apply(FlagsLayer(sources), settings);
  return Status::OK();
}

std::string FormatSpoonSettings(const SpoonSettings& s) {
  auto origin = [&](const std::string& field) {
    auto it = s.origin.find(field);
    return "  # " + (it == s.origin.end() ? std::string("built-in") : it->second);
  };
  auto scalar = [&](const char* key, const std::string& field, const std::string& value) {
    return std::string(key) + ": " + (value.empty() ? "\"\"" : YamlScalar(value)) + origin(field) +
           "\n";
  };
  auto list = [&](const char* key, const std::string& field,
                  const std::vector<std::string>& items) {
    std::string out = std::string(key) + ":" + (items.empty() ? " []" : "") + origin(field) + "\n";
    for (const std::string& item : items) out += "  - " + YamlScalar(item) + "\n";
    return out;
  };
  std::string out;
  out += scalar("image", "image", s.image);
  out += scalar("prefix", "prefix", s.prefix);
  out += scalar("shell", "shell", s.shell);
  out += scalar("host", "docker_host",
                s.docker_host.empty() ? std::string(env::kDefaultDockerHost) : s.docker_host);
  out += list("ports", "ports", s.ports);
  out += list("volumes", "volumes", s.volumes);
  out += scalar("cpus", "cpus", s.cpus);
  out += scalar("memory", "memory", s.memory);
  out += list("dns", "dns", s.dns);
  out += std::string("privileged: ") + (s.privileged ? "true" : "false") + origin("privileged") +
         "\n";
  if (s.env.empty()) {
    out += "env: {}" + origin("env") + "\n";
  } else {
    out += "env:\n";
    for (const auto& [name, value] : s.env)
      out += "  " + name + ": " + (value.empty() ? "\"\"" : YamlScalar(value)) +
             origin("env." + name) + "\n";
  }
  out += std::string("copy:") + (s.copy.empty() ? " []" : "") + origin("copy") + "\n";
  for (const CopySpec& c : s.copy)
    out += "  - {from: " + YamlScalar(c.from) + ", to: " + YamlScalar(c.to) + "}\n";
  out += list("run_on_create", "run_on_create", s.run_on_create);
  return out;
}

}  // namespace ladle::runner::spoon
