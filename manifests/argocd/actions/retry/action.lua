-- Ask the operator to roll out the aborted or rolled-back version again.
local rollout = (obj.status or {}).rollout or {}
if rollout.abortedVersion == nil then
  error("no aborted or rolled-back version to retry", 0)
end
local id = "retry-v" .. tostring(rollout.abortedVersion) .. "-after-" .. (rollout.handledRequest or "")
obj.metadata.annotations = obj.metadata.annotations or {}
obj.metadata.annotations["mlrollout.io/request"] = '{"id":"' .. id .. '","action":"retry"}'
return obj
