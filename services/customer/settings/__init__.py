"""Per-tenant member settings and order eligibility."""
