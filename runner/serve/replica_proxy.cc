#include "runner/serve/replica_proxy.h"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include <httplib.h>

namespace ladle::runner {
namespace {

// What the proxy thread and the client's stream share.
struct Pipe {
  std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<StreamWriter> writer;  // set by Start
  bool closed = false;                   // the client's stream ended
};

// The client's side: hands the writer to the proxy thread and wakes it when
// the queue drained or the stream closed.
class PipeSource final : public StreamSource {
 public:
  explicit PipeSource(std::shared_ptr<Pipe> pipe) : pipe_(std::move(pipe)) {}
  void Start(std::shared_ptr<StreamWriter> writer) override {
    std::lock_guard<std::mutex> lock(pipe_->mu);
    pipe_->writer = std::move(writer);
    pipe_->cv.notify_all();
  }
  void OnDrained() override { pipe_->cv.notify_all(); }
  void OnClosed() override {
    std::lock_guard<std::mutex> lock(pipe_->mu);
    pipe_->closed = true;
    pipe_->cv.notify_all();
  }

 private:
  std::shared_ptr<Pipe> pipe_;
};

// At most this much of the owner's answer waits for a slow client; past it
// the proxy stops reading from the owner (TCP pushes back) instead of
// buffering a whole artifact.
constexpr size_t kMaxQueued = 256 * 1024;

// The headers of the owner's answer that the client gets.
constexpr const char* kPassedHeaders[] = {"Content-Disposition", "X-Ladle-Size", "Cache-Control",
                                          "X-Accel-Buffering", "ETag", "Last-Modified"};

void Proxy(const std::string& base_url, const std::string& replica_id, const std::string& self_id,
           const std::string& target, const std::string& authorization, const std::string& what,
           const std::shared_ptr<Responder>& responder) {
  httplib::Client client(base_url);
  client.set_connection_timeout(std::chrono::seconds(2));
  // A followed log may be quiet for long: the owner's stream ends it.
  client.set_read_timeout(std::chrono::hours(1));
  client.set_keep_alive(false);
  httplib::Headers headers = {{kProxiedHeader, self_id}};
  if (!authorization.empty()) headers.emplace("Authorization", authorization);
  auto pipe = std::make_shared<Pipe>();
  bool answered = false;
  auto on_head = [&](const httplib::Response& head) {
    StreamOptions options;
    options.max_queued_bytes = kMaxQueued * 4;
    std::string type = head.get_header_value("Content-Type");
    if (type.empty()) type = "application/octet-stream";
    HttpResponse response =
        HttpResponse::Stream(std::make_shared<PipeSource>(pipe), type, options);
    response.status = head.status;
    for (const char* name : kPassedHeaders)
      if (head.has_header(name)) response.headers.Set(name, head.get_header_value(name));
    responder->Complete(std::move(response));
    answered = true;
    return true;
  };
  auto on_data = [&](const char* data, size_t n) {
    std::unique_lock<std::mutex> lock(pipe->mu);
    // The server calls Start once the head is written; a client that left
    // before that closes the stream.
    if (!pipe->cv.wait_for(lock, std::chrono::seconds(30),
                           [&] { return pipe->writer != nullptr || pipe->closed; }))
      return false;
    if (pipe->closed) return false;
    pipe->cv.wait(lock, [&] {
      return pipe->closed || pipe->writer->closed() || pipe->writer->queued_bytes() < kMaxQueued;
    });
    if (pipe->closed || pipe->writer->closed()) return false;
    return pipe->writer->Send(std::string(data, n));
  };
  httplib::Result result = client.Get(target, headers, on_head, on_data);
  if (!answered) {
    responder->Complete(HttpResponse::Error(
        502, "replica_unavailable",
        what + " is kept by replica " + replica_id + " (" + base_url +
            "), which does not answer: " + httplib::to_string(result.error())));
    return;
  }
  std::unique_lock<std::mutex> lock(pipe->mu);
  pipe->cv.wait_for(lock, std::chrono::seconds(30),
                    [&] { return pipe->writer != nullptr || pipe->closed; });
  if (pipe->writer) pipe->writer->Close();
}

}  // namespace

HttpResponse ProxyToReplica(const std::string& base_url, const std::string& replica_id,
                            const std::string& self_id, const HttpRequest& request,
                            const std::string& what) {
  const std::string target(HttpRequest::OriginForm(request.target));
  const std::string authorization(request.Header("Authorization"));
  return HttpResponse::Deferred([=](std::shared_ptr<Responder> responder) {
    // One thread per proxied request, for as long as the owner streams: it
    // holds copies of everything it uses, so it may outlive the request.
    std::thread(Proxy, base_url, replica_id, self_id, target, authorization, what,
                std::move(responder))
        .detach();
  });
}

}  // namespace ladle::runner
