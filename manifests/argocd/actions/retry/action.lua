-- Ask the operator to roll out the aborted or rolled-back version again (the mlrollout.io/request
-- annotation; spec is never touched). The id alternates between two values, as `kubectl mlrollout`
-- derives it: always different from the request the operator handled last, never growing.
local rollout = (obj.status or {}).rollout or {}
if rollout.abortedVersion == nil then
  error("no aborted or rolled-back version to retry", 0)
end
if rollout.candidate ~= nil then
  error("a rollout is running: abort it before retrying", 0)
end
local id = "retry-v" .. tostring(rollout.abortedVersion) .. "-a"
if rollout.handledRequest == id then
  id = "retry-v" .. tostring(rollout.abortedVersion) .. "-b"
end
obj.metadata.annotations = obj.metadata.annotations or {}
obj.metadata.annotations["mlrollout.io/request"] = '{"id":"' .. id .. '","action":"retry"}'
return obj
