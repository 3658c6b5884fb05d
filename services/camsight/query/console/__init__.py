"""The operator console: server-rendered pages over the query service's own gRPC API.

Served by the query service on its own port (``services.query.console``); see
docs/console.md and docs/decisions/0054-0056.
"""
