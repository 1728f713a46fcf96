#include "runner/exec/cache.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <vector>

namespace fs = std::filesystem;

namespace ladle::runner {
namespace {

constexpr size_t kChunk = 1 << 16;
constexpr auto kTempAge = std::chrono::hours(1);
constexpr char kTempPrefix[] = ".tmp-";

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr);
  }
  void Update(const void* data, size_t size) { EVP_DigestUpdate(ctx_.get(), data, size); }
  void Update(const std::string& text) { Update(text.data(), text.size() + 1); }  // with its NUL
  std::string Hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(ctx_.get(), digest, &size);
    static const char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < size; ++i) out += {kHex[digest[i] >> 4], kHex[digest[i] & 15]};
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
};

std::string HashOf(const std::string& text) {
  Sha256 h;
  h.Update(text.data(), text.size());
  return h.Hex();
}

// Relative, without "..": what may be joined to the workspace.
bool InsidePath(const std::string& path) {
  if (path.empty() || path[0] == '/') return false;
  for (size_t start = 0; start <= path.size();) {
    size_t end = std::min(path.find('/', start), path.size());
    if (path.compare(start, end - start, "..") == 0) return false;
    start = end + 1;
  }
  return true;
}

std::string Expand(const std::string& text, const Vars& vars) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    size_t close = text.compare(i, 2, "${") == 0 ? text.find('}', i + 2) : std::string::npos;
    if (close == std::string::npos) {
      out += text[i++];
      continue;
    }
    const std::string name = text.substr(i + 2, close - i - 2);
    std::string value;
    for (const auto& [k, v] : vars)
      if (k == name) value = v;
    out += value;
    i = close + 1;
  }
  return out;
}

Status WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::FromErrno("write", errno);
    data += n;
    size -= static_cast<size_t>(n);
  }
  return Status::OK();
}

struct Entry {
  std::string path;  // relative to the workspace
  struct stat st;
};

// The entries under cache.paths, directories before what they hold.
Status Collect(const Cache& cache, const std::string& root, std::vector<Entry>* entries,
               CacheStats* stats) {
  for (const std::string& path : cache.paths) {
    if (!InsidePath(path)) return Status::Invalid("cache path '" + path + "' leaves the workspace");
    // A parent that is a symbolic link out of the workspace must not bring
    // outside files into the cache.
    std::error_code ec;
    const std::string parent =
        fs::weakly_canonical((fs::path(root) / path).parent_path(), ec).string();
    if (ec || (parent != root && parent.rfind(root + "/", 0) != 0)) continue;
    Entry top{path, {}};
    if (::lstat((root + "/" + path).c_str(), &top.st) != 0) {
      if (errno == ENOENT) continue;
      return Status::FromErrno("cache: " + path, errno);
    }
    entries->push_back(top);
    if (!S_ISDIR(top.st.st_mode)) continue;
    for (fs::recursive_directory_iterator it(root + "/" + path, fs::directory_options::skip_permission_denied, ec), end;
         !ec && it != end; it.increment(ec)) {
      Entry e{fs::path(it->path()).lexically_relative(root).string(), {}};
      if (::lstat(it->path().c_str(), &e.st) != 0) continue;  // gone meanwhile
      entries->push_back(std::move(e));
    }
    if (ec) return Status::IoError("cache: walk " + path + ": " + ec.message());
  }
  for (const Entry& e : *entries) {
    if (S_ISREG(e.st.st_mode)) stats->bytes += e.st.st_size;
    if (!S_ISDIR(e.st.st_mode)) stats->files++;
  }
  return Status::OK();
}

// Writes one regular file's data: exactly st_size bytes, padded with zeros
// when it shrank meanwhile (a short entry would corrupt the archive).
Status WriteFileData(struct archive* a, const std::string& file, int64_t size) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  std::vector<char> buf(kChunk);
  int64_t left = size;
  while (fd >= 0 && left > 0) {
    ssize_t n = ::read(fd, buf.data(), std::min<int64_t>(left, buf.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (archive_write_data(a, buf.data(), n) < 0) {
      ::close(fd);
      return Status::IoError(std::string("cache: archive ") + archive_error_string(a));
    }
    left -= n;
  }
  if (fd >= 0) ::close(fd);
  std::fill(buf.begin(), buf.end(), 0);
  while (left > 0) {
    la_ssize_t n = archive_write_data(a, buf.data(), std::min<int64_t>(left, buf.size()));
    if (n <= 0) return Status::IoError(std::string("cache: archive ") + archive_error_string(a));
    left -= n;
  }
  return Status::OK();
}

Status WriteArchive(int fd, const std::string& root, const std::vector<Entry>& entries,
                    const CacheHooks& hooks) {
  std::unique_ptr<struct archive, int (*)(struct archive*)> a(archive_write_new(),
                                                              archive_write_free);
  archive_write_set_format_pax_restricted(a.get());
  archive_write_set_bytes_per_block(a.get(), kChunk);
  if (archive_write_open_fd(a.get(), fd) != ARCHIVE_OK)
    return Status::IoError(std::string("cache: ") + archive_error_string(a.get()));
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> entry(archive_entry_new(),
                                                                  archive_entry_free);
  int64_t written = 0;
  for (const Entry& e : entries) {
    archive_entry_clear(entry.get());
    archive_entry_copy_pathname(entry.get(), e.path.c_str());
    archive_entry_copy_stat(entry.get(), &e.st);
    const std::string full = root + "/" + e.path;
    if (S_ISLNK(e.st.st_mode)) {
      char target[PATH_MAX];
      ssize_t n = ::readlink(full.c_str(), target, sizeof target - 1);
      if (n < 0) continue;
      target[n] = '\0';
      archive_entry_copy_symlink(entry.get(), target);
    } else if (!S_ISREG(e.st.st_mode) && !S_ISDIR(e.st.st_mode)) {
      continue;  // sockets, fifos, devices: nothing to keep
    }
    if (archive_write_header(a.get(), entry.get()) < ARCHIVE_WARN)
      return Status::IoError("cache: archive " + e.path + ": " + archive_error_string(a.get()));
    if (S_ISREG(e.st.st_mode)) {
      Status s = WriteFileData(a.get(), full, e.st.st_size);
      if (!s.ok()) return s;
    }
    if (hooks.after_entry) hooks.after_entry(++written);
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK)
    return Status::IoError(std::string("cache: ") + archive_error_string(a.get()));
  return Status::OK();
}

Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("cache: open " + dir, errno);
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  return rc == 0 ? Status::OK() : Status::FromErrno("cache: fsync " + dir, saved);
}

Status CopyEntries(struct archive* in, struct archive* out, const std::string& root,
                   CacheStats* stats) {
  struct archive_entry* entry = nullptr;
  while (true) {
    int r = archive_read_next_header(in, &entry);
    if (r == ARCHIVE_EOF) return Status::OK();
    if (r < ARCHIVE_WARN) return Status::IoError(std::string("cache: ") + archive_error_string(in));
    const char* name = archive_entry_pathname(entry);
    std::string path = name ? name : "";
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    if (!InsidePath(path) || archive_entry_hardlink(entry) != nullptr)
      return Status::Invalid("cache: entry '" + path + "' would leave the workspace");
    archive_entry_copy_pathname(entry, (root + "/" + path).c_str());
    if (archive_write_header(out, entry) < ARCHIVE_WARN)
      return Status::IoError("cache: restore " + path + ": " + archive_error_string(out));
    const void* block;
    size_t size;
    la_int64_t offset;
    while ((r = archive_read_data_block(in, &block, &size, &offset)) == ARCHIVE_OK)
      if (archive_write_data_block(out, block, size, offset) < ARCHIVE_WARN)
        return Status::IoError("cache: restore " + path + ": " + archive_error_string(out));
    if (r != ARCHIVE_EOF) return Status::IoError(std::string("cache: ") + archive_error_string(in));
    if (archive_write_finish_entry(out) < ARCHIVE_WARN)
      return Status::IoError("cache: restore " + path + ": " + archive_error_string(out));
    if (archive_entry_filetype(entry) == AE_IFREG) stats->bytes += archive_entry_size(entry);
    if (archive_entry_filetype(entry) != AE_IFDIR) stats->files++;
  }
}

}  // namespace

std::string CacheDir(const std::string& data_dir, const std::string& scope) {
  std::string safe;
  for (char c : scope.empty() ? std::string("default") : scope)
    safe += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ? c : '-';
  if (safe.size() > 60) safe.resize(60);
  return data_dir + "/caches/" + safe + "-" + HashOf(scope).substr(0, 8);
}

std::string CacheFile(const std::string& dir, const std::string& key) {
  return dir + "/" + HashOf(key).substr(0, 32) + ".tar";
}

Status CacheKey(const Cache& cache, const std::string& workspace, const Vars& vars,
                std::string* key) {
  if (cache.key_files.empty()) {
    *key = Expand(cache.key, vars);
    return Status::OK();
  }
  Sha256 h;
  std::vector<char> buf(kChunk);
  for (const std::string& file : cache.key_files) {
    if (!InsidePath(file)) return Status::Invalid("cache key file '" + file + "' leaves the workspace");
    h.Update(file);
    int fd = ::open((workspace + "/" + file).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) return Status::FromErrno("cache key file '" + file + "'", errno);
    h.Update(fd < 0 ? "missing" : "present");
    while (fd >= 0) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int saved = errno;
        ::close(fd);
        return Status::FromErrno("cache key file '" + file + "'", saved);
      }
      if (n == 0) break;
      h.Update(buf.data(), static_cast<size_t>(n));
    }
    if (fd >= 0) ::close(fd);
  }
  std::string prefix = cache.key_prefix.empty() ? "default" : Expand(cache.key_prefix, vars);
  *key = prefix + "-" + h.Hex().substr(0, 20);
  return Status::OK();
}

Status RestoreCache(const std::string& dir, const std::string& key, const std::string& workspace,
                    bool* found, CacheStats* stats) {
  *found = false;
  const std::string file = CacheFile(dir, key);
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? Status::OK() : Status::FromErrno("cache: open " + file, errno);
  *found = true;
  ::futimens(fd, nullptr);  // last used: what retention goes by
  // Symbolic links are refused inside the workspace, not above it.
  char real[PATH_MAX];
  if (::realpath(workspace.c_str(), real) == nullptr) {
    int saved = errno;
    ::close(fd);
    return Status::FromErrno("cache: workspace " + workspace, saved);
  }
  std::unique_ptr<struct archive, int (*)(struct archive*)> in(archive_read_new(), archive_read_free);
  std::unique_ptr<struct archive, int (*)(struct archive*)> out(archive_write_disk_new(),
                                                               archive_write_free);
  archive_read_support_format_tar(in.get());
  archive_write_disk_set_options(out.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                ARCHIVE_EXTRACT_SECURE_NODOTDOT);
  Status s;
  if (archive_read_open_fd(in.get(), fd, kChunk) != ARCHIVE_OK)
    s = Status::IoError("cache: " + file + ": " + archive_error_string(in.get()));
  if (s.ok()) s = CopyEntries(in.get(), out.get(), real, stats);
  if (s.ok() && archive_write_close(out.get()) != ARCHIVE_OK)
    s = Status::IoError(std::string("cache: restore: ") + archive_error_string(out.get()));
  ::close(fd);
  return s;
}

Status SaveCache(const Cache& cache, const std::string& dir, const std::string& key,
                 const std::string& workspace, bool* saved, CacheStats* stats,
                 const CacheHooks& hooks) {
  *saved = false;
  *stats = CacheStats();
  char real[PATH_MAX];
  if (::realpath(workspace.c_str(), real) == nullptr)
    return Status::FromErrno("cache: workspace " + workspace, errno);
  std::vector<Entry> entries;
  Status s = Collect(cache, real, &entries, stats);
  if (!s.ok() || stats->bytes > cache.max_size || entries.empty()) return s;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IoError("cache: create " + dir + ": " + ec.message());
  std::string temp = dir + "/" + kTempPrefix + "XXXXXX";
  int fd = ::mkstemp(temp.data());
  if (fd < 0) return Status::FromErrno("cache: create a file in " + dir, errno);
  ::fchmod(fd, 0644);
  s = WriteArchive(fd, real, entries, hooks);
  if (s.ok() && ::fsync(fd) != 0) s = Status::FromErrno("cache: fsync " + temp, errno);
  if (::close(fd) != 0 && s.ok()) s = Status::FromErrno("cache: close " + temp, errno);
  const std::string file = CacheFile(dir, key);
  if (s.ok() && ::rename(temp.c_str(), file.c_str()) != 0)
    s = Status::FromErrno("cache: rename to " + file, errno);
  if (!s.ok()) {
    ::unlink(temp.c_str());
    return s;
  }
  *saved = true;
  return SyncDir(dir);
}

Status PruneCaches(const std::string& data_dir, std::chrono::seconds older_than, int* removed) {
  *removed = 0;
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (fs::directory_iterator scope(fs::path(data_dir) / "caches", ec), end; !ec && scope != end;
       scope.increment(ec)) {
    std::error_code sec;
    for (fs::directory_iterator it(scope->path(), sec), e; !sec && it != e; it.increment(sec)) {
      const std::string name = it->path().filename().string();
      const bool temp = name.rfind(kTempPrefix, 0) == 0;
      if (!temp && it->path().extension() != ".tar") continue;
      std::error_code tec;
      const auto when = fs::last_write_time(it->path(), tec);
      if (tec || when >= now - (temp ? std::chrono::duration_cast<std::chrono::seconds>(kTempAge)
                                     : older_than))
        continue;
      if (!fs::remove(it->path(), tec) || tec)
        return Status::IoError("prune: remove " + it->path().string() + ": " + tec.message());
      if (!temp) ++*removed;
    }
    fs::remove(scope->path(), sec);  // only when empty
  }
  return Status::OK();
}

std::string RestoreStepCache(const Cache& cache, const std::string& data_dir,
                             const std::string& scope, const std::string& workspace,
                             const Vars& vars) {
  std::string key;
  Status s = CacheKey(cache, workspace, vars, &key);
  if (!s.ok()) return "cache: not restored: " + s.message();
  bool found = false;
  CacheStats stats;
  const auto start = std::chrono::steady_clock::now();
  s = RestoreCache(CacheDir(data_dir, scope), key, workspace, &found, &stats);
  if (!s.ok()) return "cache: " + key + " not restored: " + s.message();
  if (!found) return "cache: none for key " + key + " yet";
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start).count();
  return "cache: restored " + key + " (" + std::to_string(stats.files) + " files, " +
         FormatBytes(stats.bytes) + ", " + std::to_string(ms) + " ms)";
}

std::string SaveStepCache(const Cache& cache, const std::string& data_dir,
                          const std::string& scope, const std::string& workspace,
                          const Vars& vars) {
  std::string key;
  Status s = CacheKey(cache, workspace, vars, &key);
  if (!s.ok()) return "cache: not saved: " + s.message();
  bool saved = false;
  CacheStats stats;
  const auto start = std::chrono::steady_clock::now();
  s = SaveCache(cache, CacheDir(data_dir, scope), key, workspace, &saved, &stats);
  if (!s.ok()) return "cache: " + key + " not saved: " + s.message();
  if (!saved && stats.bytes == 0 && stats.files == 0)
    return "cache: " + key + " not saved: none of its paths exists";
  if (!saved)
    return "cache: " + key + " not saved: " + FormatBytes(stats.bytes) + " is over max_size " +
           FormatBytes(cache.max_size);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start).count();
  return "cache: saved " + key + " (" + std::to_string(stats.files) + " files, " +
         FormatBytes(stats.bytes) + ", " + std::to_string(ms) + " ms)";
}

std::string FormatBytes(int64_t bytes) {
  char text[32];
  if (bytes >= 1000000) std::snprintf(text, sizeof text, "%.1f MB", bytes / 1e6);
  else if (bytes >= 1000) std::snprintf(text, sizeof text, "%.1f kB", bytes / 1e3);
  else std::snprintf(text, sizeof text, "%lld B", static_cast<long long>(bytes));
  return text;
}

}  // namespace ladle::runner
