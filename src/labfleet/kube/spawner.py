"""KubeSpawner with labfleet's names and per-user namespace objects (effects).

* Every ``{user_slug}`` / ``{server_slug}`` in KubeSpawner templates (pod,
  claim, namespace, volume paths, bucket names) is expanded from
  :mod:`labfleet.naming`, so the one collision-free slug function decides
  every Kubernetes name derived from a username.
* With per-user namespaces, the user's ServiceAccount, NetworkPolicy and
  ResourceQuota (built by :mod:`labfleet.kube.user_namespace`) are created
  before the first pod, and the namespace is deleted with the user.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from kubespawner.clients import shared_client
from traitlets import Bool, List

from labfleet.naming import server_slug, user_slug

_CREATE = {
    "ServiceAccount": ("CoreV1Api", "service_account"),
    "ResourceQuota": ("CoreV1Api", "resource_quota"),
    "NetworkPolicy": ("NetworkingV1Api", "network_policy"),
}


class LabfleetKubeSpawner(KubeSpawner):  # type: ignore[misc]
    labfleet_profiles: List[Any] = List(
        config=True, help="Profiles from labfleet.yaml (set by labfleet.hub.settings)."
    )
    labfleet_user_namespace_objects: List[Any] = List(
        config=True,
        help="Manifests created in each user's namespace before the first spawn; "
        "{user_slug} is expanded. Built by labfleet.kube.spawner_settings.",
    )
    labfleet_delete_user_namespace = Bool(
        False, config=True, help="Delete the user's namespace when the user is deleted."
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
