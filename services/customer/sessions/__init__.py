"""Staff sign-in: passwords (argon2id), refresh sessions, and sign-in rate limits."""
