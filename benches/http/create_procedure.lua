-- wrk script: POST /api/v1/procedures with a new patient, local record id and
-- Idempotency-Key on every request (NHS numbers in the 999 test range, valid check digits).
-- Token from MDOR_TOKEN; the provider must be MDOR_PROVIDER (default RA1); a run prefix from
-- MDOR_RUN keeps local record ids unique across runs.

local token = os.getenv("MDOR_TOKEN")
local provider = os.getenv("MDOR_PROVIDER") or "RA1"
local run = os.getenv("MDOR_RUN") or tostring(os.time())
local counter = 0
local threads = {}

-- thread_id is a global in each thread's Lua state, set here before the thread starts.
function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

local function nhs_number(k)
  while true do
    local stem = string.format("999%06d", k % 1000000)
    local sum = 0
    for i = 1, 9 do
      sum = sum + tonumber(stem:sub(i, i)) * (11 - i)
    end
    local check = 11 - sum % 11
    if check == 11 then check = 0 end
    if check ~= 10 then return stem .. check end
    k = k + 1
  end
end

function request()
  counter = counter + 1
  local n = thread_id * 10000000 + counter
  local local_id = string.format("%s-%d-%d", run, thread_id, counter)
  local body = string.format([[{"patient":{"nhs_number":"%s","family_name":"Benchmark","given_name":"Pat","date_of_birth":"1948-05-17","sex":"female","postcode":"LS1 4AP"},"procedure":{"provider":"%s","consultant":"1234567","procedure_date":"2024-03-11","opcs4_code":"W37.1","opcs4_version":"4.10","snomed_ct_id":null,"laterality":"left","registry":"njr","local_record_id":"%s"},"devices":[{"scan":"]d201050123456789001727010110LOT123\u001d21SER%d"},{"udi_di":"05012345678917","lot":"L7","serial":"S%d","expiry":"2027-01-01","manufactured":null}]}]],
    nhs_number(n), provider, local_id, counter, counter)
  return wrk.format("POST", "/api/v1/procedures", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = local_id,
  }, body)
end

local failures = 0
function response(status, headers, body)
  if status ~= 201 then
    failures = failures + 1
    if failures <= 3 then io.stderr:write(status .. " " .. body .. "\n") end
  end
end

function done(summary, latency, requests)
  io.write(string.format("requests: %d, non-2xx or errors: %d\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  for _, p in pairs({ 50, 90, 99, 99.9 }) do
    io.write(string.format("p%g: %.2f ms\n", p, latency:percentile(p) / 1000))
  end
end
