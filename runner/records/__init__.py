"""What a run records: events, outcomes, the run record and journal, the ledger, transcripts,
capped logs, the --json document."""
