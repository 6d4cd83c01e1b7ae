"""The funding ledger: operators, programmes, grants and their append-only ledger, disbursements, batches."""
