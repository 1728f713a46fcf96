#include "runner/cli/signals.h"

#include <pthread.h>
#include <signal.h>

#include <mutex>
#include <thread>

namespace ladle::runner {
namespace {

// The handler is called with g_mu held, so that replacing it waits for a
// call in progress (SetSignalHandler's promise).
std::mutex g_mu;
std::function<void(int)> g_handler;
std::once_flag g_thread_started;

sigset_t WatchedSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

void InstallSignalHandler(std::function<void(int)> handler) {
  SetSignalHandler(std::move(handler));
  sigset_t set = WatchedSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::call_once(g_thread_started, [set] {
    std::thread([set] {
      for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        std::lock_guard<std::mutex> lock(g_mu);
        if (g_handler) g_handler(sig == SIGHUP ? SIGTERM : sig);
      }
    }).detach();
  });
}

void SetSignalHandler(std::function<void(int)> handler) {
  std::function<void(int)> old;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    old = std::move(g_handler);
    g_handler = std::move(handler);
  }
  // `old` (and what it captured by value) is destroyed here, outside g_mu.
}

SignalHandlerScope::SignalHandlerScope(std::function<void(int)> handler) {
  InstallSignalHandler(std::move(handler));
}

SignalHandlerScope::~SignalHandlerScope() { SetSignalHandler(nullptr); }

}  // namespace ladle::runner
