// `ladle toggles ...`: the toggle service's command line, a thin client of its
// HTTP API (docs/toggles.md "Command line"). Every command is one or two requests; --json
// prints what the server answered, otherwise a table or one line.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "runner/cli/cli_commands.h"
#include "runner/cli/cli_remote.h"
#include "toggles/client/http_client.h"
#include "toggles/eval/model.h"
#include "toggles/server/tokens.h"

namespace ladle::runner {
namespace {

using json = nlohmann::json;
using toggles::EncodePathSegment;

// --- reading the server's JSON defensively (a field may be missing) ---

std::string Str(const json& j, const char* field) {
  if (!j.is_object()) return "";
  auto it = j.find(field);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string Num(const json& j, const char* field) {
  if (!j.is_object()) return "";
  auto it = j.find(field);
  return it != j.end() && it->is_number() ? it->dump() : "";
}

// A list answer: a JSON array, or an object holding one under `field`.
json AsArray(const json& j, const char* field) {
  if (j.is_array()) return j;
  if (j.is_object() && j.contains(field) && j[field].is_array()) return j[field];
  return json::array();
}

const json& Environment(const json& toggle, const std::string& env) {
  static const json kNull;
  if (!toggle.is_object() || !toggle.contains("environments")) return kNull;
  const json& envs = toggle["environments"];
  return envs.is_object() && envs.contains(env) ? envs[env] : kNull;
}

bool Enabled(const json& env_config) {
  return env_config.is_object() && env_config.value("enabled", false);
}

// "a,b,c" with at most three items, then "+N".
std::string ShortList(const json& values) {
  std::string out;
  size_t n = values.is_array() ? values.size() : 0;
  for (size_t i = 0; i < n && i < 3; ++i)
    out += (i ? "," : "") + (values[i].is_string() ? values[i].get<std::string>() : values[i].dump());
  if (n > 3) out += ",+" + std::to_string(n - 3);
  return out;
}

std::string SummarizeStrategy(const json& s) {
  std::vector<std::string> parts;
  if (s.contains("rollout")) {
    const json& r = s["rollout"];
    std::string part = "rollout " + Num(r, "percent") + "%";
    std::string by = Str(r, "stickiness");
    if (!by.empty() && by != toggles::kTargetingKey) part += " by " + by;
    parts.push_back(part);
  }
  if (s.contains("users")) parts.push_back("users " + ShortList(s["users"]));
  if (s.contains("constraints") && s["constraints"].is_array()) {
    for (const json& c : s["constraints"])
      parts.push_back(Str(c, "attribute") + " " + Str(c, "operator") + " " + ShortList(c["values"]));
  }
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : " & ") + p;
  return out;
}

// Display width of UTF-8 text: code points, not bytes.
size_t Width(const std::string& s) {
  size_t w = 0;
  for (unsigned char c : s) w += (c & 0xC0) != 0x80;
  return w;
}

}  // namespace

std::string SummarizeStrategies(const json& strategies) {
  if (!strategies.is_array() || strategies.empty()) return "-";
  std::string out;
  for (const json& s : strategies) out += (out.empty() ? "" : " | ") + SummarizeStrategy(s);
  return out;
}

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size());
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) widths[i] = std::max(widths[i], Width(row[i]));
  };
  measure(header);
  for (const auto& row : rows) measure(row);
  std::string out;
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - Width(row[i]) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  };
  print(header);
  for (const auto& row : rows) print(row);
  return out;
}

std::string FormatToggleTable(const json& toggles, const std::string& environment) {
  std::vector<std::vector<std::string>> rows;
  for (const json& t : toggles) {
    const json& env = Environment(t, environment);
    rows.push_back({Str(t, "key"), Str(t, "type"), Enabled(env) ? "on" : "off",
                    SummarizeStrategies(env.is_object() ? env.value("strategies", json()) : json()),
                    Num(t, "revision"), Str(t, "description")});
  }
  return FormatTable({"KEY", "TYPE", "ENABLED(" + environment + ")", "STRATEGIES", "REVISION",
                      "DESCRIPTION"},
                     rows);
}

namespace {

std::string ToggleTarget(const std::string& key) { return "/api/v1/toggles/" + EncodePathSegment(key); }

std::string EnvTarget(const TogglesFlags& f) {
  return ToggleTarget(f.key) + "/environments/" + EncodePathSegment(f.environment);
}

void PrintJson(const json& j) {
  if (!j.is_null()) std::printf("%s\n", j.dump(2).c_str());
}

// --- the commands: each returns the exit code ---

int List(const GlobalFlags& g, const TogglesFlags& f, Remote& remote) {
  json out;
  Status s = remote.Call("GET", "/api/v1/toggles?environment=" + EncodePathSegment(f.environment), nullptr, &out);
  if (!s.ok()) return Fail(s);
  json toggles = AsArray(out, "toggles");
  if (g.json) PrintJson(out);
  else if (toggles.empty()) std::printf("no toggles yet (create one with `ladle toggles create KEY`)\n");
  else std::printf("%s", FormatToggleTable(toggles, f.environment).c_str());
  return 0;
}

void PrintToggle(const json& t) {
  std::printf("key:          %s\ntype:         %s\ndescription:  %s\nrevision:     %s\n", Str(t, "key").c_str(),
              Str(t, "type").c_str(), Str(t, "description").c_str(), Num(t, "revision").c_str());
  if (t.contains("variants") && t["variants"].is_array() && !t["variants"].empty()) {
    std::printf("variants:\n");
    for (const json& v : t["variants"])
      std::printf("  %-20s %5s  %s\n", Str(v, "name").c_str(), Num(v, "weight").c_str(),
                  v.is_object() && v.contains("value") ? v["value"].dump().c_str() : "");
  }
  std::printf("environments:\n");
  std::vector<std::vector<std::string>> rows;
  if (t.contains("environments") && t["environments"].is_object())
    for (const auto& [name, env] : t["environments"].items())
      rows.push_back({"  " + name, Enabled(env) ? "on" : "off", SummarizeStrategies(env.value("strategies", json()))});
  std::string table = FormatTable({"  ENVIRONMENT", "ENABLED", "STRATEGIES"}, rows);
  std::printf("%s", table.c_str());
}

int Get(const GlobalFlags& g, const TogglesFlags& f, Remote& remote) {
  json out;
  Status s = remote.Call("GET", ToggleTarget(f.key), nullptr, &out);
  if (!s.ok()) return Fail(s);
  if (g.json) PrintJson(out);
  else PrintToggle(out);
  return 0;
}

int Create(const GlobalFlags& g, const TogglesFlags& f, Remote& remote) {
  Status s = toggles::ValidateKey(f.key);
  json body = {{"key", f.key}};
  if (!f.type.empty()) {
    toggles::ToggleType type;
    if (s.ok()) s = toggles::ParseToggleType(f.type, &type);
    body["type"] = f.type;
  }
  if (!f.description.empty()) body["description"] = f.description;
  json out;
  if (s.ok()) s = remote.Call("POST", "/api/v1/toggles", &body, &out);
  if (!s.ok()) return Fail(s);
  if (g.json) PrintJson(out);
  else std::printf("created toggle '%s' (%s), off in every environment (revision %s)\n", f.key.c_str(),
                   Str(out, "type").c_str(), Num(out, "revision").c_str());
  return 0;
}

int Flip(const GlobalFlags& g, const TogglesFlags& f, Remote& remote, bool on) {
  json out;
  Status s = remote.Call("POST", EnvTarget(f) + (on ? "/on" : "/off"), nullptr, &out);
  if (!s.ok()) return Fail(s);
  if (g.json) PrintJson(out);
  else std::printf("%s is %s in %s (revision %s)\n", f.key.c_str(), on ? "on" : "off", f.environment.c_str(),
                   Num(out, "revision").c_str());
  return 0;
}

Status ParsePercent(std::string text, int* out) {
  if (!text.empty() && text.back() == '%') text.pop_back();
  bool digits = !text.empty() && text.size() <= 3 && text.find_first_not_of("0123456789") == std::string::npos;
  if (!digits || std::stoi(text) > 100)
    return Status::Invalid("PERCENT: must be a whole number from 0 to 100, got \"" + text + "\"");
  *out = std::stoi(text);
  return Status::OK();
}

// The strategies after `rollout P`, as ToggleStore::SetRollout makes them: a
// lone rollout strategy keeps its stickiness, group and constraints (users
// keep their buckets as the percentage grows); anything else is replaced.
json RolloutStrategies(const json& current, int percent) {
  if (current.is_array() && current.size() == 1 && current[0].is_object() && current[0].contains("rollout")) {
    json next = current;
    next[0]["rollout"]["percent"] = percent;
    return next;
  }
  return json::array({{{"rollout", {{"percent", percent}}}}});
}

// GET, then PUT with If-Match, so that a concurrent change is not lost.
Status SetRollout(const TogglesFlags& f, int percent, Remote& remote, json* out) {
  Status s;
  for (int attempt = 0; attempt < 3; ++attempt) {
    json toggle;
    toggles::ClientResponse got;
    s = remote.Call("GET", ToggleTarget(f.key), nullptr, &toggle, &got);
    if (!s.ok()) return s;
    const json& env = Environment(toggle, f.environment);
    json body = {{"enabled", true},
                 {"strategies", RolloutStrategies(env.is_object() ? env.value("strategies", json()) : json(), percent)}};
    std::string match = !got.etag.empty() ? got.etag : Num(toggle, "revision");
    s = remote.Call("PUT", EnvTarget(f), &body, out, nullptr, {{"If-Match", match}});
    if (s.code() != Code::kPrecondition) return s;
  }
  return s.WithContext("the toggle kept changing; try again");
}

int Rollout(const GlobalFlags& g, const TogglesFlags& f, Remote& remote) {
  int percent = 0;
  json out;
  Status s = ParsePercent(f.percent, &percent);
  if (s.ok()) s = SetRollout(f, percent, remote, &out);
  if (!s.ok()) return Fail(s);
  if (g.json) PrintJson(out);
  else std::printf("%s: rollout %d%% in %s, enabled (revision %s)\n", f.key.c_str(), percent,
                   f.environment.c_str(), Num(out, "revision").c_str());
  return 0;
}

int Delete(const GlobalFlags& g, const TogglesFlags& f, Remote& remote) {
  json out;
  Status s = remote.Call("DELETE", ToggleTarget(f.key), nullptr, &out);
  if (!s.ok()) return Fail(s);
  if (g.json) PrintJson(out);
  else std::printf("deleted toggle '%s' (its history stays: `ladle toggles history %s`)\n", f.key.c_str(),
                   f.key.c_str());
  return 0;
}

// What an audit event did, in a few words.
std::string Change(const json& e) {
  const json& after = e.is_object() ? e.value("after", json()) : json();
  const json& before = e.is_object() ? e.value("before", json()) : json();
  std::string env = Str(e, "environment");
  std::string out;
  if (!env.empty() && after.is_object()) {
    const json& c = Environment(after, env);
    std::string strategies = SummarizeStrategies(c.is_object() ? c.value("strategies", json()) : json());
    out = !Enabled(c) ? "off" : strategies == "-" ? "on" : "on: " + strategies;
  } else if (before.is_object() && after.is_object()) {
    for (const char* field : {"type", "description", "variants"})
      if (before.value(field, json()) != after.value(field, json())) out += (out.empty() ? "" : ", ") + std::string(field);
  } else if (after.is_object()) {
    out = Str(after, "type");
  }
  std::string note = Str(e, "note");
  return note.empty() ? out : out + " (" + note + ")";
}

// The whole trail: the server answers a page at a time (docs/toggles.md
// "Pages of the audit trail"), so this follows `next` until the last page.
int History(const GlobalFlags& g, const TogglesFlags& f, Remote& remote) {
  std::string target = (f.key.empty() ? "/api/v1/events" : ToggleTarget(f.key) + "/history") + "?limit=1000";
  json events = json::array();
  json last;
  while (!target.empty()) {
    Status s = remote.Call("GET", target, nullptr, &last);
    if (!s.ok()) return Fail(s);
    for (const json& e : AsArray(last, "events")) events.push_back(e);
    const json next = last.is_object() ? last.value("next", json()) : json();
    std::string following = next.is_string() ? next.get<std::string>() : "";
    if (following == target) break;  // a server that does not move on
    target = following;
  }
  if (g.json) {
    json out = {{"events", std::move(events)}};
    if (last.is_object() && last.contains("revision")) out["revision"] = last["revision"];
    PrintJson(out);
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const json& e : events)
    rows.push_back({Num(e, "revision"), Str(e, "time"), Str(e, "actor"), Str(e, "action"), Str(e, "key"),
                    Str(e, "environment").empty() ? "-" : Str(e, "environment"), Change(e)});
  std::printf("%s", FormatTable({"REVISION", "TIME", "ACTOR", "ACTION", "KEY", "ENVIRONMENT", "CHANGE"}, rows).c_str());
  return 0;
}

int TokenCreate(const GlobalFlags& g, const TogglesFlags& f, Remote& remote) {
  json body = {{"name", f.name}, {"role", f.role}};
  if (f.role == "client") body["environment"] = f.environment;
  else if (f.environment_given)
    return Fail(Status::Invalid("--environment: an admin token works in every environment; only a client token takes one"));
  json out;
  Status s = remote.Call("POST", "/api/v1/tokens", &body, &out);
  if (!s.ok()) return Fail(s);
  if (g.json) {
    PrintJson(out);
    return 0;
  }
  std::string secret = !Str(out, "secret").empty() ? Str(out, "secret") : Str(out, "token");
  if (secret.empty()) return Fail(Status::Unavailable("the server created token '" + f.name + "' but sent no secret"));
  std::fprintf(stderr, "created %s token '%s'%s; its secret is shown this once:\n", f.role.c_str(), f.name.c_str(),
               f.role == "client" ? (" for " + f.environment).c_str() : "");
  std::printf("%s\n", secret.c_str());
  return 0;
}

int TokenList(const GlobalFlags& g, Remote& remote) {
  json out;
  Status s = remote.Call("GET", "/api/v1/tokens", nullptr, &out);
  if (!s.ok()) return Fail(s);
  if (g.json) {
    PrintJson(out);
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const json& t : AsArray(out, "tokens")) {
    std::string env = Str(t, "environment"), used = Str(t, "last_used_at");
    rows.push_back({Str(t, "name"), Str(t, "role"), env.empty() ? "-" : env, Str(t, "created_at"),
                    used.empty() ? "never" : used, t.is_object() && t.value("revoked", false) ? "revoked" : "active"});
  }
  std::printf("%s", FormatTable({"NAME", "ROLE", "ENVIRONMENT", "CREATED", "LAST USED", "STATUS"}, rows).c_str());
  return 0;
}

int TokenRevoke(const GlobalFlags& g, const TogglesFlags& f, Remote& remote) {
  json out;
  Status s = remote.Call("DELETE", "/api/v1/tokens/" + EncodePathSegment(f.name), nullptr, &out);
  if (!s.ok()) return Fail(s);
  if (g.json) PrintJson(out);
  else std::printf("revoked token '%s'\n", f.name.c_str());
  return 0;
}

// --- registration ---

CLI::App* Leaf(CLI::App* parent, const std::string& name, const std::string& help, TogglesFlags* f,
               const std::string& command) {
  CLI::App* sub = parent->add_subcommand(name, help);
  sub->fallthrough();  // -e, --server, --token, --json after the command name
  sub->callback([f, command] { f->command = command; });
  return sub;
}

void AddTokenCommands(CLI::App* toggles, TogglesFlags* f) {
  CLI::App* token = toggles->add_subcommand("token", "API tokens: create, list, revoke");
  token->fallthrough();
  token->require_subcommand(1);
  CLI::App* create = Leaf(token, "create", "Create a token; prints its secret, once", f, "token create");
  create->add_option("name", f->name, "Token name (the audit trail's actor)")->required();
  create->add_option("--role", f->role, "admin or client")->required()->check(CLI::IsMember({"admin", "client"}));
  Leaf(token, "list", "List tokens (never their secrets)", f, "token list");
  Leaf(token, "revoke", "Revoke a token by name", f, "token revoke")
      ->add_option("name", f->name, "Token name")->required();
}

}  // namespace

CLI::App* AddTogglesCommands(CLI::App& app, TogglesFlags* f) {
  CLI::App* t = app.add_subcommand("toggles", "Feature toggles on a ladle toggle server");
  t->require_subcommand(1);
  t->add_option("-e,--environment", f->environment, "Environment (default production)")
      ->each([f](const std::string&) { f->environment_given = true; });
  t->add_option("--server", f->server, "Server URL (default $LADLE_SERVER, else http://127.0.0.1:7707)");
  t->add_option("--token", f->token, "API token (default $LADLE_TOKEN, else DATA/admin.token)");
  // `ladle toggles serve` (the toggle service alone) is the server side's:
  // runner/cli/cli.cc adds it to this subcommand and dispatches it to
  // CmdTogglesServe (runner/cli/cli_toggles_serve.cc) before CmdToggles.
  Leaf(t, "list", "Toggles and their state in one environment", f, "list");
  Leaf(t, "get", "One toggle in every environment", f, "get")->add_option("key", f->key, "Toggle key")->required();
  CLI::App* create = Leaf(t, "create", "Create a toggle, off in every environment", f, "create");
  create->add_option("key", f->key, "Toggle key")->required();
  create->add_option("--type", f->type, "release, experiment, ops, kill-switch, permission, dark-launch");
  create->add_option("--description", f->description, "What it is for");
  Leaf(t, "on", "Switch a toggle on (for everyone its strategies select)", f, "on")
      ->add_option("key", f->key, "Toggle key")->required();
  Leaf(t, "off", "Switch a toggle off", f, "off")->add_option("key", f->key, "Toggle key")->required();
  CLI::App* rollout = Leaf(t, "rollout", "Roll out to PERCENT of users, and enable", f, "rollout");
  rollout->add_option("key", f->key, "Toggle key")->required();
  rollout->add_option("percent", f->percent, "0 to 100")->required();
  Leaf(t, "delete", "Delete a toggle (its history stays)", f, "delete")
      ->add_option("key", f->key, "Toggle key")->required();
  Leaf(t, "history", "Audit trail of one toggle, or of all", f, "history")
      ->add_option("key", f->key, "Toggle key");
  AddTokenCommands(t, f);
  return t;
}

int CmdToggles(const GlobalFlags& g, const TogglesFlags& f) {
  Remote remote;
  Status s = remote.Open(g, f.server, f.token);
  if (!s.ok()) return Fail(s);
  if (f.command == "list") return List(g, f, remote);
  if (f.command == "get") return Get(g, f, remote);
  if (f.command == "create") return Create(g, f, remote);
  if (f.command == "on" || f.command == "off") return Flip(g, f, remote, f.command == "on");
  if (f.command == "rollout") return Rollout(g, f, remote);
  if (f.command == "delete") return Delete(g, f, remote);
  if (f.command == "history") return History(g, f, remote);
  if (f.command == "token create") return TokenCreate(g, f, remote);
  if (f.command == "token list") return TokenList(g, remote);
  if (f.command == "token revoke") return TokenRevoke(g, f, remote);
  return Fail(Status::Invalid("toggles: unknown command '" + f.command + "'"));
}

}  // namespace ladle::runner
