"""Request validation, one module per service over one shared `Checker`: every malformed field
becomes a BadRequest violation, and a valid request becomes a domain command. Nothing reaches
the ledger unless it passes here."""
