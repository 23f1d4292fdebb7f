"""Malls, stores and staff accounts."""
