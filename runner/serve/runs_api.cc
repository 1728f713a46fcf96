#include "runner/serve/runs_api.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <thread>
#include <utility>

#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "core/base/text.h"
#include "runner/exec/executor.h"
#include "runner/serve/replica_proxy.h"
#include "runner/store/step_log.h"
#include "toggles/server/auth.h"

namespace ladle::runner {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

constexpr int kDefaultLimit = 50;
constexpr int kMaxLimit = 500;
constexpr std::string_view kTextType = "text/plain; charset=utf-8";
constexpr std::string_view kNdjsonType = "application/x-ndjson";

bool IsStatus(std::string_view s) {
  RunStatus status;
  return ParseRunStatus(s, &status);
}

// A step whose log may still grow.
bool StepActive(RunStatus status) { return status == kQueued || status == kRunning; }
bool RunActive(RunStatus status) {
  return status == kQueued || status == kRunning || status == kWaiting;
}

bool ParsePositive(std::string_view text, int64_t* out) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v <= 0) return false;
  *out = v;
  return true;
}

HttpResponse BadRequest(const std::string& message) {
  return HttpResponse::Error(400, "bad_request", message);
}

// A positive integer query parameter (absent: *out unchanged), or a 400 naming it.
std::optional<HttpResponse> QueryNumber(const HttpRequest& r, std::string_view name,
                                        int64_t* out) {
  if (!r.query.Has(name)) return std::nullopt;
  if (ParsePositive(r.Query(name), out)) return std::nullopt;
  return BadRequest(std::string(name) + ": expected a positive integer, got '" +
                    std::string(r.Query(name)) + "'");
}

// `limit` (default 50, at most 500) and `before` of the list routes.
std::optional<HttpResponse> PageQuery(const HttpRequest& r, int* limit, int64_t* before) {
  int64_t n = kDefaultLimit;
  if (auto e = QueryNumber(r, "limit", &n)) return e;
  if (auto e = QueryNumber(r, "before", before)) return e;
  *limit = static_cast<int>(std::min<int64_t>(n, kMaxLimit));
  return std::nullopt;
}

std::optional<HttpResponse> RunIdParam(const HttpRequest& r, int64_t* id) {
  if (ParsePositive(r.Param("id"), id)) return std::nullopt;
  return BadRequest("run id: expected a positive integer, got '" + std::string(r.Param("id")) +
                    "'");
}

const StepRecord* FindStep(const RunRecord& run, std::string_view stage, std::string_view step,
                           std::string* missing) {
  for (const StageRecord& s : run.stages) {
    if (s.name != stage) continue;
    for (const StepRecord& t : s.steps) {
      if (t.name == step) return &t;
    }
    *missing = "run " + std::to_string(run.id) + " has no step '" + std::string(stage) + "/" +
               std::string(step) + "'";
    return nullptr;
  }
  *missing = "run " + std::to_string(run.id) + " has no stage '" + std::string(stage) + "'";
  return nullptr;
}

// One record as the log route sends it: the text, or a JSON line.
void AppendRecord(const LogRecord& record, bool as_json, std::string* out) {
  if (!as_json) {
    out->append(record.text);
    out->push_back('\n');
    return;
  }
  json line = {{"stream", record.stream == env::OutputStream::kStdout ? "stdout" : "stderr"},
               {"text", record.text}};
  out->append(line.dump(-1, ' ', false, json::error_handler_t::replace));
  out->push_back('\n');
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

}  // namespace

// ---- the follower thread ----

// Every log stream (followed, or a big log paged out) is a Log polled by one
// thread: each round it reads up to follow_chunk new bytes of each log whose
// client has room, and every follow_poll it reads the steps' statuses. A log
// ends once its step was seen finished and the file was then read to its end.
class RunsApi::Follower {
 public:
  struct Log {
    std::string path;
    int64_t run_id = 0;
    std::string stage, step;
    bool as_json = false;
    bool finished = false;  // the step was seen finished (or the log is not followed)
    uint64_t offset = 0;
    std::shared_ptr<StreamWriter> writer;  // set by Start
  };

  Follower(RunStore& store, const Options& options) : store_(store), options_(options) {}
  ~Follower() { Stop(); }

  void Add(std::shared_ptr<Log> log) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return log->writer->Close();
    logs_.push_back(std::move(log));
    if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
    kicked_ = true;
    cv_.notify_one();
  }

  // A stream drained or closed: look at it now rather than at the next poll.
  void Kick() {
    std::lock_guard<std::mutex> lock(mu_);
    kicked_ = true;
    cv_.notify_one();
  }

  // Ends every stream and joins the thread. Idempotent.
  void Stop() {
    std::vector<std::shared_ptr<Log>> ending;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopped_ = true;
      cv_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      ending.swap(logs_);
    }
    for (auto& log : ending) log->writer->Close();
  }

  size_t count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return logs_.size();
  }

 private:
  void Loop() {
    auto next_check = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopped_) {
      kicked_ = false;
      std::vector<std::shared_ptr<Log>> batch = logs_;
      auto now = std::chrono::steady_clock::now();
      bool check = now >= next_check;
      if (check) next_check = now + options_.follow_poll;
      lock.unlock();
      if (check) CheckSteps(batch);
      bool more = false;
      for (auto& log : batch) more = Pump(log.get()) || more;
      lock.lock();
      logs_.erase(std::remove_if(logs_.begin(), logs_.end(),
                                 [](const auto& log) { return log->writer->closed(); }),
                  logs_.end());
      auto wake = [this] { return stopped_ || kicked_; };
      if (logs_.empty()) cv_.wait(lock, wake);  // idle: no polling
      else if (!more) cv_.wait_until(lock, next_check, wake);
    }
  }

  // Reads the status of every followed step, one GetRun per run.
  void CheckSteps(const std::vector<std::shared_ptr<Log>>& batch) {
    std::map<int64_t, std::optional<RunRecord>> runs;
    for (const auto& log : batch) {
      if (log->finished) continue;
      auto it = runs.find(log->run_id);
      if (it == runs.end()) {
        RunRecord run;
        Status s = store_.GetRun(log->run_id, &run);
        if (s.code() == Code::kNotFound) run.status = kCancelled;  // pruned: nothing more comes
        it = runs.emplace(log->run_id, s.ok() || s.code() == Code::kNotFound
                                           ? std::optional<RunRecord>(std::move(run))
                                           : std::nullopt).first;
      }
      if (!it->second) continue;  // store busy: try again next poll
      std::string missing;
      const StepRecord* step = FindStep(*it->second, log->stage, log->step, &missing);
      log->finished = !RunActive(it->second->status) || !step || !StepActive(step->status);
    }
  }

  // Sends what the log has beyond the offset, up to a chunk, when the client
  // has room. Closes the stream when the log is complete. Returns whether
  // more could be read right away.
  bool Pump(Log* log) {
    if (log->writer->closed()) return false;
    if (log->writer->queued_bytes() >= options_.follow_chunk) return false;  // OnDrained kicks
    const uint64_t before = log->offset;
    std::vector<LogRecord> records;
    Status s = ReadLogRecords(log->path, &log->offset, &records, options_.follow_chunk);
    if (!records.empty()) {
      std::string data;
      for (const LogRecord& r : records) AppendRecord(r, log->as_json, &data);
      log->writer->Send(std::move(data));
    }
    bool at_end = log->offset == before;  // nothing new (or no file yet, or unreadable)
    if (at_end && log->finished) log->writer->Close();
    return !at_end && s.ok();
  }

  RunStore& store_;
  const Options options_;
  mutable std::mutex mu_;  // guards logs_, kicked_, stopped_, thread_
  std::condition_variable cv_;
  std::vector<std::shared_ptr<Log>> logs_;
  bool kicked_ = false;
  bool stopped_ = false;
  std::thread thread_;
};

namespace {

// The stream of one log response: hands its writer to the follower on Start.
class LogSource : public StreamSource {
 public:
  LogSource(std::weak_ptr<RunsApi::Follower> follower,
            std::shared_ptr<RunsApi::Follower::Log> log)
      : follower_(std::move(follower)), log_(std::move(log)) {}

  void Start(std::shared_ptr<StreamWriter> writer) override {
    log_->writer = writer;
    if (auto f = follower_.lock()) return f->Add(log_);
    writer->Close();
  }
  void OnDrained() override {
    if (auto f = follower_.lock()) f->Kick();
  }
  void OnClosed() override {
    if (auto f = follower_.lock()) f->Kick();
  }

 private:
  std::weak_ptr<RunsApi::Follower> follower_;
  std::shared_ptr<RunsApi::Follower::Log> log_;
};

}  // namespace

// ---- RunsApi ----

RunsApi::RunsApi(RunStore& store, toggles::TokenStore& tokens, RunControl& control,
                 RunEvents& events, Options options)
    : store_(store),
      tokens_(tokens),
      control_(control),
      events_(events),
      options_(std::move(options)),
      follower_(std::make_shared<Follower>(store_, options_)),
      hooks_(static_cast<size_t>(std::max(1, options_.hook_threads))) {}

RunsApi::~RunsApi() {
  // Pushes in progress finish (they hold the server's state); queued ones
  // are dropped, and their responders answer 503 to whoever still waits.
  hooks_stopping_ = true;
  hooks_.join();
  follower_->Stop();
}

size_t RunsApi::follower_count() const { return follower_->count(); }

void RunsApi::Register(Router* router) {
  router->Add("POST", "/api/v1/hooks/push/{repo}", this, &RunsApi::Push);
  router->Add("GET", "/api/v1/runs", this, &RunsApi::ListRuns);
  router->Add("GET", "/api/v1/runs/stream", this, &RunsApi::Stream);
  router->Add("GET", "/api/v1/runs/{id}", this, &RunsApi::GetRun);
  router->Add("GET", "/api/v1/runs/{id}/steps/{stage}/{step}/log", this, &RunsApi::Log);
  router->Add("GET", "/api/v1/runs/{id}/artifacts", this, &RunsApi::ListArtifacts);
  router->Add("GET", "/api/v1/runs/{id}/artifacts/{stage}/{step}/{path...}", this,
              &RunsApi::Artifact);
  router->Add("POST", "/api/v1/runs/{id}/cancel", this, &RunsApi::Cancel);
  router->Add("POST", "/api/v1/runs/{id}/stages/{stage}/approve", this, &RunsApi::Approve);
  router->Add("GET", "/api/v1/deployments", this, &RunsApi::ListDeployments);
  router->Add("GET", "/api/v1/replicas", this, &RunsApi::ListReplicas);
  router->Add("POST", "/api/v1/environments/{env}/rollback", this, &RunsApi::Rollback);
  router->Add("POST", "/api/v1/runs", this, &RunsApi::Trigger);
  router->Add("POST", "/api/v1/runs/{id}/rerun", this, &RunsApi::Rerun);
}

// ---- reads ----

HttpResponse RunsApi::ListRuns(const HttpRequest& r) {
  toggles::Principal p;
  if (auto e = toggles::AuthenticateRequest(tokens_, r, false, &p)) return *e;
  RunFilter filter;
  filter.repo = std::string(r.Query("repo"));
  filter.branch = std::string(r.Query("branch"));
  filter.status = std::string(r.Query("status"));
  if (!filter.status.empty() && !IsStatus(filter.status)) {
    return BadRequest("status: must be one of queued, running, waiting, success, failed, "
                      "skipped, cancelled, interrupted, superseded; got '" + filter.status + "'");
  }
  int limit = kDefaultLimit;
  if (auto e = PageQuery(r, &limit, &filter.before)) return *e;
  filter.limit = limit + 1;  // one more tells whether a next page exists
  std::vector<RunRecord> runs;
  Status s = store_.ListRuns(filter, &runs);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  bool more = static_cast<int>(runs.size()) > limit;
  if (more) runs.resize(limit);
  json out = {{"runs", json::array()}};
  for (const RunRecord& run : runs) out["runs"].push_back(RunSummaryToJson(run));
  if (more) out["next_before"] = runs.back().id;
  return HttpResponse::Json(200, out);
}

HttpResponse RunsApi::GetRun(const HttpRequest& r) {
  toggles::Principal p;
  if (auto e = toggles::AuthenticateRequest(tokens_, r, false, &p)) return *e;
  int64_t id = 0;
  if (auto e = RunIdParam(r, &id)) return *e;
  RunRecord run;
  Status s = store_.GetRun(id, &run);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  return HttpResponse::Json(200, RunToJson(run));
}

namespace {

// ?format=text|json and ?follow=1|0 of the log route, or a 400 naming them.
std::optional<HttpResponse> LogQuery(const HttpRequest& r, bool* as_json, bool* following) {
  std::string_view format = r.Query("format");
  if (!format.empty() && format != "text" && format != "json") {
    return BadRequest("format: must be text or json, got '" + std::string(format) + "'");
  }
  std::string_view follow = r.Query("follow");
  if (!follow.empty() && follow != "0" && follow != "1" && follow != "true" && follow != "false") {
    return BadRequest("follow: must be 1 or 0, got '" + std::string(follow) + "'");
  }
  *as_json = format == "json";
  *following = follow == "1" || follow == "true";
  return std::nullopt;
}

// ?download=1: the log as a file to save (docs/server.md "HTTP API: runs"),
// named run-ID-STAGE-STEP.log with anything but [A-Za-z0-9._=-] as '_'.
std::optional<HttpResponse> DownloadQuery(const HttpRequest& r, int64_t id, std::string* disposition) {
  std::string_view download = r.Query("download");
  if (download.empty() || download == "0" || download == "false") return std::nullopt;
  if (download != "1" && download != "true") {
    return BadRequest("download: must be 1 or 0, got '" + std::string(download) + "'");
  }
  std::string name = "run-" + std::to_string(id) + "-" + std::string(r.Param("stage")) + "-" +
                     std::string(r.Param("step"));
  for (char& c : name) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '_' || c == '=' || c == '-';
    if (!plain) c = '_';
  }
  *disposition = "attachment; filename=\"" + name + (r.Query("format") == "json" ? ".ndjson" : ".log") + "\"";
  return std::nullopt;
}

// A log small enough for one body; no file yet is an empty log.
HttpResponse WholeLog(const std::string& path, bool as_json, std::string_view type) {
  std::vector<LogRecord> records;
  uint64_t offset = 0;
  Status s = ReadLogRecords(path, &offset, &records);
  if (!s.ok() && s.code() != Code::kNotFound) return HttpResponse::FromStatus(s);
  std::string body;
  for (const LogRecord& record : records) AppendRecord(record, as_json, &body);
  return HttpResponse::Text(200, std::move(body), type);
}

}  // namespace

HttpResponse RunsApi::Log(const HttpRequest& r) {
  toggles::Principal p;
  if (auto e = toggles::AuthenticateRequest(tokens_, r, false, &p)) return *e;
  int64_t id = 0;
  if (auto e = RunIdParam(r, &id)) return *e;
  bool as_json = false, following = false;
  if (auto e = LogQuery(r, &as_json, &following)) return *e;
  std::string disposition;
  if (auto e = DownloadQuery(r, id, &disposition)) return *e;
  RunRecord run;
  Status s = store_.GetRun(id, &run);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  std::string missing;
  const StepRecord* step = FindStep(run, r.Param("stage"), r.Param("step"), &missing);
  if (!step) return HttpResponse::Error(404, "not_found", missing);
  if (auto e = FromOwner(r, run,
                         "the log of run " + std::to_string(id) + "'s step " +
                             std::string(r.Param("stage")) + "/" + std::string(r.Param("step"))))
    return *e;

  auto log = std::make_shared<Follower::Log>();
  log->run_id = id;
  log->stage = std::string(r.Param("stage"));
  log->step = std::string(r.Param("step"));
  log->path = StepLogPath(store_.data_dir(), id, log->stage, log->step);
  log->as_json = as_json;
  // Read before any byte of the log: what the step wrote before it finished
  // is in the file by then.
  log->finished = !following || !RunActive(run.status) || !StepActive(step->status);
  std::string_view type = as_json ? kNdjsonType : kTextType;
  if (!following && FileSize(log->path) <= options_.max_log_body) {
    HttpResponse whole = WholeLog(log->path, as_json, type);
    if (!disposition.empty() && whole.status == 200) whole.headers.Set("Content-Disposition", disposition);
    return whole;
  }
  StreamOptions stream;
  stream.max_queued_bytes = options_.stream_max_queued_bytes;
  HttpResponse response =
      HttpResponse::Stream(std::make_shared<LogSource>(follower_, std::move(log)), type, stream);
  response.headers.Add("Cache-Control", "no-cache");
  response.headers.Add("X-Accel-Buffering", "no");  // nginx in front: do not buffer
  if (!disposition.empty()) response.headers.Set("Content-Disposition", disposition);
  return response;
}

// docs/server.md "Replicas": logs and artifacts are in the data dir of the
// replica that carried out the run; another replica passes the request on.
std::optional<HttpResponse> RunsApi::FromOwner(const HttpRequest& r, const RunRecord& run,
                                               const std::string& what) {
  if (!store_.shared() || run.replica.empty() || run.replica == store_.replica_id() ||
      !r.Header(kProxiedHeader).empty())
    return std::nullopt;
  std::vector<ReplicaInfo> replicas;
  Status s = store_.ListReplicas(&replicas);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  for (const ReplicaInfo& info : replicas)
    if (info.id == run.replica)
      return ProxyToReplica(info.url, info.id, store_.replica_id(), r, what);
  return HttpResponse::Error(502, "replica_unavailable",
                             what + " is kept by replica " + run.replica +
                                 ", which is gone (its lease expired)");
}

// docs/server.md "Replicas": {self, replicas: [{id, url, started_at,
// lease_until}]}, the live ones oldest first; on SQLite, none and self "".
HttpResponse RunsApi::ListReplicas(const HttpRequest& r) {
  toggles::Principal p;
  if (auto e = toggles::AuthenticateRequest(tokens_, r, false, &p)) return *e;
  std::vector<ReplicaInfo> replicas;
  Status s = store_.ListReplicas(&replicas);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  json out = {{"self", store_.replica_id()}, {"replicas", json::array()}};
  for (const ReplicaInfo& info : replicas)
    out["replicas"].push_back({{"id", info.id},
                               {"url", info.url},
                               {"started_at", info.started_at},
                               {"lease_until", info.lease_until}});
  return HttpResponse::Json(200, out);
}

HttpResponse RunsApi::ListDeployments(const HttpRequest& r) {
  toggles::Principal p;
  if (auto e = toggles::AuthenticateRequest(tokens_, r, false, &p)) return *e;
  int limit = kDefaultLimit;
  int64_t before = 0;
  if (auto e = PageQuery(r, &limit, &before)) return *e;
  std::vector<DeploymentRecord> list;
  Status s = store_.ListDeployments(std::string(r.Query("environment")), limit + 1, before, &list);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  bool more = static_cast<int>(list.size()) > limit;
  if (more) list.resize(limit);
  json out = {{"deployments", json::array()}};
  for (const DeploymentRecord& d : list) out["deployments"].push_back(DeploymentToJson(d));
  if (more) out["next_before"] = list.back().id;
  return HttpResponse::Json(200, out);
}

// ---- artifacts (docs/server.md "HTTP API: runs") ----

namespace {

// Sends one artifact file in pieces: a piece whenever the client's queue is
// below one chunk (on Start and on each OnDrained), so memory stays bounded
// whatever the file's size. Callbacks run on the connection's io thread.
class FileSource : public StreamSource {
 public:
  FileSource(int fd, size_t chunk) : fd_(fd), chunk_(std::max<size_t>(chunk, 4096)) {}
  ~FileSource() override { CloseFile(); }

  void Start(std::shared_ptr<StreamWriter> writer) override {
    writer_ = std::move(writer);
    Pump();
  }
  void OnDrained() override { Pump(); }
  void OnClosed() override { CloseFile(); }

 private:
  void Pump() {
    while (fd_ >= 0 && !writer_->closed() && writer_->queued_bytes() < chunk_) {
      std::string piece(chunk_, '\0');
      ssize_t n = ::read(fd_, piece.data(), piece.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {  // the end, or a read error: the client sees a short body
        CloseFile();
        writer_->Close();
        return;
      }
      piece.resize(static_cast<size_t>(n));
      if (!writer_->Send(std::move(piece))) return CloseFile();
    }
  }
  void CloseFile() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  int fd_;
  const size_t chunk_;
  std::shared_ptr<StreamWriter> writer_;
};

// The run and its step dir, or the 400/404 to answer (naming what is missing).
std::optional<HttpResponse> ArtifactStep(RunStore& store, const HttpRequest& r,
                                         std::string* dir, std::string* name, RunRecord* out) {
  int64_t id = 0;
  if (auto e = RunIdParam(r, &id)) return e;
  RunRecord& run = *out;
  Status s = store.GetRun(id, &run);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  std::string missing;
  if (!FindStep(run, r.Param("stage"), r.Param("step"), &missing)) {
    return HttpResponse::Error(404, "not_found", missing);
  }
  *name = std::string(r.Param("stage")) + "/" + std::string(r.Param("step")) + " of run " +
          std::to_string(id);
  *dir = ArtifactDir(store.data_dir(), id, std::string(r.Param("stage")),
                     std::string(r.Param("step")));
  return std::nullopt;
}


}  // namespace

HttpResponse RunsApi::ListArtifacts(const HttpRequest& r) {
  toggles::Principal p;
  if (auto e = toggles::AuthenticateRequest(tokens_, r, false, &p)) return *e;
  int64_t id = 0;
  if (auto e = RunIdParam(r, &id)) return *e;
  RunRecord run;
  Status s = store_.GetRun(id, &run);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  if (auto e = FromOwner(r, run, "the artifacts of run " + std::to_string(id))) return *e;
  json list = json::array();
  bool truncated = false;
  for (const StageRecord& stage : run.stages) {
    for (const StepRecord& step : stage.steps) {
      const fs::path dir = ArtifactDir(store_.data_dir(), id, stage.name, step.name);
      std::error_code ec;
      if (!fs::is_directory(dir, ec)) continue;
      // Symlinks are neither followed nor listed: only regular files are served.
      for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
        if (list.size() >= options_.max_artifact_files) {
          truncated = true;
          break;
        }
        list.push_back({{"stage", stage.name},
                        {"step", step.name},
                        {"path", it->path().lexically_relative(dir).generic_string()},
                        {"size", it->file_size(ec)}});
      }
    }
  }
  return HttpResponse::Json(200, {{"run_id", id}, {"artifacts", list}, {"truncated", truncated}});
}

HttpResponse RunsApi::Artifact(const HttpRequest& r) {
  toggles::Principal p;
  if (auto e = toggles::AuthenticateRequest(tokens_, r, false, &p)) return *e;
  std::string dir, name;
  RunRecord run;
  if (auto e = ArtifactStep(store_, r, &dir, &name, &run)) return *e;
  if (auto e = FromOwner(r, run, "artifact " + std::string(r.Param("path")) + " of " + name))
    return *e;
  std::string_view path = r.Param("path");
  if (!PlainRelativePath(path)) {
    return BadRequest("artifact path: expected a relative path without '.' or '..' segments, "
                      "got '" + std::string(path) + "'");
  }
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return HttpResponse::Error(404, "not_found", "step " + name + " kept no artifacts");
  }
  const std::string file = dir + "/" + std::string(path);
  // A symlink anywhere below the step's dir could point out of it: the
  // canonical path must stay inside, and the file itself is opened without
  // following one.
  const std::string canonical_dir = fs::weakly_canonical(dir, ec).string();
  const std::string canonical = fs::weakly_canonical(file, ec).string();
  int fd = -1;
  if (!ec && canonical.rfind(canonical_dir + "/", 0) == 0) {
    fd = ::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  }
  struct stat st;
  if (fd >= 0 && (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
    ::close(fd);
    fd = -1;
  }
  if (fd < 0) {
    return HttpResponse::Error(404, "not_found",
                               "no artifact '" + std::string(path) + "' in step " + name);
  }
  HttpResponse response =
      HttpResponse::Stream(std::make_shared<FileSource>(fd, options_.artifact_chunk),
                           "application/octet-stream");
  response.headers.Add("X-Ladle-Size", std::to_string(st.st_size));
  return response;
}

// ---- control ----

HttpResponse RunsApi::Cancel(const HttpRequest& r) {
  toggles::Principal p;
  if (auto e = toggles::RequireAdminRequest(tokens_, r, &p)) return *e;
  int64_t id = 0;
  if (auto e = RunIdParam(r, &id)) return *e;
  Status s = control_.Cancel(id, p.name);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  return HttpResponse::Json(
      202, {{"run_id", id}, {"message", "cancelling run " + std::to_string(id)}});
}

HttpResponse RunsApi::Approve(const HttpRequest& r) {
  toggles::Principal p;
  if (auto e = toggles::RequireAdminRequest(tokens_, r, &p)) return *e;
  int64_t id = 0;
  if (auto e = RunIdParam(r, &id)) return *e;
  std::string stage(r.Param("stage"));
  Status s = control_.Approve(id, stage, p.name);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  return HttpResponse::Json(202, {{"run_id", id},
                                  {"stage", stage},
                                  {"message", "approved stage '" + stage + "' of run " +
                                                  std::to_string(id) + " as " + p.name}});
}

HttpResponse RunsApi::Rollback(const HttpRequest& r) {
  toggles::Principal p;
  if (auto e = toggles::RequireAdminRequest(tokens_, r, &p)) return *e;
  int64_t to_run = 0;
  if (r.body.find_first_not_of(" \t\r\n") != std::string::npos) {
    json body;
    if (auto e = ParseJsonObjectBody(r, &body)) return *e;
    for (const auto& [field, value] : body.items()) {
      if (field != "to_run") return BadRequest(field + ": unknown field (expected to_run)");
      if (value.is_null()) continue;
      if (!value.is_number_integer() || value.get<int64_t>() <= 0) {
        return BadRequest("to_run: must be a positive integer run id");
      }
      to_run = value.get<int64_t>();
    }
  }
  int64_t run_id = 0;
  Status s = control_.Rollback(std::string(r.Param("env")), to_run, p.name, &run_id);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  return HttpResponse::Json(202, {{"run_id", run_id}});
}

// No token: the repository's webhook secret authenticates (RunControl::Push).
namespace {
// A push waiting for a hook thread. One that is dropped unrun (the server
// stops) answers 503; a responder takes only its first answer, so after a
// run this is a no-op.
struct PushJob {
  PushJob(std::shared_ptr<const HttpRequest> r, std::shared_ptr<Responder> responder)
      : request(std::move(r)), responder(std::move(responder)) {}
  ~PushJob() {
    responder->Complete(HttpResponse::Error(503, "unavailable", "ladle serve is stopping; push again later"));
  }
  const std::shared_ptr<const HttpRequest> request;
  const std::shared_ptr<Responder> responder;
};
}  // namespace

// Deferred: the io thread hands the request to a hook thread and serves
// others while a remote repository is fetched.
HttpResponse RunsApi::Push(const HttpRequest& r) {
  auto request = std::make_shared<const HttpRequest>(r);  // headers and body, kept
  return HttpResponse::Deferred([this, request](std::shared_ptr<Responder> responder) {
    auto job = std::make_shared<PushJob>(request, std::move(responder));
    boost::asio::post(hooks_, [this, job] {
      if (!hooks_stopping_) job->responder->Complete(HandlePush(*job->request));
    });
  });
}

HttpResponse RunsApi::HandlePush(const HttpRequest& r) {
  HeaderLookup header = [&r](std::string_view name) { return std::string(r.Header(name)); };
  std::vector<int64_t> runs;
  std::string note;
  bool replay = false;
  Status s = control_.Push(std::string(r.Param("repo")), header, r.body, &runs, &note, &replay);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  // docs/server.md "Webhook trust": a delivery seen before is acknowledged,
  // so the sender stops retrying, and starts nothing.
  if (replay) return HttpResponse::Json(200, {{"runs", json::array()}, {"message", note}});
  if (note.empty()) {
    note = runs.empty() ? "no run started" : "queued " + std::to_string(runs.size()) + " run" +
                                                 (runs.size() == 1 ? "" : "s");
  }
  return HttpResponse::Json(202, {{"runs", runs}, {"message", note}});
}

// docs/server.md "HTTP API: runs": {"repo", "branch"|"tag"|"commit"}; admin
// only. Deferred like a push: the branch's head may need a fetch.
HttpResponse RunsApi::Trigger(const HttpRequest& r) {
  toggles::Principal p;
  if (auto e = toggles::RequireAdminRequest(tokens_, r, &p)) return *e;
  auto request = std::make_shared<HttpRequest>(r);
  request->headers.Add("X-Ladle-Actor", p.name);  // who asked, for the hook thread
  std::shared_ptr<const HttpRequest> kept = request;
  return HttpResponse::Deferred([this, kept](std::shared_ptr<Responder> responder) {
    // A job dropped unrun (the server stops) answers 503 (PushJob).
    auto job = std::make_shared<PushJob>(kept, std::move(responder));
    boost::asio::post(hooks_, [this, job] {
      if (!hooks_stopping_) job->responder->Complete(HandleTrigger(*job->request));
    });
  });
}

HttpResponse RunsApi::HandleTrigger(const HttpRequest& r) {
  json body;
  if (auto e = ParseJsonObjectBody(r, &body)) return *e;
  std::string repo, branch, tag, commit;
  for (const auto& [field, value] : body.items()) {
    std::string* out = field == "repo"     ? &repo
                       : field == "branch" ? &branch
                       : field == "tag"    ? &tag
                       : field == "commit" ? &commit
                                           : nullptr;
    if (out == nullptr) return BadRequest(field + ": unknown field (expected repo, branch, tag or commit)");
    if (!value.is_string() || value.get<std::string>().empty())
      return BadRequest(field + ": must be a non-empty string");
    *out = value.get<std::string>();
    if (out->size() > 255) return BadRequest(field + ": longer than 255 characters");
  }
  if (repo.empty()) return BadRequest("repo: missing");
  if (!branch.empty() + !tag.empty() + !commit.empty() != 1)
    return BadRequest("give exactly one of branch, tag and commit");
  int64_t run_id = 0;
  Status s = control_.Trigger(repo, branch, tag, commit, std::string(r.Header("X-Ladle-Actor")),
                              &run_id);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  return CreatedRun(run_id);
}

// 201 with the run just queued (its summary, and run_id).
HttpResponse RunsApi::CreatedRun(int64_t run_id) const {
  RunRecord run;
  if (!store_.GetRun(run_id, &run).ok()) return HttpResponse::Json(201, {{"id", run_id}, {"run_id", run_id}});
  json out = RunSummaryToJson(run);
  out["run_id"] = run_id;
  return HttpResponse::Json(201, out);
}

HttpResponse RunsApi::Rerun(const HttpRequest& r) {
  toggles::Principal p;
  if (auto e = toggles::RequireAdminRequest(tokens_, r, &p)) return *e;
  int64_t id = 0;
  if (auto e = RunIdParam(r, &id)) return *e;
  int64_t run_id = 0;
  Status s = control_.Rerun(id, p.name, &run_id);
  if (!s.ok()) return HttpResponse::FromStatus(s);
  return CreatedRun(run_id);
}

// ---- events ----

HttpResponse RunsApi::Stream(const HttpRequest& r) {
  toggles::Principal p;
  if (auto e = toggles::AuthenticateRequest(tokens_, r, false, &p)) return *e;
  return events_.Subscribe(r);
}

}  // namespace ladle::runner
