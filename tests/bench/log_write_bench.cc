// Step log write throughput: a step printing 200 MB of 100-byte lines,
// arriving in 64 KiB chunks (as a pipe read gives them), through
// StepLogWriter with one secret to mask, into a temp file.
//
//   log_write_bench [--check]    --check: exit 1 when a target is missed
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "runner/store/step_log.h"

namespace {

using ladle::env::OutputStream;

constexpr size_t kTotal = 200u << 20;
constexpr size_t kChunk = 64u << 10;
constexpr size_t kLine = 100;
constexpr double kTargetMbPerS = 200;
constexpr double kTargetRssMb = 50;
const char kSecret[] = "s3cr3t-deploy-token-0123456789";

// 16384 lines of 100 bytes: a multiple of the chunk size, so chunks are
// windows into it that never wrap, and lines straddle chunk boundaries.
std::string MakePattern() {
  std::string pattern;
  for (int i = 0; pattern.size() < 16384 * kLine; ++i) {
    std::string line = "line " + std::to_string(i) + ": compiling module " +
                       std::to_string(i % 97) + (i % 100 == 0 ? " token=" + std::string(kSecret) : "");
    line.resize(kLine - 1, '.');
    pattern += line + "\n";
  }
  return pattern;
}

double PeakRssMb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  const bool check = argc > 1 && std::strcmp(argv[1], "--check") == 0;
  char dir[] = "/tmp/ladle_log_bench.XXXXXX";
  if (mkdtemp(dir) == nullptr) return 2;
  const std::string path = std::string(dir) + "/logs/1/build/compile.log";
  const std::string pattern = MakePattern();

  ladle::runner::SecretMasker masker({kSecret});
  uint64_t lines = 0;
  ladle::runner::StepLogWriter writer(&masker,
                                      [&lines](OutputStream, std::string_view) { ++lines; });
  ladle::Status s = writer.Open(path);
  const auto start = std::chrono::steady_clock::now();
  for (size_t done = 0; s.ok() && done < kTotal; done += kChunk) {
    writer.Write(OutputStream::kStdout,
                 std::string_view(pattern).substr(done % pattern.size(), kChunk));
  }
  if (s.ok()) s = writer.Close();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  struct stat info {};
  ::stat(path.c_str(), &info);
  std::string cleanup = std::string("rm -rf ") + dir;
  if (std::system(cleanup.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", dir);
  // Every record is "o " + line + "\n", each secret shrunk to "***".
  size_t secrets = 0;
  for (size_t at = 0; (at = pattern.find(kSecret, at)) != std::string::npos; ++at) ++secrets;
  secrets *= kTotal / pattern.size();  // the pattern fits kTotal a whole number of times
  const uint64_t expected = kTotal / kLine * (kLine + 2) - secrets * (sizeof kSecret - 1 - 3);
  if (!s.ok() || lines != kTotal / kLine || static_cast<uint64_t>(info.st_size) != expected) {
    std::fprintf(stderr, "log write failed: %s (%llu lines, %lld bytes)\n",
                 s.ToString().c_str(), static_cast<unsigned long long>(lines),
                 static_cast<long long>(info.st_size));
    return 2;
  }
  const double mb_per_s = kTotal / 1e6 / secs;
  const double rss = PeakRssMb();
  std::printf("log write: %.0f MB/s (target >= %.0f MB/s), peak RSS %.1f MB (target < %.0f MB)\n",
              mb_per_s, kTargetMbPerS, rss, kTargetRssMb);
  return check && (mb_per_s < kTargetMbPerS || rss >= kTargetRssMb) ? 1 : 0;
}
