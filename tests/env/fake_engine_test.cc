#include "tests/fakes/fake_engine.h"

#include <signal.h>

#include <chrono>
#include <future>
#include <string>

#include <gtest/gtest.h>

namespace ladle::env {
namespace {

using std::chrono::milliseconds;

class StringSink : public OutputSink {
 public:
  void Write(OutputStream stream, std::string_view data) override {
    (stream == OutputStream::kStdout ? out : err).append(data);
  }
  std::string out, err;
};

StepSpec Spec(const std::string& id, const std::string& script) {
  StepSpec spec;
  spec.id = id;
  spec.script = script;
  return spec;
}

// Runs a step through its whole life; returns its exit status.
ExitStatus RunStep(Engine* engine, const StepSpec& spec, StringSink* sink) {
  std::unique_ptr<Step> step;
  EXPECT_TRUE(engine->Create(spec, &step).ok());
  EXPECT_TRUE(step->Start().ok());
  EXPECT_TRUE(step->Stream(sink).ok());
  ExitStatus status;
  EXPECT_TRUE(step->Wait(&status).ok());
  EXPECT_TRUE(step->Remove().ok());
  return status;
}

TEST(FakeEngineTest, ExitScriptsExitWithTheirCode) {
  FakeEngine engine;
  StringSink sink;
  EXPECT_EQ(3, RunStep(&engine, Spec("a", "exit 3"), &sink).code);
  EXPECT_EQ(0, RunStep(&engine, Spec("b", "make test"), &sink).code);
  EXPECT_EQ("", sink.out + sink.err);
  EXPECT_EQ("fake", engine.Name());
}

TEST(FakeEngineTest, FirstMatchingRuleDecidesByIdOrScript) {
  FakeEngine engine;
  FakeOutcome failing;
  failing.exit_code = 2;
  failing.out = "building\n";
  failing.err = "no space left\n";
  engine.AddRule("build", failing);
  FakeOutcome crashing;
  crashing.signal = SIGSEGV;
  engine.AddRule("./crash", crashing);

  StringSink sink;
  EXPECT_EQ(2, RunStep(&engine, Spec("1/build/x", "true"), &sink).code);
  EXPECT_EQ("building\n", sink.out);
  EXPECT_EQ("no space left\n", sink.err);
  ExitStatus crashed = RunStep(&engine, Spec("1/test/y", "./crash --now"), &sink);
  EXPECT_EQ(SIGSEGV, crashed.signal);
  EXPECT_EQ(128 + SIGSEGV, crashed.code);
  ASSERT_EQ(2u, engine.created().size());
  EXPECT_EQ("1/test/y", engine.created()[1].id);
  EXPECT_EQ((std::vector<std::string>{"1/build/x", "1/test/y"}), engine.removed());
}

TEST(FakeEngineTest, ErrorsComeFromTheOutcome) {
  FakeEngine engine;
  FakeOutcome no_image;
  no_image.create_error = Status::Unavailable("image not found");
  engine.AddRule("pull", no_image);
  FakeOutcome no_start;
  no_start.start_error = Status::Unavailable("cannot start");
  engine.AddRule("start", no_start);
  std::unique_ptr<Step> step;
  EXPECT_EQ("image not found", engine.Create(Spec("pull", ""), &step).message());
  ASSERT_TRUE(engine.Create(Spec("start", ""), &step).ok());
  EXPECT_EQ("cannot start", step->Start().message());
}

TEST(FakeEngineTest, KillCutsALongStepShort) {
  FakeEngine engine;
  FakeOutcome slow;
  slow.duration = std::chrono::seconds(30);
  engine.AddRule("slow", slow);
  std::unique_ptr<Step> step;
  ASSERT_TRUE(engine.Create(Spec("slow", ""), &step).ok());
  ASSERT_TRUE(step->Start().ok());
  auto streamed = std::async(std::launch::async, [&] { return step->Stream(nullptr); });
  EXPECT_EQ(std::future_status::timeout, streamed.wait_for(milliseconds(50)));
  step->Kill(SIGTERM);
  ASSERT_EQ(std::future_status::ready, streamed.wait_for(milliseconds(1000)));
  ExitStatus status;
  ASSERT_TRUE(step->Wait(&status).ok());
  EXPECT_EQ(SIGTERM, status.signal);
  EXPECT_EQ(128 + SIGTERM, status.code);
  EXPECT_EQ((std::vector<FakeKill>{{"slow", SIGTERM}}), engine.kills());
}

TEST(FakeEngineTest, AStepIgnoringTermNeedsKill) {
  FakeEngine engine;
  FakeOutcome stubborn;
  stubborn.duration = std::chrono::seconds(30);
  stubborn.ignores_term = true;
  engine.AddRule("stubborn", stubborn);
  std::unique_ptr<Step> step;
  ASSERT_TRUE(engine.Create(Spec("stubborn", ""), &step).ok());
  ASSERT_TRUE(step->Start().ok());
  auto streamed = std::async(std::launch::async, [&] { return step->Stream(nullptr); });
  step->Kill(SIGTERM);
  EXPECT_EQ(std::future_status::timeout, streamed.wait_for(milliseconds(50)));
  step->Kill(SIGKILL);
  ASSERT_EQ(std::future_status::ready, streamed.wait_for(milliseconds(1000)));
  ExitStatus status;
  ASSERT_TRUE(step->Wait(&status).ok());
  EXPECT_EQ(SIGKILL, status.signal);
}

}  // namespace
}  // namespace ladle::env
