-- Lift the pause. Argo CD sends the JSON merge patch from the live object to the returned one, so a
-- key set to nil becomes `null` and the annotation is removed. But an emptied table encodes as `[]`
-- and Argo CD then keeps the live annotations as they were: when mlrollout.io/paused is the only
-- annotation it is set to "false" instead, which the operator and the plugin read as not paused.
local annotations = obj.metadata.annotations
if annotations == nil or annotations["mlrollout.io/paused"] == nil then
  return obj
end
annotations["mlrollout.io/paused"] = nil
if next(annotations) == nil then
  annotations["mlrollout.io/paused"] = "false"
end
return obj
