"""Framework instrumentors; each module imports its framework only when instrumenting."""
