"""KubeSpawner with labfleet's names, profile policy and per-user namespace objects.

* Every ``{user_slug}`` / ``{server_slug}`` in KubeSpawner templates (pod,
  claim, namespace, volume paths, bucket names) is expanded from
  :mod:`labfleet.naming`, so the one collision-free slug function decides
  every Kubernetes name derived from a username.
* Profiles go through :class:`~labfleet.spawn.profile_form.ProfileChoiceMixin`,
  the same form and server-side policy as on one machine (a forbidden or
  unknown profile is a 403, also through the REST API); the chosen profile's
  settings then *replace* the spawner's (KubeSpawner's own overrides merge
  dicts, which would let a GPU node selector survive a switch to a CPU profile).
* POSIX identity recorded at sign-in (GitHub UID/GIDs) becomes the pod's uid
  and supplemental groups.
* With per-user namespaces, the user's ServiceAccount, NetworkPolicy and
  ResourceQuota (built by :mod:`labfleet.kube.user_namespace`) are created
  before the first pod. Deleting the user keeps the namespace (it holds their
  home volume) unless ``kubernetes.users.delete_data_with_user`` opts in.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from kubespawner.clients import shared_client
from traitlets import Bool, Dict, List

from labfleet.config.profiles import Profile
from labfleet.naming import server_slug, user_slug
from labfleet.spawn.profile_form import ProfileChoiceMixin

_CREATE = {
    "ServiceAccount": ("CoreV1Api", "service_account"),
    "ResourceQuota": ("CoreV1Api", "resource_quota"),
    "LimitRange": ("CoreV1Api", "limit_range"),
    "NetworkPolicy": ("NetworkingV1Api", "network_policy"),
}


def _literal(value: Any) -> Any:
    """Escape ``{`` and ``}`` so KubeSpawner's template expansion leaves ``value`` as is."""
    if isinstance(value, str):
        return value.replace("{", "{{").replace("}", "}}")
    return value


class LabfleetKubeSpawner(ProfileChoiceMixin, KubeSpawner):  # type: ignore[misc]
    labfleet_profile_overrides: Dict[str, Any] = Dict(
        config=True,
        help="Profile slug -> KubeSpawner traits it sets (labfleet.kube.spawner_settings).",
    )
    labfleet_user_namespace_objects: List[Any] = List(
        config=True,
        help="Manifests created in each user's namespace before the first spawn; "
        "{user_slug} is expanded. Built by labfleet.kube.spawner_settings.",
    )
    labfleet_delete_user_namespace = Bool(
        False,
        config=True,
        help="Delete the user's namespace (their home volume included) when the user is "
        "deleted; off unless kubernetes.users.delete_data_with_user.",
    )

    def labfleet_slugs(self) -> dict[str, str]:
        return {
            "{user_slug}": user_slug(self.user.name),
            "{server_slug}": server_slug(self.user.name, self.name or ""),
        }

    def _expand_user_properties(self, template: str, slug_scheme: str | None = None) -> str:
        for placeholder, value in self.labfleet_slugs().items():
            template = template.replace(placeholder, value)
        expanded: str = super()._expand_user_properties(template, slug_scheme)
        return expanded

    _profile_applied = False
    #: Set by labfleet's GitHub authenticator in ``pre_spawn_start`` (may stay None).
    labfleet_posix_identity: Any = None

    #: The environment labfleet itself last set (config, then each profile's).
    _labfleet_managed_env: dict[str, Any] | None = None
    #: Sign-in values already escaped for KubeSpawner's template expansion.
    _labfleet_escaped: dict[str, Any] = {}  # replaced, never mutated

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._labfleet_managed_env = dict(self.environment)

    def apply_profile(self, profile: Profile) -> None:
        """Set every trait the profile controls (replace, never merge).

        One exception keeps sign-in working: environment entries that someone other than
        labfleet's profiles put there (GitHub's git identity and ``GITHUB_TOKEN``, set by
        the authenticator's ``pre_spawn_start`` before or after this runs) stay on top of
        the profile's environment. A previous profile's own variables still go away.
        """
        added = self._signin_environment()
        for trait, value in self.labfleet_profile_overrides.get(profile.slug, {}).items():
            setattr(self, trait, copy.deepcopy(value))
        profile_env: dict[str, Any] = dict(getattr(self, "environment", {}))
        self._labfleet_managed_env = profile_env
        if added:
            self.environment = {**profile_env, **added}
        self._profile_applied = True

    def _signin_environment(self) -> dict[str, Any]:
        """Entries labfleet did not set itself (config or profile): sign-in's."""
        managed = self._labfleet_managed_env or {}
        missing = object()
        return {k: v for k, v in self.environment.items() if managed.get(k, missing) != v}

    def _escape_signin_environment(self) -> None:
        """KubeSpawner expands {placeholders} in environment values; sign-in values are
        literal (git's credential helper is a shell function with braces)."""
        escaped = {
            k: v if self._labfleet_escaped.get(k) == v else _literal(v)
            for k, v in self._signin_environment().items()
        }
        self._labfleet_escaped = escaped
        self.environment = {**self.environment, **escaped}

    async def load_user_options(self) -> None:
        """Called by KubeSpawner's start: profile (if the pre-spawn hook did not), identity."""
        if not self._profile_applied:
            profile = self.check_user_options(self.user_options)
            self.chosen_profile = profile
            self.apply_profile(profile)
        self._profile_applied = False  # the next spawn checks and applies again
        self._escape_signin_environment()
        identity = self.labfleet_posix_identity
        if identity is not None:
            if identity.uid is not None:
                self.uid = identity.uid
            self.supplemental_gids = list(identity.gids)

    async def start(self) -> Any:
        if self.enable_user_namespaces and self.labfleet_user_namespace_objects:
            await self._ensure_namespace()
            for obj in self._expand_all(self.labfleet_user_namespace_objects):
                await self._ensure_object(obj)
        return await super().start()

    async def _ensure_object(self, obj: dict[str, Any]) -> None:
        """Create, or replace what labfleet owns (e.g. a changed quota); never delete."""
        api_name, suffix = _CREATE[obj["kind"]]
        api = shared_client(api_name)
        namespace = obj["metadata"]["namespace"]
        name = obj["metadata"]["name"]
        timeout = self.k8s_api_request_timeout
        try:
            await asyncio.wait_for(
                getattr(api, f"create_namespaced_{suffix}")(namespace, obj), timeout
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            await asyncio.wait_for(
                getattr(api, f"patch_namespaced_{suffix}")(name, namespace, obj), timeout
            )

    async def delete_forever(self) -> None:
        await super().delete_forever()
        if self.enable_user_namespaces and self.labfleet_delete_user_namespace and not self.name:
            try:
                await asyncio.wait_for(
                    self.api.delete_namespace(self.namespace), self.k8s_api_request_timeout
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
