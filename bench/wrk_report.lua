-- wrk `done` hook: one JSON line on stderr, prefixed WRKJSON, with what wrk measured.
--
-- Plain wrk (4.x) has already run stats_correct() on the latency histogram when done() is
-- called: it adds synthetic samples for responses slower than twice the mean per-connection
-- interval, so `histogram_count` can exceed `requests`.
-- Counting the histogram goes through wrk's Lua API, which scans the whole histogram for each
-- distinct value (quadratic): the CPU time it takes is measured (os.clock, process CPU time)
-- and reported as `count_cpu_seconds`, so the bench can subtract it from wrk's CPU time.
done = function(summary, latency, requests)
  local cpu_before = os.clock()
  local recorded = 0
  for i = 1, #latency do
    local _, count = latency(i)
    recorded = recorded + count
  end
  local count_cpu = os.clock() - cpu_before
  local e = summary.errors
  io.stderr:write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "histogram_count": %d, ' ..
    '"count_cpu_seconds": %.6f, "p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, ' ..
    '"max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, summary.bytes, recorded, count_cpu,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
