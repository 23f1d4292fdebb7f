"""Consumer members: identity, card, status, listing and statistics."""
