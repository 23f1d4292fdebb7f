"""Business customers: the B2B archive, its computed grade, contacts, ownership and statistics."""
