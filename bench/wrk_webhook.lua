-- wrk script: POST Alertmanager v4 webhooks with a fresh fingerprint in every request.
-- Environment: BENCH_TEMPLATE (file holding a payload template with the SEQSEQSE placeholder),
-- BENCH_TOKEN (bearer token, optional). Each wrk thread numbers its requests in its own range.
local pieces = {}
local counter = 0
local base = 0
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(os.getenv("BENCH_TEMPLATE"), "rb"))
  local template = f:read("*a")
  f:close()
  -- Split once around the placeholder; each request joins the pieces with its sequence number
  -- (table.concat is far cheaper than gsub over a 70 kB body).
  local start = 1
  while true do
    local i, j = template:find("SEQSEQSE", start, true)
    if not i then break end
    table.insert(pieces, template:sub(start, i - 1))
    start = j + 1
  end
  table.insert(pieces, template:sub(start))
  base = (tonumber(thread_id) or 1) * 0x10000000
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["User-Agent"] = "Alertmanager/0.25.0"
  local token = os.getenv("BENCH_TOKEN")
  if token and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
end

function request()
  counter = counter + 1
  local body = table.concat(pieces, string.format("%08x", base + counter))
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local codes = {}
  io.write("WRK_JSON ")
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout))
  io.write(string.format(
    '"latency_ms": {"p50": %.4f, "p90": %.4f, "p99": %.4f, "p999": %.4f, "max": %.4f, "mean": %.4f}}\n',
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000, latency.mean / 1000))
end
