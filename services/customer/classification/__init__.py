"""Groups and tags for every kind of customer."""
