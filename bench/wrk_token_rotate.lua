-- wrk: POST /token with client_secret_basic, each request from a client chosen at random.
-- Env: TW_CREDS = file of base64("client_id:client_secret"), one per line;
--      TW_BODY = the form body;
--      TW_RATE (optional) = requests per second for the whole run, split over TW_THREADS
--        threads (wrk's -t). Without it wrk sends as fast as the server answers (closed loop).
--        With it, each thread keeps a fixed schedule (slot k at start + k / rate) and delay()
--        holds a connection until the next free slot; a connection that falls behind sends at
--        once, so the rate is kept after a stall. wrk's latency is still measured from the
--        moment a request is sent (not from its slot): done() reports how many requests left
--        more than 10 ms after their slot ("late"), which is where that hides.
-- The requests are built once per thread in init(), so choosing one costs a random number.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk_report.lua")

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } tw_timespec;
int clock_gettime(int clk_id, tw_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("tw_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local path = assert(os.getenv("TW_CREDS"), "TW_CREDS not set")
  local body = assert(os.getenv("TW_BODY"), "TW_BODY not set")
  prebuilt = {}
  for line in io.lines(path) do
    if line ~= "" then
      prebuilt[#prebuilt + 1] = wrk.format("POST", nil, {
        ["Authorization"] = "Basic " .. line,
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["Accept"] = "application/json",
      }, body)
    end
  end
  assert(#prebuilt > 0, "TW_CREDS is empty")
  clients = #prebuilt
  math.randomseed(os.time() * 1000 + (tid or 0))
  local rate = tonumber(os.getenv("TW_RATE") or "0")
  local nthreads = tonumber(os.getenv("TW_THREADS") or "1")
  interval_ms = rate > 0 and 1000 * nthreads / rate or 0
  slot = 0
  started = nil
  late = 0
end

function request()
  return prebuilt[math.random(clients)]
end

if tonumber(os.getenv("TW_RATE") or "0") > 0 then
  function delay()
    local now = now_ms()
    if started == nil then started = now end
    local due = started + slot * interval_ms
    slot = slot + 1
    if due - now < -10 then late = late + 1 end
    if due <= now then return 0 end
    return math.floor(due - now)
  end
end

function done(summary, latency, requests)
  local late_total, clients_seen = 0, 0
  for _, thread in ipairs(threads) do
    late_total = late_total + (thread:get("late") or 0)
    clients_seen = thread:get("clients") or clients_seen
  end
  tw_report(summary, latency, string.format("late=%d clients=%d", late_total, clients_seen))
end
