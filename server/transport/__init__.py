"""gRPC transport: thin servicers that validate and convert requests, call the ledger inside a
unit of work, and convert results and domain errors back."""
