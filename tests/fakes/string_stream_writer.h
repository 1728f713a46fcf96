// A StreamWriter that keeps what is sent in memory: for tests of streaming
// handlers and of SseHub without a socket. Test-only (ladle_test_fakes).
#ifndef LADLE_TESTS_FAKES_STRING_STREAM_WRITER_H_
#define LADLE_TESTS_FAKES_STRING_STREAM_WRITER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "core/http.h"

namespace ladle {

// A StreamWriter that keeps what is sent in memory: for tests of streaming
// handlers and of SseHub without a socket.
class StringStreamWriter : public StreamWriter {
 public:
  explicit StringStreamWriter(size_t max_bytes = SIZE_MAX) : max_bytes_(max_bytes) {}
  using StreamWriter::Send;
  // Over max_bytes in total, the writer closes itself and returns false,
  // as a slow client's stream does.
  bool Send(std::shared_ptr<const std::string> data) override;
  void Close() override;
  bool closed() const override;
  size_t queued_bytes() const override { return 0; }
  // Everything sent so far.
  std::string data() const;

 private:
  mutable std::mutex mu_;
  size_t max_bytes_;
  std::string data_;
  bool closed_ = false;
};

}  // namespace ladle

#endif  // LADLE_TESTS_FAKES_STRING_STREAM_WRITER_H_
