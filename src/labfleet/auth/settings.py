"""AuthSection → JupyterHub traitlets settings (pure: no I/O, no JupyterHub import).

``labfleet.hub.settings`` merges the result into the hub's settings; the
same function runs for ``labfleet up`` and in the Kubernetes hub pod.
"""

from __future__ import annotations

from typing import Any

from labfleet.config.auth import AuthSection
from labfleet.hub.runtime import Runtime

Settings = dict[str, dict[str, Any]]

PASSWORD_CLASS = "labfleet.auth.password.PasswordAuthenticator"  # noqa: S105 (a class path)
DEMO_CLASS = "labfleet.auth.dummy.DemoAuthenticator"


def _common(auth: AuthSection) -> dict[str, Any]:
    """Allow/admin rules every authenticator shares (names already normalised by the config)."""
    return {
        "admin_users": sorted(auth.admin_users),
        "allowed_users": sorted(auth.allowed_users),
    }


def _password(auth: AuthSection, runtime: Runtime) -> Settings:
    section = auth.password
    return {
        "JupyterHub": {"authenticator_class": PASSWORD_CLASS},
        "Authenticator": {**_common(auth), "allow_all": False},
        "PasswordAuthenticator": {
            "accounts_db": str(runtime.accounts_db),
            "min_length": section.min_length,
            "max_failures": section.max_failures,
            "max_failures_per_ip": section.max_failures_per_ip,
            "lockout": section.lockout,
        },
    }


def _dummy(auth: AuthSection, runtime: Runtime) -> Settings:
    return {
        "JupyterHub": {"authenticator_class": DEMO_CLASS},
        # Demo mode is the only one where anyone who can sign in is allowed.
        "Authenticator": {**_common(auth), "allow_all": not auth.allowed_users},
        "DemoAuthenticator": {"shared_password": auth.dummy.password or ""},
    }


_BUILDERS = {
    "password": _password,
    "dummy": _dummy,
}


def build_auth_settings(auth: AuthSection, runtime: Runtime) -> Settings:
    """Traitlets settings for the configured authenticator (class name plus its options)."""
    return _BUILDERS[auth.kind](auth, runtime)
