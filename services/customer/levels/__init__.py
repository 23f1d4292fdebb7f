"""Member levels: definitions, manual and automatic changes, expiry, and the change record."""
