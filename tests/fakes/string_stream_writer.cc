#include "tests/fakes/string_stream_writer.h"

namespace ladle {

bool StringStreamWriter::Send(std::shared_ptr<const std::string> data) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_) return false;
  if (data_.size() + data->size() > max_bytes_) {
    closed_ = true;
    return false;
  }
  data_ += *data;
  return true;
}

void StringStreamWriter::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
}

bool StringStreamWriter::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

std::string StringStreamWriter::data() const {
  std::lock_guard<std::mutex> lock(mu_);
  return data_;
}

}  // namespace ladle
