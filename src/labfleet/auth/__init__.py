"""Sign-in: the embedded password accounts, demo, IAP, GitHub, Google and OIDC authenticators.

Nothing here is imported by ``labfleet.config`` (the pure username rules it
needs live one floor down, in :mod:`labfleet.usernames`), so loading a config
never imports JupyterHub. The authenticator classes are named by dotted path in the
settings built by :func:`labfleet.auth.settings.build_auth_settings`.
"""
