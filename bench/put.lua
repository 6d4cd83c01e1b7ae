-- wrk script of bench/writes.py: PUTs read from a file of "PATH<TAB>JSON BODY" lines, each sent once
-- (the file holds more requests than a run sends; "wrapped" says when it did not), every thread
-- taking its own lines. Arguments: FILE AUTHORIZATION THREADS. Prints one line "WRK_JSON {...}".
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(args[3])
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = args[2] }
  requests = {}
  sent = 0
  local n = 0
  for line in io.lines(args[1]) do
    if n % nthreads == id then
      local tab = line:find("\t", 1, true)
      table.insert(requests, wrk.format("PUT", line:sub(1, tab - 1), headers, line:sub(tab + 1)))
    end
    n = n + 1
  end
  count = #requests
end

function request()
  sent = sent + 1
  return requests[(sent - 1) % #requests + 1]
end

function done(summary, latency, _requests)
  local wrapped = false
  for _, thread in ipairs(threads) do
    if thread:get("sent") > thread:get("count") then wrapped = true end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"max_us":%d,"mean_us":%.1f,"wrapped":%s}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    tostring(wrapped)))
end
