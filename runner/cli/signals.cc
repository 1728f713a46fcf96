#include "runner/cli/signals.h"

#include <pthread.h>
#include <signal.h>

#include <mutex>
#include <thread>

namespace ladle::runner {
namespace {

std::mutex g_mu;
std::function<void(int)> g_handler;

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
  std::thread([set] {
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      std::lock_guard<std::mutex> lock(g_mu);
      if (g_handler) g_handler(sig == SIGHUP ? SIGTERM : sig);
    }
  }).detach();
}

void SetSignalHandler(std::function<void(int)> handler) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_handler = std::move(handler);
}

}  // namespace ladle::runner
