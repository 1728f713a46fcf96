-- wrk script for tests/bench/ofrep_bench.sh: POST an OFREP evaluation with
-- a bearer token, cycling through 100 targeting keys (built once, so wrk's
-- own per-request cost stays a table lookup).
local token = os.getenv("LADLE_BENCH_TOKEN") or ""
local path = os.getenv("LADLE_BENCH_PATH") or "/ofrep/v1/evaluate/flags/bench-rollout"
local requests = {}
local i = 0

function init(args)
  for n = 1, 100 do
    requests[n] = wrk.format("POST", path, {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
    }, '{"context":{"targetingKey":"user-' .. n .. '"}}')
  end
end

function request()
  i = i % 100 + 1
  return requests[i]
end
