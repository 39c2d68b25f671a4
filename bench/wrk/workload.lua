-- One wrk script for every workload of bench/load.py, configured by the environment:
--   BENCH_METHOD  GET | POST
--   BENCH_PATHS   file with one request path per line; each request picks one at random
--   BENCH_HEADERS optional extra request headers, "Name: value" lines (e.g. Authorization)
--   BENCH_BODY    optional file with the request body; "@N@" in it is replaced per request by
--                 a unique token (BENCH_RUN-thread-counter), so every created resource is distinct
-- done() prints one line "BENCH_JSON {...}" with counts and latency percentiles (microseconds).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local function slurp(name)
  local f = assert(io.open(name, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function init(args)
  method = os.getenv("BENCH_METHOD") or "GET"
  paths = {}
  for line in io.lines(os.getenv("BENCH_PATHS")) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  local bodyfile = os.getenv("BENCH_BODY") or ""
  if bodyfile ~= "" then body = slurp(bodyfile) end
  headers = { ["Accept"] = "application/fhir+json" }
  if body then headers["Content-Type"] = "application/fhir+json" end
  for line in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name then headers[name] = value end
  end
  prefix = (os.getenv("BENCH_RUN") or "run") .. "-" .. tid .. "-"
  counter = 0
  math.randomseed(os.time() * 1000 + tid)
end

function request()
  local path = paths[math.random(#paths)]
  if body then
    counter = counter + 1
    return wrk.format(method, path, headers, (body:gsub("@N@", prefix .. counter)))
  end
  return wrk.format(method, path, headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
