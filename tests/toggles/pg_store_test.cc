// The PostgreSQL toggle store as replicas use it (toggles/server/pg_store.h):
// two stores on one database, each with its listener. The tests every store
// passes are store_test.cc's, run on both stores.
#include "toggles/server/pg_store.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/pg.h"
#include "tests/pg_util.h"
#include "toggles/server/store.h"

namespace ladle::toggles {
namespace {

using Clock = std::chrono::steady_clock;

Toggle MakeToggle(const std::string& key) {
  Toggle t;
  Status s = ParseToggleText("{\"key\": \"" + key + "\"}", &t);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return t;
}

bool EnabledIn(const ToggleStore& store, const std::string& key) {
  const CompiledToggle* c = store.GetSnapshot()->Find(key);
  return c != nullptr && c->toggle().environments.count("production") &&
         c->toggle().environments.at("production").enabled;
}

// What a store's subscriber (the SSE stream) received, for a test to wait on.
class Subscriber {
 public:
  explicit Subscriber(ToggleStore* store) : store_(store) {
    id_ = store->OnChange([this](const AuditEvent& e) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(e.revision);
      at_.push_back(Clock::now());
      cv_.notify_all();
    });
  }
  ~Subscriber() { store_->RemoveListener(id_); }

  // Waits up to `limit` for revision `rev`; when it arrived, or nullopt.
  std::optional<Clock::time_point> WaitFor(int64_t rev, std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> lock(mu_);
    std::optional<Clock::time_point> at;
    cv_.wait_for(lock, limit, [&] {
      auto it = std::find(events_.begin(), events_.end(), rev);
      if (it != events_.end()) at = at_[it - events_.begin()];
      return at.has_value();
    });
    return at;
  }
  std::vector<int64_t> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  ToggleStore* store_;
  int64_t id_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int64_t> events_;
  std::vector<Clock::time_point> at_;
};

class PgStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LADLE_REQUIRE_POSTGRES();
    uri_ = testing::PostgresServer::Get()->CreateDatabase(
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_TRUE(ToggleStore::Open(uri_, &a_).ok());
    ASSERT_TRUE(ToggleStore::Open(uri_, &b_).ok());
  }

  // The listening connections of this test's database.
  int Listeners() {
    PgResult r;
    Status s = testing::PostgresServer::Get()->Admin(
        std::string("SELECT count(*) FROM pg_stat_activity WHERE application_name = '") +
            kToggleListenerName + "' AND datname = '" + uri_.substr(uri_.rfind('/') + 1) + "'",
        &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    int64_t n = 0;
    if (s.ok()) {
      EXPECT_TRUE(r.Int64(0, 0, &n).ok());
    }
    return static_cast<int>(n);
  }

  std::string uri_;
  std::unique_ptr<ToggleStore> a_, b_;  // two replicas
};

TEST_F(PgStoreTest, AFlipOnOneReplicaReachesTheOthersSnapshotAndSubscriber) {
  WriteResult r;
  ASSERT_TRUE(a_->Create(MakeToggle("k"), "alice", &r).ok());
  ASSERT_TRUE(b_->Refresh().ok());
  Subscriber sub(b_.get());
  constexpr int kFlips = 40;
  std::vector<double> ms, after_commit;
  for (int i = 0; i < kFlips; ++i) {
    const bool on = i % 2 == 0;
    const auto start = Clock::now();
    ASSERT_TRUE(a_->Flip("k", "production", on, std::nullopt, "alice", &r).ok());
    const auto committed = Clock::now();
    auto at = sub.WaitFor(r.toggle.revision, std::chrono::seconds(5));
    ASSERT_TRUE(at.has_value()) << "revision " << r.toggle.revision << " never reached b";
    // The snapshot includes a change before listeners hear of it.
    EXPECT_EQ(on, EnabledIn(*b_, "k"));
    EXPECT_GE(b_->CurrentRevision(), r.toggle.revision);
    ms.push_back(std::chrono::duration<double, std::milli>(*at - start).count());
    after_commit.push_back(std::chrono::duration<double, std::milli>(*at - committed).count());
  }
  std::sort(ms.begin(), ms.end());
  std::sort(after_commit.begin(), after_commit.end());
  // For docs/toggles.md "Store" (a figure, not a pass mark: the bound above is 5 s).
  std::printf(
      "flip on a -> b's subscriber: median %.2f ms, max %.2f ms over %d flips"
      " (from a's commit: median %.2f ms)\n",
      ms[ms.size() / 2], ms.back(), kFlips, after_commit[after_commit.size() / 2]);
  std::vector<int64_t> expected;
  for (int i = 0; i < kFlips; ++i) expected.push_back(2 + i);
  EXPECT_EQ(expected, sub.events());
}

TEST_F(PgStoreTest, ALostListenerReconnectsAndCatchesUp) {
  WriteResult r;
  ASSERT_TRUE(a_->Create(MakeToggle("k"), "alice", &r).ok());
  ASSERT_TRUE(b_->Refresh().ok());
  Subscriber sub(b_.get());
  // Each store's listener connects on its own thread: wait for both (a
  // machine under load was seen to need more than the test's first look).
  for (int i = 0; i < 500 && Listeners() != 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(2, Listeners());
  // Both listeners go; the flips land while they are away.
  ASSERT_TRUE(testing::PostgresServer::Get()
                  ->Admin(std::string("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                      " WHERE application_name = '") +
                          kToggleListenerName + "' AND datname = '" +
                          uri_.substr(uri_.rfind('/') + 1) + "'")
                  .ok());
  ASSERT_TRUE(a_->Flip("k", "production", true, std::nullopt, "alice", &r).ok());
  ASSERT_TRUE(a_->Patch("k", ToggleFields{std::nullopt, std::string("after the loss"),
                                          std::nullopt},
                        std::nullopt, "alice", &r)
                  .ok());
  ASSERT_TRUE(sub.WaitFor(3, std::chrono::seconds(10)).has_value())
      << "b never caught up; it saw " << sub.events().size() << " events";
  EXPECT_TRUE(EnabledIn(*b_, "k"));
  // Each event once, in order, whether it came by notification or catch-up.
  std::vector<int64_t> got = sub.events();
  got.erase(std::remove(got.begin(), got.end(), 1), got.end());
  EXPECT_EQ((std::vector<int64_t>{2, 3}), got);
  for (int i = 0; i < 100 && Listeners() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(2, Listeners());
  // And it listens again: a later flip arrives by notification.
  ASSERT_TRUE(a_->Flip("k", "production", false, std::nullopt, "alice", &r).ok());
  EXPECT_TRUE(sub.WaitFor(4, std::chrono::seconds(5)).has_value());
}

TEST_F(PgStoreTest, ALostStoreConnectionReconnectsOnTheNextWrite) {
  WriteResult r;
  ASSERT_TRUE(b_->Create(MakeToggle("k"), "alice", &r).ok());
  ASSERT_TRUE(testing::PostgresServer::Get()
                  ->Admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE application_name = 'ladle' AND datname = '" +
                          uri_.substr(uri_.rfind('/') + 1) + "'")
                  .ok());
  Status s = b_->Flip("k", "production", true, std::nullopt, "alice", &r);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(2, r.toggle.revision);
}

TEST_F(PgStoreTest, ConcurrentWritersOnTwoReplicasGetConsistentRevisions) {
  WriteResult r;
  ASSERT_TRUE(a_->Create(MakeToggle("shared"), "alice", &r).ok());
  ASSERT_TRUE(b_->Refresh().ok());
  Subscriber sub_a(a_.get()), sub_b(b_.get());
  constexpr int kThreads = 2, kFlips = 50;
  std::atomic<int> changed{0}, failed{0};
  std::vector<std::thread> threads;
  for (ToggleStore* store : {a_.get(), b_.get()}) {
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, store, t] {
        for (int i = 0; i < kFlips; ++i) {
          WriteResult w;
          Status s = store->Flip("shared", "production", (i + t) % 2 == 0, std::nullopt, "w", &w);
          if (!s.ok()) ++failed;
          if (s.ok() && w.changed) ++changed;
        }
      });
    }
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(0, failed.load());
  const int64_t last = 1 + changed.load();
  ASSERT_TRUE(sub_a.WaitFor(last, std::chrono::seconds(10)).has_value());
  ASSERT_TRUE(sub_b.WaitFor(last, std::chrono::seconds(10)).has_value());
  std::vector<int64_t> expected;
  for (int64_t rev = 2; rev <= last; ++rev) expected.push_back(rev);
  // Every replica's subscriber: every change once, in revision order.
  EXPECT_EQ(expected, sub_a.events());
  EXPECT_EQ(expected, sub_b.events());
  std::vector<AuditEvent> events;
  ASSERT_TRUE(b_->Events(0, 0, &events).ok());
  ASSERT_EQ(static_cast<size_t>(last), events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(static_cast<int64_t>(i + 1), events[i].revision);
  }
  EXPECT_EQ(EnabledIn(*a_, "shared"), EnabledIn(*b_, "shared"));
}

TEST(PgStoreOpenTest, ADatabaseThatDoesNotAnswerIsUnavailableNamingIt) {
  const std::string uri = "postgresql://ladle:secret@127.0.0.1:" +
                          std::to_string(testing::FreePort()) + "/nothing";
  std::unique_ptr<ToggleStore> store;
  Status s = ToggleStore::Open(uri, &store);
  EXPECT_EQ(Code::kUnavailable, s.code()) << s.ToString();
  EXPECT_NE(std::string::npos, s.message().find("postgresql://ladle:***@127.0.0.1:"))
      << s.message();
  EXPECT_EQ(std::string::npos, s.message().find("secret")) << s.message();
}

}  // namespace
}  // namespace ladle::toggles
