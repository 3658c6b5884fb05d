"""The detector service: runs the configured object analyzers over every camera's frames."""
