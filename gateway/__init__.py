"""The HTTP/JSON gateway for the admin console and the members' mini-program.

It authenticates callers and translates HTTP/JSON to the services' gRPC and back; it
holds no data and no business rules.
"""
