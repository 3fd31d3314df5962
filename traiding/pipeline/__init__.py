"""The phase code shared by `traiding run` (one process) and the operator (one reconcile at a time)."""
