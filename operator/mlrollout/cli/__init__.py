"""`kubectl mlrollout`: the kubectl plugin. Pure planning and rendering, one thin API-server client."""
