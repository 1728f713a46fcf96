// An application that embeds ladle's toggle client, built against the
// installed package (tests/package/package_test.sh), outside ladle's tree.
// Usage: app SERVER TOKEN KEY USER; prints "KEY=on" or "KEY=off" for USER.
#include <cstdio>
#include <memory>

#include "toggles/client/client.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: app SERVER TOKEN KEY USER\n");
    return 2;
  }
  ladle::toggles::ClientOptions options;
  options.server = argv[1];
  options.token = argv[2];
  std::unique_ptr<ladle::toggles::Client> toggles;
  ladle::Status s = ladle::toggles::Client::Start(options, &toggles);
  if (!s.ok()) {
    std::fprintf(stderr, "app: %s\n", s.ToString().c_str());
    return 3;
  }
  ladle::toggles::EvaluationContext user;
  user.SetTargetingKey(argv[4]);
  std::printf("%s=%s\n", argv[3], toggles->IsEnabled(argv[3], user) ? "on" : "off");
  return 0;
}
