-- wrk script of scripts/bench-verify-http's warm-up: every secret of the file SECRETS once, in
-- order, the two threads taking turns (thread 1 the odd lines, thread 2 the even ones), so a run
-- of N / rate seconds verifies each key once and the node records each key's first use.
local counter = 0
function setup(thread) counter = counter + 1; thread:set("id", counter) end
local requests, n, i = {}, 0, 0
function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  for line in io.lines(os.getenv("SECRETS")) do
    n = n + 1
    requests[n] = wrk.format("POST", "/v1/verify", headers, '{"key":"' .. line .. '"}')
  end
  i = (id or 1) - 1
end
function request()
  local r = requests[(i % n) + 1]
  i = i + 2
  return r
end
