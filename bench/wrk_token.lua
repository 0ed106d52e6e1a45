-- wrk: POST /token with client_secret_basic and a fixed form body (one pre-built request).
-- Env: TW_BASIC = base64("client_id:client_secret"), TW_BODY = the form body.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk_report.lua")

wrk.method = "POST"
wrk.body = assert(os.getenv("TW_BODY"), "TW_BODY not set")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. assert(os.getenv("TW_BASIC"), "TW_BASIC not set")
wrk.headers["Accept"] = "application/json"

function done(summary, latency, requests)
  tw_report(summary, latency)
end
