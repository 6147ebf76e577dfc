-- Resource actions of a ModelDeployment; each one only sets an annotation the operator acts on.
local actions = {}
local status = obj.status or {}
local rollout = status.rollout or {}
local annotations = obj.metadata.annotations or {}
local running = rollout.candidate ~= nil
local paused = annotations["mlrollout.io/paused"] == "true"
actions["promote"] = {disabled = not running}
actions["promote-full"] = {disabled = not running}
actions["abort"] = {disabled = not running}
actions["retry"] = {disabled = rollout.abortedVersion == nil}
actions["pause"] = {disabled = paused}
actions["resume"] = {disabled = not paused}
return actions
