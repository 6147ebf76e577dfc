-- Lift the pause. Argo CD merges the returned object: the annotation is set to "false", which the
-- operator reads as not paused, since a table cannot express removal.
obj.metadata.annotations = obj.metadata.annotations or {}
obj.metadata.annotations["mlrollout.io/paused"] = "false"
return obj
