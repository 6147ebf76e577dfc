-- Argo CD health of a mlrollout.io ModelDeployment. Argo CD runs this without Lua's string library:
-- only `..` and tostring() build messages.
local hs = {status = "Progressing", message = "Waiting for the mlrollout operator"}
local status = obj.status
if status == nil or status.phase == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
local annotations = obj.metadata.annotations or {}
if annotations["mlrollout.io/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "Paused by the mlrollout.io/paused annotation"
  return hs
end
local phase = status.phase
local message = phase
if status.message ~= nil and status.message ~= "" then
  message = phase .. ": " .. status.message
end
-- A rollout waiting at a pause step (or for a manual promotion) reports Paused=True.
for _, condition in ipairs(status.conditions or {}) do
  if condition.type == "Paused" and condition.status == "True" then
    hs.status = "Suspended"
    hs.message = condition.message or condition.reason or message
    return hs
  end
end
if phase == "Healthy" then
  hs.status = "Healthy"
elseif phase == "Paused" then
  hs.status = "Suspended"
elseif phase == "Degraded" or phase == "Failed" or phase == "RolledBack" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = message
return hs
