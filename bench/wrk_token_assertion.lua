-- wrk: POST /token with private_key_jwt (RFC 7523 §2.2). Every request carries a fresh client
-- assertion (unique jti), read from a file of pre-generated assertions, one per line; each wrk
-- thread takes every n-th line so no assertion is sent twice.
-- Env: TW_ASSERTIONS = path of the file, TW_BODY = the form body without the assertion,
--      TW_THREADS = wrk's -t value.
-- When a thread runs out it re-sends its last assertion (the server must reject the replay);
-- done() reports how many requests found the file exhausted so the bench can flag the run.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk_report.lua")

local ASSERTION_TYPE = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(os.getenv("TW_THREADS") or "1")
  local path = assert(os.getenv("TW_ASSERTIONS"), "TW_ASSERTIONS not set")
  local me = tid or 0
  prefix = assert(os.getenv("TW_BODY"), "TW_BODY not set")
    .. "&client_assertion_type=" .. ASSERTION_TYPE .. "&client_assertion="
  headers = {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Accept"] = "application/json",
  }
  lines = {}
  local n = 0
  for line in io.lines(path) do
    if n % nthreads == me then lines[#lines + 1] = line end
    n = n + 1
  end
  available = #lines
  used = 0
  exhausted = 0
end

function request()
  used = used + 1
  local assertion = lines[used]
  if assertion == nil then
    exhausted = exhausted + 1
    assertion = lines[#lines]
  end
  return wrk.format("POST", nil, headers, prefix .. assertion)
end

function done(summary, latency, requests)
  local available, exhausted_total = 0, 0
  for _, thread in ipairs(threads) do
    available = available + thread:get("available")
    exhausted_total = exhausted_total + thread:get("exhausted")
  end
  tw_report(summary, latency,
    string.format("assertions=%d exhausted=%d", available, exhausted_total))
end
