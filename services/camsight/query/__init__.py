"""The query service: a durable SQLite index of EVENTS and the gRPC API over it.

* :mod:`.index` keeps the index (WAL, idempotent merges by event id).
* :mod:`.ingest` fills it from a durable pull consumer, acking after commit.
* :mod:`.filters` parses the AIP-160 subset filter into bound SQL and an
  in-memory predicate (for live tails).
* :mod:`.queries` turns API requests into index queries; the gRPC servicers
  and the CLI's ``--data-dir`` mode both use it.
* :mod:`.server` assembles the grpc.aio server (health, reflection, TLS, auth).
"""
