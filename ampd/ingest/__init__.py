"""The third side: what this host's scrape jobs will send to AMP, what that costs, and
whether it stays within the budget (``ampd.ingest.side.IngestSide``)."""
