-- Resource actions of a ModelDeployment, disabled where they do not apply (as `kubectl mlrollout`
-- refuses them); each one only sets an annotation the operator acts on.
local actions = {}
local status = obj.status or {}
local rollout = status.rollout or {}
local annotations = obj.metadata.annotations or {}
local running = rollout.candidate ~= nil
local promotable = running and status.phase ~= "Validating"
actions["promote"] = {disabled = not promotable}
actions["promote-full"] = {disabled = not promotable}
actions["abort"] = {disabled = not running}
actions["retry"] = {disabled = running or rollout.abortedVersion == nil}
actions["pause"] = {disabled = annotations["mlrollout.io/paused"] == "true"}
actions["resume"] = {disabled = annotations["mlrollout.io/paused"] == nil}
return actions
