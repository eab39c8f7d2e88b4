"""AuthSection → JupyterHub traitlets settings (pure: no I/O, no JupyterHub import).

``labfleet.hub.settings`` merges the result into the hub's settings; the
same function runs for ``labfleet up`` and in the Kubernetes hub pod.
Secrets stay references (``env:`` / ``file:``) here; the authenticator
classes resolve them inside the hub process.
"""

from __future__ import annotations

from typing import Any

from labfleet.config.auth import AuthSection
from labfleet.runtime import Runtime

Settings = dict[str, dict[str, Any]]

PASSWORD_CLASS = "labfleet.auth.password.PasswordAuthenticator"  # noqa: S105 (a class path)
DEMO_CLASS = "labfleet.auth.dummy.DemoAuthenticator"
IAP_CLASS = "labfleet.auth.iap.IapAuthenticator"
GITHUB_CLASS = "labfleet.auth.github.GitHubAuthenticator"
GOOGLE_CLASS = "labfleet.auth.google.GoogleAuthenticator"
OIDC_CLASS = "labfleet.auth.oidc.OidcAuthenticator"


def _common(auth: AuthSection) -> dict[str, Any]:
    """Allow/admin rules every authenticator shares (names already normalised by the config)."""
    return {
        "admin_users": sorted(auth.admin_users),
        "allowed_users": sorted(auth.allowed_users),
        "allow_all": auth.allow_all,
        # Admins and allow rules come from config, never from "whoever signed in before".
        "allow_existing_users": False,
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
            # homes are archived or deleted when a member is removed (local platform only)
            "homes_dir": str(runtime.homes_dir) if runtime.platform == "local" else "",
        },
    }


def _dummy(auth: AuthSection, runtime: Runtime) -> Settings:
    return {
        "JupyterHub": {"authenticator_class": DEMO_CLASS},
        # Demo mode is the only one where anyone who can sign in is allowed.
        "Authenticator": {**_common(auth), "allow_all": not auth.allowed_users},
        "DemoAuthenticator": {"shared_password": auth.dummy.password or ""},
    }


def _iap(auth: AuthSection, runtime: Runtime) -> Settings:
    section = auth.iap
    return {
        "JupyterHub": {"authenticator_class": IAP_CLASS},
        "Authenticator": {**_common(auth), "auto_login": True},
        "IapAuthenticator": {
            "audience": section.audience or "",
            "jwks": section.jwks,
            "issuer": section.issuer,
            "leeway": section.leeway,
            "allowed_domains": list(auth.allowed_domains),
            "strip_domain": section.strip_domain,
        },
    }


def _oauth_client(client: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "client_id": client.client_id or "",
        "client_secret": client.client_secret or "",
    }
    if client.callback_url:
        values["oauth_callback_url"] = client.callback_url
    return values


def _groups(auth: AuthSection, manage: bool) -> dict[str, Any]:
    """Group rules; ``manage_groups`` first, since OAuthenticator checks it when they are set."""
    values: dict[str, Any] = {"manage_groups": manage}
    if manage:
        values["allowed_groups"] = list(auth.allowed_groups)
        values["admin_groups"] = list(auth.admin_groups)
    return values


def _github(auth: AuthSection, runtime: Runtime) -> Settings:
    section = auth.github
    manage = section.teams_as_groups or bool(auth.allowed_groups or auth.admin_groups)
    return {
        "JupyterHub": {"authenticator_class": GITHUB_CLASS},
        "Authenticator": {**_common(auth), "enable_auth_state": True},
        "GitHubAuthenticator": {
            **_oauth_client(section),
            **_groups(auth, manage),
            "github_url": section.url.rstrip("/"),
            "scope": [
                "read:user",
                "user:email",
                "read:org",
                *dict.fromkeys(section.extra_scopes),
            ],
            "allowed_organizations": list(section.allowed_organizations),
            "denied_organizations": list(section.denied_organizations),
            "teams_as_groups": section.teams_as_groups,
            "uid_from_id": section.uid_from_id,
            "uid_offset": section.uid_offset,
            "gids_from_orgs": section.gids_from_orgs,
            "gid_offset": section.gid_offset,
            "git_env": section.git_env,
        },
    }


def _google(auth: AuthSection, runtime: Runtime) -> Settings:
    section = auth.google
    return {
        "JupyterHub": {"authenticator_class": GOOGLE_CLASS},
        "Authenticator": _common(auth),
        "GoogleAuthenticator": {
            **_oauth_client(section),
            "hosted_domain": list(auth.allowed_domains),
            "strip_domain": section.strip_domain,
            "google_api_url": section.api_url.rstrip("/"),
            "authorize_url": section.authorize_url,
        },
    }


def _oidc(auth: AuthSection, runtime: Runtime) -> Settings:
    section = auth.oidc
    values: dict[str, Any] = {
        **_oauth_client(section),
        **_groups(auth, bool(section.groups_claim)),
        "issuer": section.issuer or "",
        "scope": list(section.scopes),
        "username_claim": section.username_claim,
        "allowed_domains": list(auth.allowed_domains),
        "strip_domain": section.strip_domain,
    }
    if section.groups_claim:
        values["auth_state_groups_key"] = f"oauth_user.{section.groups_claim}"
    for key, value in (
        ("authorize_url", section.authorize_url),
        ("token_url", section.token_url),
        ("userdata_url", section.userinfo_url),
    ):
        if value:
            values[key] = value
    return {
        "JupyterHub": {"authenticator_class": OIDC_CLASS},
        "Authenticator": _common(auth),
        "OidcAuthenticator": values,
    }


_BUILDERS = {
    "password": _password,
    "dummy": _dummy,
    "iap": _iap,
    "github": _github,
    "google": _google,
    "oidc": _oidc,
}


#: in a cluster the proxy reaches the hub from the pod network, not from loopback
_CLUSTER_HOPS = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]


def build_auth_settings(auth: AuthSection, runtime: Runtime) -> Settings:
    """Traitlets settings for the configured authenticator (class name plus its options)."""
    settings = _BUILDERS[auth.kind](auth, runtime)
    if runtime.platform == "kubernetes":
        # whose X-Real-Ip the login throttle believes (labfleet.auth.client_address)
        settings["NormalizingAuthenticator"] = {"trusted_hops": list(_CLUSTER_HOPS)}
    return settings
