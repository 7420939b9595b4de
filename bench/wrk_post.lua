-- wrk script of the gateway benchmark: POST a small chat request and print one parseable line.
--
--   wrk ... -s bench/wrk_post.lua http://127.0.0.1:PORT/v1/chat/completions -- MODEL STREAM IDEM [API]
--
-- MODEL  the "model" of the body (ignored by nginx, routed by the gateway)
-- STREAM "1" to ask for an event stream ("stream": true), "0" for a chat.completion
-- IDEM   "1" to send a unique Idempotency-Key per request (a per-thread counter and the start
--        time, so keys never repeat across runs), "0" for none
-- API    "responses" for the same question as a Responses API body (POST it to /v1/responses;
--        "store": false, so the load prices the translation, not the response store)
--
-- Every request carries `Authorization: Bearer sk-bench-key` (LiteLLM, the optional peer, wants
-- the sk- prefix) and a JSON content-type. `done` prints
--   BENCH requests=N duration_us=N bytes=N connect=N read=N write=N status=N timeout=N
--         p50_us=N p90_us=N p99_us=N max_us=N mean_us=N
-- on one line (status counts non-2xx/3xx answers); bench/loads.py parses it.

local threads = {}
local counter = 0
local idempotent = false
local started = os.time()
-- thread_id: a global of each thread's own Lua state, set by setup() in the main state

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local model = args[1] or "bench-json"
  local stream = args[2] == "1"
  idempotent = args[3] == "1"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer sk-bench-key"
  local streamed = stream and ',"stream":true' or ''
  if args[4] == "responses" then
    wrk.body = '{"model":"' .. model .. '","instructions":"You are a helpful assistant.",'
      .. '"input":"Say hello in one short sentence.","max_output_tokens":32,'
      .. '"temperature":0.2,"store":false' .. streamed .. '}'
  else
    wrk.body = '{"model":"' .. model .. '","messages":[{"role":"system","content":"You are a '
      .. 'helpful assistant."},{"role":"user","content":"Say hello in one short sentence."}],'
      .. '"max_tokens":32,"temperature":0.2' .. streamed .. '}'
  end
end

function request()
  if not idempotent then
    return wrk.format()
  end
  counter = counter + 1
  local headers = {}
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
  headers["Idempotency-Key"] = string.format("bench-%d-%d-%d", started, thread_id, counter)
  return wrk.format(nil, nil, headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d "
      .. "timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%d\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, math.floor(latency.mean)))
end
