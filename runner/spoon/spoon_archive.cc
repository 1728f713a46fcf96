#include "runner/spoon/spoon_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace ladle::runner::spoon {

namespace {

struct Writer {
  std::string* out;
  size_t entries = 0;
  bool too_large = false;
};

la_ssize_t OnWrite(struct archive*, void* data, const void* buffer, size_t length) {
  auto* w = static_cast<Writer*>(data);
  if (w->out->size() + length > kMaxCopyBytes + (1 << 20)) {
    w->too_large = true;
    return -1;
  }
  w->out->append(static_cast<const char*>(buffer), length);
  return static_cast<la_ssize_t>(length);
}

class Archive {
 public:
  explicit Archive(std::string* out) : a_(archive_write_new()), w_{out} {
    archive_write_set_format_pax_restricted(a_);
    archive_write_set_bytes_in_last_block(a_, 1);
    open_ = archive_write_open(a_, &w_, nullptr, OnWrite, nullptr) == ARCHIVE_OK;
  }
  ~Archive() { archive_write_free(a_); }
  Archive(const Archive&) = delete;
  Archive& operator=(const Archive&) = delete;

  Status Error(const std::string& what) const {
    if (w_.too_large) return TooLarge();
    const char* e = archive_error_string(a_);
    return Status::IoError(what + ": " + (e != nullptr ? e : "libarchive failed"));
  }
  Status TooLarge() const {
    return Status::TooLarge("copy: more than " + std::to_string(kMaxCopyBytes >> 20) + " MiB or " +
                            std::to_string(kMaxCopyEntries) + " files (copy less, or use a volume)");
  }

  // One entry; `file` is read for a regular file (its content), `link` is a
  // symbolic link's target.
  Status Add(const std::string& name, const struct stat& st, const std::string& file, const std::string& link) {
    if (!open_) return Error("copy: start the archive");
    if (++w_.entries > kMaxCopyEntries) return TooLarge();
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    archive_entry_set_perm(e.get(), st.st_mode & 07777);
    archive_entry_set_mtime(e.get(), st.st_mtime, 0);
    int fd = -1;
    if (S_ISDIR(st.st_mode)) {
      archive_entry_set_filetype(e.get(), AE_IFDIR);
    } else if (S_ISLNK(st.st_mode)) {
      archive_entry_set_filetype(e.get(), AE_IFLNK);
      archive_entry_set_symlink(e.get(), link.c_str());
    } else {
      fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return Status::FromErrno("copy: read " + file, errno);
      archive_entry_set_filetype(e.get(), AE_IFREG);
      archive_entry_set_size(e.get(), st.st_size);
    }
    Status s = Write(e.get(), fd, file, st.st_size);
    if (fd >= 0) ::close(fd);
    return s;
  }

  Status Finish() {
    if (archive_write_close(a_) != ARCHIVE_OK) return Error("copy: end the archive");
    return Status::OK();
  }

 private:
  Status Write(archive_entry* e, int fd, const std::string& file, off_t size) {
    if (archive_write_header(a_, e) != ARCHIVE_OK) return Error("copy: " + file);
    if (fd < 0) return Status::OK();
    char buf[65536];
    off_t left = size;
    while (left > 0) {
      ssize_t n = ::read(fd, buf, static_cast<size_t>(std::min<off_t>(left, sizeof(buf))));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::FromErrno("copy: read " + file, errno);
      if (n == 0) return Status::IoError("copy: " + file + " got shorter while it was read");
      if (archive_write_data(a_, buf, static_cast<size_t>(n)) != n) return Error("copy: " + file);
      left -= n;
    }
    return Status::OK();
  }

  struct archive* a_;
  Writer w_;
  bool open_ = false;
};

Status AddTree(Archive* ar, const std::string& path, const std::string& name, int depth) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return Status::FromErrno("copy: " + path, errno);
  if (depth > 256) return Status::TooLarge("copy: " + path + " is more than 256 folders deep");
  if (S_ISLNK(st.st_mode)) {
    std::string link(static_cast<size_t>(std::max<off_t>(st.st_size, 0)) + 256, '\0');
    ssize_t n = ::readlink(path.c_str(), link.data(), link.size());
    if (n < 0) return Status::FromErrno("copy: read the link " + path, errno);
    link.resize(static_cast<size_t>(n));
    return ar->Add(name, st, path, link);
  }
  if (S_ISREG(st.st_mode)) return ar->Add(name, st, path, "");
  if (!S_ISDIR(st.st_mode)) return Status::OK();  // sockets, fifos, devices: not copied
  Status s = ar->Add(name, st, path, "");
  if (!s.ok()) return s;
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return Status::FromErrno("copy: read the folder " + path, errno);
  std::vector<std::string> children;
  while (dirent* d = ::readdir(dir)) {
    if (std::strcmp(d->d_name, ".") == 0 || std::strcmp(d->d_name, "..") == 0) continue;
    children.emplace_back(d->d_name);
    if (children.size() > kMaxCopyEntries) break;
  }
  ::closedir(dir);
  std::sort(children.begin(), children.end());
  for (const std::string& child : children) {
    s = AddTree(ar, path + "/" + child, name + "/" + child, depth + 1);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

}  // namespace

Status BuildCopyArchive(const std::string& host_path, const std::string& target, std::string* tar) {
  tar->clear();
  struct stat st;
  if (::lstat(host_path.c_str(), &st) != 0) return Status::Invalid("copy: the host path " + host_path + " does not exist");
  if (target.empty() || target[0] == '/') return Status::Invalid("copy: bad target '" + target + "'");
  Archive ar(tar);
  // The parent folders the target needs, outermost first.
  struct stat dir_st {};
  dir_st.st_mode = S_IFDIR | 0755;
  dir_st.st_mtime = st.st_mtime;
  for (size_t slash = target.find('/'); slash != std::string::npos; slash = target.find('/', slash + 1)) {
    Status s = ar.Add(target.substr(0, slash), dir_st, "", "");
    if (!s.ok()) return s;
  }
  Status s = AddTree(&ar, host_path, target, 0);
  if (s.ok()) s = ar.Finish();
  if (!s.ok()) tar->clear();
  return s;
}

}  // namespace ladle::runner::spoon
