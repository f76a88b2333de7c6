"""Functions: project files, templates, daemonless builds, deploy by digest, invoke, logs, events."""
