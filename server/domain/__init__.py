"""Ledger rules: quantities, group coverage and the reservation lifecycle. No gRPC, no SQL."""
