-- Ask the operator to promote-full (the mlrollout.io/request annotation; spec is never touched). The id is
-- derived from the step, as `kubectl mlrollout` derives it: one click and one plugin run at the
-- same step are one request.
local status = obj.status or {}
local rollout = status.rollout or {}
if rollout.candidate == nil then
  error("no rollout in progress", 0)
end
if status.phase == "Validating" then
  error("the candidate is still in its validation gate", 0)
end
local step = ""
if rollout.stepIndex ~= nil then
  step = tostring(rollout.stepIndex)
end
local id = "promote-full-v" .. tostring(rollout.candidate.version) .. "-s" .. step .. "-" .. (rollout.stepStartedAt or "")
obj.metadata.annotations = obj.metadata.annotations or {}
obj.metadata.annotations["mlrollout.io/request"] = '{"id":"' .. id .. '","action":"promote-full"}'
return obj
