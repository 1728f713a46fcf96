// SseHub without a socket: StringStreamWriter stands in for a client. The
// hub over a real server is in http_server_test.cc.
#include "core/sse.h"
#include "tests/fakes/string_stream_writer.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace ladle {
namespace {

std::shared_ptr<StringStreamWriter> Writer(size_t max = SIZE_MAX) {
  return std::make_shared<StringStreamWriter>(max);
}

TEST(FormatSseEventTest, Fields) {
  EXPECT_EQ("id: 7\nevent: change\ndata: {\"k\":1}\n\n", FormatSseEvent(7, "change", "{\"k\":1}"));
  EXPECT_EQ("data: hi\n\n", FormatSseEvent(0, "", "hi"));
}

TEST(FormatSseEventTest, SplitsDataLinesAndDropsBreaksInEventNames) {
  EXPECT_EQ("id: 1\nevent: ab\ndata: one\ndata: two\ndata: three\ndata: \n\n",
            FormatSseEvent(1, "a\nb", "one\ntwo\r\nthree\r"));
}

TEST(SseHubTest, PublishesToEverySubscriber) {
  SseHub hub;
  auto a = Writer(), b = Writer();
  hub.Attach(a, std::nullopt);
  hub.Attach(b, std::nullopt);
  EXPECT_EQ(2u, hub.subscriber_count());
  hub.Publish(1, "change", "x");
  EXPECT_EQ("id: 1\nevent: change\ndata: x\n\n", a->data());
  EXPECT_EQ(a->data(), b->data());
}

TEST(SseHubTest, ClosedSubscribersArePruned) {
  SseHub hub;
  auto a = Writer(), b = Writer();
  hub.Attach(a, std::nullopt);
  hub.Attach(b, std::nullopt);
  a->Close();
  EXPECT_EQ(1u, hub.subscriber_count());
  hub.Publish(1, "", "x");
  EXPECT_EQ("", a->data());
  EXPECT_EQ("id: 1\ndata: x\n\n", b->data());
}

TEST(SseHubTest, SlowSubscriberIsDisconnectedOthersKeepReceiving) {
  SseHub hub;
  auto slow = Writer(40), fast = Writer();  // slow: its queue holds 40 bytes
  hub.Attach(slow, std::nullopt);
  hub.Attach(fast, std::nullopt);
  for (uint64_t id = 1; id <= 5; ++id) hub.Publish(id, "", "0123456789");
  EXPECT_TRUE(slow->closed());
  EXPECT_EQ(1u, hub.subscriber_count());
  EXPECT_NE(std::string::npos, fast->data().find("id: 5\n"));
}

TEST(SseHubTest, ReplaysAfterLastEventId) {
  std::vector<SseEvent> store{{1, "change", "a"}, {2, "change", "b"}, {3, "change", "c"}};
  SseHub hub({}, [&](uint64_t after, const SseHub::EmitFn& emit) {
    for (const SseEvent& e : store) {
      if (e.id > after) emit(e);
    }
  });
  auto writer = Writer();
  hub.Attach(writer, 1);
  hub.Publish(4, "change", "d");
  EXPECT_EQ(FormatSseEvent(2, "change", "b") + FormatSseEvent(3, "change", "c") +
                FormatSseEvent(4, "change", "d"),
            writer->data());
}

TEST(SseHubTest, NoLastEventIdNoReplay) {
  int calls = 0;
  SseHub hub({}, [&](uint64_t, const SseHub::EmitFn&) { ++calls; });
  hub.Attach(Writer(), std::nullopt);
  EXPECT_EQ(0, calls);
}

TEST(SseHubTest, EventsPublishedDuringReplayComeAfterItOnce) {
  // The replay reads the store while the publisher adds events 3 and 4: the
  // store already has 3 (committed before published), not yet 4.
  SseHub* hub_ptr = nullptr;
  SseHub hub({}, [&](uint64_t after, const SseHub::EmitFn& emit) {
    hub_ptr->Publish(3, "", "c");  // lands while replaying: held back
    hub_ptr->Publish(4, "", "d");
    for (uint64_t id = after + 1; id <= 3; ++id) emit({id, "", std::string(1, 'a' + id - 1)});
  });
  hub_ptr = &hub;
  auto writer = Writer();
  hub.Attach(writer, 1);
  EXPECT_EQ("id: 2\ndata: b\n\nid: 3\ndata: c\n\nid: 4\ndata: d\n\n", writer->data());
  hub.Publish(4, "", "again");  // an id it has: not sent twice
  hub.Publish(5, "", "e");
  EXPECT_EQ("id: 2\ndata: b\n\nid: 3\ndata: c\n\nid: 4\ndata: d\n\nid: 5\ndata: e\n\n",
            writer->data());
}

TEST(SseHubTest, ReplayThatThrowsStillGoesLive) {
  SseHub hub({}, [](uint64_t, const SseHub::EmitFn& emit) {
    emit({2, "", "b"});
    throw std::runtime_error("database locked");
  });
  auto writer = Writer();
  hub.Attach(writer, 1);
  hub.Publish(3, "", "c");
  EXPECT_EQ("id: 2\ndata: b\n\nid: 3\ndata: c\n\n", writer->data());
}

TEST(SseHubTest, SubscribeReadsLastEventIdHeaderOrQuery) {
  std::vector<uint64_t> asked;
  SseHub hub({}, [&](uint64_t after, const SseHub::EmitFn&) { asked.push_back(after); });
  HttpRequest with_header = HttpRequest::For("GET", "/api/v1/stream");
  with_header.headers.Add("Last-Event-ID", "41");
  HttpResponse response = hub.Subscribe(with_header);
  ASSERT_TRUE(response.is_stream());
  EXPECT_EQ("text/event-stream", response.headers.Get("Content-Type"));
  EXPECT_EQ("no-cache", response.headers.Get("Cache-Control"));
  EXPECT_EQ(": keep-alive\n\n", response.stream_options.keep_alive_data);
  EXPECT_EQ(std::chrono::milliseconds(15000), response.stream_options.keep_alive_interval);
  response.stream->Start(Writer());

  hub.Subscribe(HttpRequest::For("GET", "/s?last_event_id=7")).stream->Start(Writer());
  hub.Subscribe(HttpRequest::For("GET", "/s?last_event_id=junk")).stream->Start(Writer());
  EXPECT_EQ((std::vector<uint64_t>{41, 7}), asked);
  EXPECT_EQ(3u, hub.subscriber_count());
}

TEST(SseHubTest, StreamEndDetachesAndHubMayDieFirst) {
  auto hub = std::make_unique<SseHub>();
  HttpResponse response = hub->Subscribe(HttpRequest::For("GET", "/s"));
  auto writer = Writer();
  response.stream->Start(writer);
  EXPECT_EQ(1u, hub->subscriber_count());
  response.stream->OnClosed();
  EXPECT_EQ(0u, hub->subscriber_count());

  HttpResponse late = hub->Subscribe(HttpRequest::For("GET", "/s"));
  hub.reset();
  auto late_writer = Writer();
  late.stream->Start(late_writer);  // the hub is gone: the stream ends at once
  EXPECT_TRUE(late_writer->closed());
  late.stream->OnClosed();
}

TEST(SseHubTest, RetryLineFirst) {
  SseHub::Options options;
  options.retry = std::chrono::milliseconds(3000);
  SseHub hub(options);
  auto writer = Writer();
  hub.Attach(writer, std::nullopt);
  EXPECT_EQ("retry: 3000\n\n", writer->data());
}

TEST(SseHubTest, CloseAllEndsStreamsAndDestructorRefusesNewOnes) {
  SseHub hub;
  auto a = Writer();
  hub.Attach(a, std::nullopt);
  hub.CloseAll();
  EXPECT_TRUE(a->closed());
  auto b = Writer();
  hub.Attach(b, std::nullopt);  // CloseAll is not forever
  EXPECT_FALSE(b->closed());
}

std::vector<uint64_t> Ids(const std::string& data) {
  std::vector<uint64_t> ids;
  for (size_t at = data.find("id: "); at != std::string::npos; at = data.find("id: ", at + 1)) {
    ids.push_back(std::stoull(data.substr(at + 4)));
  }
  return ids;
}

TEST(SseHubTest, SubscribersJoiningWhilePublishingSeeIdsInOrder) {
  SseHub hub;
  std::vector<std::shared_ptr<StringStreamWriter>> early, late;
  for (int i = 0; i < 10; ++i) hub.Attach(early.emplace_back(Writer()), std::nullopt);
  std::thread publisher([&] {
    for (uint64_t id = 1; id <= 2000; ++id) hub.Publish(id, "", "x");
  });
  for (int i = 0; i < 10; ++i) hub.Attach(late.emplace_back(Writer()), std::nullopt);
  publisher.join();
  for (auto& w : early) EXPECT_EQ(2000u, Ids(w->data()).size());
  for (auto& w : late) {
    std::vector<uint64_t> ids = Ids(w->data());
    for (size_t i = 1; i < ids.size(); ++i) ASSERT_EQ(ids[i - 1] + 1, ids[i]);
  }
}

}  // namespace
}  // namespace ladle
