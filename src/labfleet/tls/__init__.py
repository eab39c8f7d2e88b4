"""HTTPS for ``labfleet up``: certificate files, ACME issuance/renewal, the HTTP-01 responder.

The proxy terminates TLS and reloads the files when they change; this package
decides which files those are and, for ACME, keeps them fresh.
"""
