-- Hold every change of the ModelDeployment until resumed.
obj.metadata.annotations = obj.metadata.annotations or {}
obj.metadata.annotations["mlrollout.io/paused"] = "true"
return obj
