#include "runner/store/step_log.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace ladle::runner {
namespace {

using env::OutputStream;
constexpr OutputStream kOut = OutputStream::kStdout;
constexpr OutputStream kErr = OutputStream::kStderr;
constexpr size_t kMax = StepLogWriter::kMaxRecord;

class StepLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ladle_step_log_test.XXXXXX";
    ASSERT_NE(nullptr, mkdtemp(tmpl));
    dir_ = tmpl;
    path_ = dir_ + "/logs/1/build/compile.log";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A writer on path_ that records every line it hands on as "o:TEXT".
  std::unique_ptr<StepLogWriter> NewWriter(const SecretMasker* masker = nullptr) {
    auto writer = std::make_unique<StepLogWriter>(
        masker, [this](OutputStream stream, std::string_view line) {
          lines_.push_back((stream == kErr ? "e:" : "o:") + std::string(line));
        });
    Status s = writer->Open(path_);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return writer;
  }

  std::string File() const {
    std::ifstream in(path_, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // The texts of all records of one stream, joined: what a long line became.
  std::string Joined(OutputStream stream) {
    uint64_t offset = 0;
    std::vector<LogRecord> records;
    EXPECT_TRUE(ReadLogRecords(path_, &offset, &records).ok());
    std::string out;
    for (const LogRecord& r : records) {
      EXPECT_LE(r.text.size(), kMax);
      if (r.stream == stream) out += r.text;
    }
    return out;
  }

  // Writes `data` in chunks of `chunk` bytes.
  static void WriteChunked(StepLogWriter* w, OutputStream stream, std::string_view data,
                           size_t chunk) {
    for (size_t i = 0; i < data.size(); i += chunk) w->Write(stream, data.substr(i, chunk));
  }

  std::string dir_, path_;
  std::vector<std::string> lines_;
};

TEST_F(StepLogTest, SeparatesStreams) {
  auto w = NewWriter();
  w->Write(kOut, "one\n");
  w->Write(kErr, "two\n");
  w->Write(kOut, "three\nfour\n");
  ASSERT_TRUE(w->Close().ok());
  EXPECT_EQ("o one\ne two\no three\no four\n", File());
  EXPECT_EQ((std::vector<std::string>{"o:one", "e:two", "o:three", "o:four"}), lines_);
  EXPECT_EQ(File().size(), w->bytes_written());
}

TEST_F(StepLogTest, JoinsPartialLinesAcrossChunks) {
  auto w = NewWriter();
  w->Write(kOut, "hel");
  w->Write(kOut, "lo\nwor");
  w->Write(kOut, "ld\n\n");
  ASSERT_TRUE(w->Close().ok());
  EXPECT_EQ("o hello\no world\no \n", File());
}

TEST_F(StepLogTest, InterleavedPartialLinesDoNotMix) {
  auto w = NewWriter();
  w->Write(kOut, "out-1");
  w->Write(kErr, "err-1");
  w->Write(kOut, " more\nout-2");
  w->Write(kErr, " more\n");
  w->Write(kOut, " end\n");
  ASSERT_TRUE(w->Close().ok());
  EXPECT_EQ("o out-1 more\ne err-1 more\no out-2 end\n", File());
}

TEST_F(StepLogTest, CloseWritesUnfinishedLines) {
  auto w = NewWriter();
  w->Write(kOut, "no newline");
  w->Write(kErr, "nor here");
  ASSERT_TRUE(w->Close().ok());
  EXPECT_EQ("o no newline\ne nor here\n", File());
  ASSERT_TRUE(w->Close().ok());  // idempotent
}

TEST_F(StepLogTest, CompleteLinesAreVisibleBeforeClose) {
  auto w = NewWriter();
  w->Write(kOut, "ready\nhalf");
  uint64_t offset = 0;
  std::vector<LogRecord> records;
  ASSERT_TRUE(ReadLogRecords(path_, &offset, &records).ok());
  ASSERT_EQ(1u, records.size());
  EXPECT_EQ("ready", records[0].text);
  EXPECT_EQ(8u, offset);
}

TEST_F(StepLogTest, NoteIsAStderrRecord) {
  SecretMasker masker({"hunter2"});
  auto w = NewWriter(&masker);
  w->Write(kErr, "partial");
  w->Note("attempt 2 of 3");
  w->Note("two\nlines with hunter2");
  w->Write(kErr, " line\n");
  ASSERT_TRUE(w->Close().ok());
  EXPECT_EQ(
      "e ladle: attempt 2 of 3\ne ladle: two\ne ladle: lines with ***\ne partial line\n",
      File());
}

TEST_F(StepLogTest, AppendsToAnExistingLogAndEndsATornRecord) {
  {
    std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
    std::ofstream(path_) << "o first attempt\no torn";
  }
  auto w = NewWriter();
  w->Note("attempt 2");
  ASSERT_TRUE(w->Close().ok());
  EXPECT_EQ("o first attempt\no torn\ne ladle: attempt 2\n", File());
}

TEST_F(StepLogTest, OpenFailsWithContext) {
  StepLogWriter w(nullptr, nullptr);
  std::ofstream(dir_ + "/file") << "x";
  Status s = w.Open(dir_ + "/file/sub/step.log");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string::npos, s.message().find(dir_ + "/file/sub/step.log")) << s.message();
}

TEST_F(StepLogTest, MasksSecretsLongestFirst) {
  SecretMasker masker({"hunter2", "hunter2-long", "ab", ""});
  EXPECT_EQ("pw=*** x *** ab", masker.Mask("pw=hunter2-long x hunter2 ab"));
  EXPECT_EQ("******", masker.Mask("hunter2hunter2"));
  EXPECT_EQ("nothing here", masker.Mask("nothing here"));
  EXPECT_EQ(12u, masker.max_length());
  EXPECT_TRUE(SecretMasker({"ab", "x"}).empty());
}

TEST_F(StepLogTest, MasksMultiLineSecretsLineByLine) {
  SecretMasker masker({"-----BEGIN KEY-----\r\nc2VjcmV0\nok\n"});
  auto w = NewWriter(&masker);
  w->Write(kOut, "-----BEGIN KEY-----\nc2VjcmV0\nok\n");
  ASSERT_TRUE(w->Close().ok());
  EXPECT_EQ("o ***\no ***\no ok\n", File());  // "ok" is too short to mask
}

TEST_F(StepLogTest, MasksSecretSplitAcrossChunks) {
  SecretMasker masker({"s3cr3t-token"});
  auto w = NewWriter(&masker);
  w->Write(kOut, "token=s3cr");
  w->Write(kErr, "s3cr3t-");  // the other stream must not complete it
  w->Write(kOut, "3t-token done\n");
  w->Write(kErr, "token\n");
  ASSERT_TRUE(w->Close().ok());
  EXPECT_EQ("o token=*** done\ne ***\n", File());
  EXPECT_EQ((std::vector<std::string>{"o:token=*** done", "e:***"}), lines_);
}

TEST_F(StepLogTest, MasksSecretStraddlingTheRecordSplit) {
  const std::string secret = "supersecret-value";
  SecretMasker masker({secret});
  // The secret starts at every offset around the 64 KiB cut. Chunks of 1
  // and 7 bytes also put the point where buffered text gets masked (just past
  // 64 KiB of raw input) inside the secret.
  for (size_t start = kMax - secret.size() - 2; start <= kMax + 2; ++start) {
    for (size_t chunk : {size_t{1}, size_t{7}, size_t{1000}, size_t{1} << 20}) {
      SCOPED_TRACE("start " + std::to_string(start) + " chunk " + std::to_string(chunk));
      std::filesystem::remove(path_);
      const std::string line = std::string(start, 'x') + secret + std::string(70000, 'y');
      auto w = NewWriter(&masker);
      WriteChunked(w.get(), kOut, line + "\n", chunk);
      ASSERT_TRUE(w->Close().ok());
      EXPECT_EQ(std::string::npos, File().find("supersecret"));
      EXPECT_EQ(std::string::npos, File().find("-value"));
      EXPECT_EQ(masker.Mask(line), Joined(kOut));
    }
  }
}

TEST_F(StepLogTest, StreamedMaskingEqualsMaskingWholeLines) {
  // Overlapping secrets and a tiny alphabet make matches everywhere.
  SecretMasker masker({"abab", "bab", "aaab", "ba\nbb"});
  std::mt19937 rng(7);
  for (int round = 0; round < 40; ++round) {
    std::filesystem::remove(path_);
    std::string text;
    const size_t size = round % 2 ? 200000 : 3000;
    for (size_t i = 0; i < size; ++i) text.push_back("ab\n"[rng() % (round % 3 ? 2 : 3)]);
    auto w = NewWriter(&masker);
    for (size_t i = 0; i < text.size();) {
      const size_t n = 1 + rng() % 9000;
      w->Write(kOut, std::string_view(text).substr(i, n));
      i += n;
    }
    ASSERT_TRUE(w->Close().ok());
    // Each line masked whole, then cut into records: joining them back
    // gives the masked line (records of one line are consecutive).
    std::string expected;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) expected += masker.Mask(line);
    EXPECT_EQ(expected, Joined(kOut)) << "round " << round;
  }
}

TEST_F(StepLogTest, TenMegabyteLineBecomesBoundedRecords) {
  const std::string line(10 << 20, 'a');
  auto w = NewWriter();
  w->Write(kOut, line);  // one huge chunk, no newline yet
  w->Write(kOut, "\nnext\n");
  ASSERT_TRUE(w->Close().ok());
  uint64_t offset = 0;
  std::vector<LogRecord> records;
  ASSERT_TRUE(ReadLogRecords(path_, &offset, &records).ok());
  ASSERT_EQ(161u, records.size());  // 160 records of 64 KiB, then "next"
  size_t total = 0;
  for (size_t i = 0; i + 1 < records.size(); ++i) {
    EXPECT_EQ(kMax, records[i].text.size());
    total += records[i].text.size();
  }
  EXPECT_EQ(line.size(), total);
  EXPECT_EQ("next", records.back().text);
}

TEST_F(StepLogTest, LineOfExactlyOneRecordIsOneRecord) {
  auto w = NewWriter();
  WriteChunked(w.get(), kOut, std::string(kMax, 'z') + "\n", 1000);
  WriteChunked(w.get(), kOut, std::string(2 * kMax, 'z') + "\n", 7000);
  ASSERT_TRUE(w->Close().ok());
  ASSERT_EQ(3u, lines_.size());
  for (const std::string& l : lines_) EXPECT_EQ(kMax + 2, l.size());
}

TEST_F(StepLogTest, RecordsAreNotCutInsideUtf8Characters) {
  std::string line;
  while (line.size() < 3 * kMax) line += "\xc3\xa9\xe2\x82\xac";  // é€: 2 + 3 bytes
  auto w = NewWriter();
  w->Write(kOut, line + "\n");
  ASSERT_TRUE(w->Close().ok());
  ASSERT_GT(lines_.size(), 1u);
  for (const std::string& record : lines_) {
    const unsigned char first = static_cast<unsigned char>(record[2]);
    EXPECT_NE(0x80, first & 0xC0) << "record starts inside a character";
  }
  EXPECT_EQ(line, Joined(kOut));
}

TEST_F(StepLogTest, ReadsFromAnOffsetWithAnIncompleteLastLine) {
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
  std::ofstream(path_, std::ios::binary) << "o a\ne b\no inc";
  uint64_t offset = 0;
  std::vector<LogRecord> records;
  ASSERT_TRUE(ReadLogRecords(path_, &offset, &records).ok());
  ASSERT_EQ(2u, records.size());
  EXPECT_EQ(kOut, records[0].stream);
  EXPECT_EQ("a", records[0].text);
  EXPECT_EQ(kErr, records[1].stream);
  EXPECT_EQ("b", records[1].text);
  EXPECT_EQ(8u, offset);

  ASSERT_TRUE(ReadLogRecords(path_, &offset, &records).ok());  // nothing new yet
  EXPECT_TRUE(records.empty());
  EXPECT_EQ(8u, offset);

  std::ofstream(path_, std::ios::app | std::ios::binary) << "omplete\ngarbage\n";
  ASSERT_TRUE(ReadLogRecords(path_, &offset, &records).ok());
  ASSERT_EQ(2u, records.size());
  EXPECT_EQ("incomplete", records[0].text);
  EXPECT_EQ("garbage", records[1].text);  // not a record: kept whole as stdout
  EXPECT_EQ(File().size(), offset);
}

TEST_F(StepLogTest, ReadPagesWithMaxBytes) {
  auto w = NewWriter();
  for (int i = 0; i < 50000; ++i) w->Write(kOut, "line " + std::to_string(i) + "\n");
  ASSERT_TRUE(w->Close().ok());
  uint64_t offset = 0;
  std::vector<LogRecord> records;
  size_t total = 0, pages = 0;
  do {
    ASSERT_TRUE(ReadLogRecords(path_, &offset, &records, 100000).ok());
    if (pages == 0) {
      EXPECT_EQ("line 0", records.front().text);
    }
    total += records.size();
    ++pages;
  } while (!records.empty());
  EXPECT_EQ(50000u, total);
  EXPECT_GT(pages, 5u);
  EXPECT_EQ(File().size(), offset);
}

TEST_F(StepLogTest, ReadingAMissingLogIsNotFound) {
  uint64_t offset = 0;
  std::vector<LogRecord> records;
  EXPECT_EQ(Code::kNotFound, ReadLogRecords(dir_ + "/none.log", &offset, &records).code());
}

TEST_F(StepLogTest, StepLogPathIsUnderLogs) {
  EXPECT_EQ("/data/logs/12/test/unit.log", StepLogPath("/data", 12, "test", "unit"));
}

}  // namespace
}  // namespace ladle::runner
