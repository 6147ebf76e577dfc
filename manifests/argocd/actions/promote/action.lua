-- Ask the operator to promote (the mlrollout.io/request annotation; spec is never touched).
local rollout = (obj.status or {}).rollout or {}
if rollout.candidate == nil then
  error("no rollout in progress", 0)
end
local step = ""
if rollout.stepIndex ~= nil then
  step = tostring(rollout.stepIndex)
end
local id = "promote-v" .. tostring(rollout.candidate.version) .. "-s" .. step .. "-" .. (rollout.stepStartedAt or "")
obj.metadata.annotations = obj.metadata.annotations or {}
obj.metadata.annotations["mlrollout.io/request"] = '{"id":"' .. id .. '","action":"promote"}'
return obj
