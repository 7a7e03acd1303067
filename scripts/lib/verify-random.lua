-- wrk script of scripts/bench-verify-http: POST /v1/verify with {"key": <secret>}, each
-- request a random secret of the file SECRETS (one per line), or always the first one with
-- ONE_KEY=1. The same script drives keyledger and the bare axum ceiling.
--
-- Each wrk thread has its own Lua state, so every thread reads the file once, in `init`, and
-- seeds its own generator (by thread number, given in `setup`) so threads draw different keys.
-- Every request is formatted once, there: formatting one per call lowered the measured rate by
-- up to a fifth, as the client shares the machine's cores with the server it measures.

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

local requests = {}
local n = 0
function init(args)
  local path = os.getenv("SECRETS")
  local only_one = os.getenv("ONE_KEY") == "1"
  local headers = { ["Content-Type"] = "application/json" }
  for line in io.lines(path) do
    n = n + 1
    requests[n] = wrk.format("POST", "/v1/verify", headers, '{"key":"' .. line .. '"}')
    if only_one then break end
  end
  math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
  return requests[math.random(n)]
end
