"""Mechanisms every Crowdpack service shares: config, bootstrap, errors, database, outbox and consumer."""
