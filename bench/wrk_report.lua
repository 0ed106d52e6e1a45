-- Shared by the tokenward wrk scripts: one machine-readable summary line at the end of a run.
-- Loaded with dofile() from wrk_token.lua and wrk_token_assertion.lua.
--
-- wrk counts a response as a status error when its status is > 399; the bench reports that
-- number as "non-2xx" (the token endpoint never answers 3xx).

function tw_report(summary, latency, extra)
  local e = summary.errors
  io.write(string.format(
    "TW_RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d "
      .. "status=%d connect=%d read=%d write=%d timeout=%d %s\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout, extra or ""))
end
