"""Crowd packages: saved audiences over millions of members, evaluated by the segment engine."""
