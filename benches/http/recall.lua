-- wrk script: GET /api/v1/recall by UDI-DI and lot, cycling through the (udi_di, lot) pairs
-- in MDOR_RECALL_TARGETS (one "udi_di lot" pair per line). Token from MDOR_TOKEN (regulator),
-- which states its purpose as every identifiable read beyond its organisation must.

local token = os.getenv("MDOR_TOKEN")
local targets = {}
for line in io.lines(os.getenv("MDOR_RECALL_TARGETS")) do
  local udi, lot = line:match("^(%S+)%s+(%S+)$")
  if udi then table.insert(targets, { udi, lot }) end
end
local i = 0

function request()
  i = i % #targets + 1
  local t = targets[i]
  return wrk.format("GET", "/api/v1/recall?udi_di=" .. t[1] .. "&lot=" .. t[2] .. "&limit=1000", {
    ["Authorization"] = "Bearer " .. token,
    ["Access-Purpose"] = "recall",
  })
end

function done(summary, latency, requests)
  io.write(string.format("requests: %d, non-2xx or errors: %d\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  for _, p in pairs({ 50, 90, 99, 99.9 }) do
    io.write(string.format("p%g: %.2f ms\n", p, latency:percentile(p) / 1000))
  end
end
