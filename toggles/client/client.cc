#include "toggles/client/client.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

namespace ladle::toggles {
namespace {

using json = nlohmann::json;

constexpr int kCacheFormat = 1;
// After an open stream ends (a server restart), reopen it this soon.
constexpr std::chrono::milliseconds kReconnectDelay{1000};

// Generations are unique in the process, so a thread's cache (below) can
// never mistake one Client's set for another's.
std::atomic<uint64_t> g_next_generation{1};

// The hot path's view of "the current set": the last one this thread used,
// with the generation it had. Reused while the Client's generation is the
// same, so evaluation touches no shared reference count and takes no lock
// (std::atomic_load of a shared_ptr takes a mutex in libstdc++).
struct ThreadCache {
  uint64_t generation = 0;
  std::shared_ptr<const Snapshot> snapshot;
};
thread_local ThreadCache t_cache;

bool ParseInt64(std::string_view text, int64_t* out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

// The server's toggle, minus top-level fields this client does not know: a
// newer server may add some, and an application must keep working.
json KnownFields(const json& toggle) {
  if (!toggle.is_object()) return toggle;
  json out = json::object();
  for (const char* f : {"key", "type", "description", "variants", "revision", "environments"})
    if (auto it = toggle.find(f); it != toggle.end()) out[f] = *it;
  return out;
}

// A toggle set as the server (or the cache) gives it: a JSON array of
// toggles, or an object {"toggles": [...], "revision": N}.
struct ToggleSet {
  json array = json::array();  // the toggles, as parsed
  std::vector<Toggle> toggles;
  int64_t revision = 0;
};

Status ParseSet(const json& j, ToggleSet* out) {
  const json* array = &j;
  if (j.is_object()) {
    auto it = j.find("toggles");
    if (it == j.end()) return Status::Invalid("expected an array of toggles, got an object without \"toggles\"");
    array = &*it;
    if (auto r = j.find("revision"); r != j.end() && r->is_number_integer()) out->revision = r->get<int64_t>();
  }
  if (!array->is_array()) return Status::Invalid("expected an array of toggles");
  for (size_t i = 0; i < array->size(); ++i) {
    json known = KnownFields((*array)[i]);
    Toggle t;
    Status s = ParseToggle(known, &t);
    if (!s.ok()) return s.WithContext("toggles[" + std::to_string(i) + "]");
    // Every change up to a toggle's own revision is in the set.
    out->revision = std::max(out->revision, t.revision);
    out->toggles.push_back(std::move(t));
    out->array.push_back(std::move(known));
  }
  return Status::OK();
}

std::shared_ptr<const Snapshot> EmptySnapshot() {
  std::shared_ptr<const Snapshot> snap;
  // An empty list of toggles always builds.
  Snapshot::Build(0, {}, &snap).IgnoreError();
  return snap;
}

Status WriteAll(int fd, const std::string& text, const std::string& path) {
  for (size_t done = 0; done < text.size();) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("write " + path, errno);
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return Status::FromErrno("fsync " + path, errno);
  return Status::OK();
}

// Replaces `path` atomically: readers see the old file or the new one whole,
// and a crash leaves one of them (the data is synced before the rename).
Status ReplaceFile(const std::string& path, const std::string& text) {
  namespace fs = std::filesystem;
  static std::atomic<uint64_t> counter{0};
  fs::path parent = fs::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) fs::create_directories(parent, ec);
  // Unique per writer: two processes may share one cache file.
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno("create " + tmp, errno);
  Status s = WriteAll(fd, text, tmp);
  ::close(fd);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = Status::FromErrno("rename " + tmp, errno);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  int dir = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);  // the rename itself; best effort
    ::close(dir);
  }
  return Status::OK();
}

}  // namespace

std::string_view ToString(ToggleSource source) {
  switch (source) {
    case ToggleSource::kNone: return "none";
    case ToggleSource::kCache: return "cache";
    case ToggleSource::kServer: return "server";
  }
  return "none";
}

Status Client::Start(ClientOptions options, std::unique_ptr<Client>* out) {
  ServerUrl url;
  Status s = ParseServerUrl(options.server, &url);
  if (!s.ok()) return s;
  if (options.environment.empty()) return Status::Invalid("environment: must not be empty");
  std::unique_ptr<Client> client(new Client(std::move(options), std::move(url)));
  client->LoadCache();
  // Fetch records its error (last_error(), on_error); a server that is down
  // at start leaves the cached or default values, as docs/toggles.md says.
  client->Fetch().IgnoreError();
  if (client->options_.background) client->thread_ = std::thread(&Client::Run, client.get());
  *out = std::move(client);
  return Status::OK();
}

Client::Client(ClientOptions options, ServerUrl url)
    : options_(std::move(options)),
      http_(std::move(url), HttpClient::Options{options_.token, options_.connect_timeout,
                                                options_.read_timeout}) {
  Publish(EmptySnapshot(), ToggleSource::kNone);
}

Client::~Client() {
  {
    std::lock_guard<std::mutex> lock(run_mu_);
    stopping_ = true;
  }
  run_cv_.notify_all();
  if (!thread_.joinable()) return;
  // Repeated: a Cancel() that lands while a request is still connecting has
  // no socket to shut down yet.
  for (;;) {
    cancel_stream_.Cancel();
    cancel_fetch_.Cancel();
    std::unique_lock<std::mutex> lock(run_mu_);
    if (run_cv_.wait_for(lock, std::chrono::milliseconds(20), [this] { return exited_; })) break;
  }
  thread_.join();
}

// --- evaluation (the hot path) ---

const Snapshot* Client::Current() const {
  uint64_t generation = generation_.load(std::memory_order_acquire);
  if (t_cache.generation != generation) {
    t_cache.snapshot = std::atomic_load(&snapshot_);
    t_cache.generation = generation;
  }
  return t_cache.snapshot.get();
}

bool Client::IsEnabled(std::string_view key, const EvaluationContext& context,
                       bool default_value) const {
  const CompiledToggle* toggle = Current()->Find(key);
  if (toggle == nullptr) return default_value;
  Evaluation e = toggle->Evaluate(options_.environment, context);
  return e.reason == Reason::kError ? default_value : e.on;
}

std::string Client::Variant(std::string_view key, const EvaluationContext& context,
                            std::string_view default_variant) const {
  const CompiledToggle* toggle = Current()->Find(key);
  if (toggle == nullptr) return std::string(default_variant);
  Evaluation e = toggle->Evaluate(options_.environment, context);
  return std::string(e.reason == Reason::kError ? default_variant : e.variant);
}

ToggleDetails Client::Evaluate(std::string_view key, const EvaluationContext& context) const {
  std::shared_ptr<const Snapshot> snap = snapshot();  // keeps value and variant alive
  ToggleDetails d;
  d.revision = snap->revision();
  const CompiledToggle* toggle = snap->Find(key);
  if (toggle == nullptr) {
    d.reason = Reason::kError;
    d.error = ErrorCode::kFlagNotFound;
    return d;
  }
  Evaluation e = toggle->Evaluate(options_.environment, context);
  d.found = true;
  d.on = e.on;
  d.variant = std::string(e.variant);
  d.value = *e.value;
  d.reason = e.reason;
  d.error = e.error;
  return d;
}

std::shared_ptr<const Snapshot> Client::snapshot() const {
  Current();
  return t_cache.snapshot;
}

void Client::Publish(std::shared_ptr<const Snapshot> snapshot, ToggleSource source) {
  std::atomic_store(&snapshot_, std::shared_ptr<const Snapshot>(std::move(snapshot)));
  source_.store(source, std::memory_order_release);
  generation_.store(g_next_generation.fetch_add(1), std::memory_order_release);
}

// --- fetching ---

Status Client::last_error() const {
  std::lock_guard<std::mutex> lock(error_mu_);
  return last_error_;
}

void Client::SetError(const Status& s) {
  std::lock_guard<std::mutex> lock(error_mu_);
  last_error_ = s;
}

Status Client::Refresh() { return Fetch(); }

Status Client::Fetch() {
  int64_t published = -1;
  Status s;
  {
    std::lock_guard<std::mutex> lock(fetch_mu_);
    uint64_t before = generation_.load();
    s = FetchLocked();
    if (generation_.load() != before) published = snapshot()->revision();
  }
  SetError(s);
  if (published >= 0 && options_.on_update) options_.on_update(published);
  return s;
}

Status Client::FetchLocked() {
  HttpHeaders headers = {{"Accept", "application/json"}};
  if (!etag_.empty()) headers.emplace_back("If-None-Match", etag_);
  ClientResponse r;
  Status s = http_.Send("GET", "/api/v1/toggles?environment=" + EncodePathSegment(options_.environment),
                        "", headers, &r, &cancel_fetch_);
  if (!s.ok()) return s;
  if (r.status == 304) {  // unchanged since etag_, which came from the server
    source_.store(ToggleSource::kServer, std::memory_order_release);
    return Status::OK();
  }
  if (r.status != 200) return StatusFromHttp(r.status, r.body).WithContext("fetch toggles");
  ToggleSet set;
  json body = json::parse(r.body, nullptr, false);
  s = body.is_discarded() ? Status::Invalid("invalid JSON") : ParseSet(body, &set);
  if (!s.ok()) return s.WithContext("toggle set from " + http_.url().ToString());
  std::string text = set.array.dump();
  etag_ = r.etag;
  seen_revision_ = std::max(seen_revision_, set.revision);
  if (text != set_text_) {
    std::shared_ptr<const Snapshot> snap;
    s = Snapshot::Build(set.revision, std::move(set.toggles), &snap);
    if (!s.ok()) return s.WithContext("toggle set from " + http_.url().ToString());
    Publish(std::move(snap), ToggleSource::kServer);
    set_text_ = text;
  }
  source_.store(ToggleSource::kServer, std::memory_order_release);
  if (options_.cache_file.empty() || text == cache_text_) return Status::OK();
  s = WriteCache(set.array, set.revision);
  if (s.ok()) cache_text_ = std::move(text);
  return s.WithContext("toggle cache " + options_.cache_file);
}

// --- the cache file: {"format": 1, "environment", "server", "revision", "toggles"} ---

void Client::LoadCache() {
  if (options_.cache_file.empty()) return;
  std::ifstream in(options_.cache_file);
  if (!in) return;  // none yet
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, false);
  ToggleSet set;
  Status s;
  if (!j.is_object() || j.value("format", 0) != kCacheFormat) s = Status::Invalid("not a ladle toggle cache");
  else if (j.value("environment", "") != options_.environment)
    s = Status::Invalid("holds environment '" + j.value("environment", "") + "', not '" + options_.environment + "'");
  else s = ParseSet(j, &set);
  std::shared_ptr<const Snapshot> snap;
  if (s.ok()) s = Snapshot::Build(set.revision, std::move(set.toggles), &snap);
  if (!s.ok()) {
    SetError(s.WithContext("toggle cache " + options_.cache_file + " ignored"));
    return;
  }
  std::lock_guard<std::mutex> lock(fetch_mu_);
  Publish(std::move(snap), ToggleSource::kCache);
  set_text_ = cache_text_ = set.array.dump();
  seen_revision_ = set.revision;
}

Status Client::WriteCache(const json& toggles, int64_t revision) {
  json doc = {{"format", kCacheFormat},
              {"environment", options_.environment},
              {"server", http_.url().ToString()},
              {"revision", revision},
              {"toggles", toggles}};
  return ReplaceFile(options_.cache_file, doc.dump() + "\n");
}

// --- the background thread ---

bool Client::WaitFor(std::chrono::milliseconds delay) {
  std::unique_lock<std::mutex> lock(run_mu_);
  return !run_cv_.wait_for(lock, delay, [this] { return stopping_; });
}

void Client::Run() {
  auto stream_retry_at = std::chrono::steady_clock::now();
  for (;;) {
    if (options_.stream && std::chrono::steady_clock::now() >= stream_retry_at) {
      bool opened = OpenStream();  // returns when the stream ends
      if (opened) {
        if (!WaitFor(kReconnectDelay)) break;
        continue;
      }
      stream_retry_at = std::chrono::steady_clock::now() + options_.stream_retry;
    }
    if (!WaitFor(std::chrono::milliseconds(0))) break;
    Fetch().IgnoreError();  // recorded by Fetch (last_error()); the next poll retries
    if (!WaitFor(options_.poll_interval)) break;
  }
  std::lock_guard<std::mutex> lock(run_mu_);
  exited_ = true;
  run_cv_.notify_all();
}

// Follows /api/v1/stream until it ends; true if it opened. Fetches once on
// opening (what changed before it opened) and on each event it has not seen.
bool Client::OpenStream() {
  bool opened = false;
  SseParser parser([this](const SseParser::Event& e) { return OnEvent(e.id); });
  HttpHeaders headers = {{"Accept", "text/event-stream"}};
  {
    std::lock_guard<std::mutex> lock(fetch_mu_);
    if (seen_revision_ > 0) headers.emplace_back("Last-Event-ID", std::to_string(seen_revision_));
  }
  ClientResponse r;
  // A stream that cannot open or that ends is not an error to report: the
  // caller falls back to polling (and Fetch records why the server is away).
  Status stream = http_.Stream(
      "/api/v1/stream", headers, options_.stream_idle_timeout,
      [&](int status) {
        if (status != 200) return true;  // read the error, then poll instead
        opened = true;
        streaming_.store(true, std::memory_order_release);
        Fetch().IgnoreError();  // recorded by Fetch (last_error()); events fetch again
        return WaitFor(std::chrono::milliseconds(0));
      },
      [&](std::string_view data) { return parser.Feed(data) && WaitFor(std::chrono::milliseconds(0)); },
      &cancel_stream_, &r);
  stream.IgnoreError();
  streaming_.store(false, std::memory_order_release);
  return opened;
}

bool Client::OnEvent(const std::string& id) {
  int64_t revision = 0;
  bool numbered = ParseInt64(id, &revision);
  bool seen;
  {
    std::lock_guard<std::mutex> lock(fetch_mu_);
    seen = numbered && revision <= seen_revision_;
  }
  // The fetch starts after the event was sent, so it holds that change.
  if (!seen && Fetch().ok() && numbered) {
    std::lock_guard<std::mutex> lock(fetch_mu_);
    seen_revision_ = std::max(seen_revision_, revision);
  }
  return WaitFor(std::chrono::milliseconds(0));
}

}  // namespace ladle::toggles
