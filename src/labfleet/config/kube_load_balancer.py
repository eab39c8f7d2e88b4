"""``kubernetes.access.load_balancer``: HTTPS for ``access.kind: load-balancer``.

A cloud LoadBalancer Service forwards TCP; without one of these options the
sign-in (an OAuth code exchange, the session cookie) crosses the internet in
plain HTTP. Two ways to get TLS:

* ``tls_secret``: a ``kubernetes.io/tls`` Secret (``tls.crt``/``tls.key``,
  e.g. written by cert-manager or ``kubectl create secret tls``) that
  labfleet-proxy serves itself on port 443; port 80 redirects to https.
  Renewed certificates are picked up without a restart.
* ``tls_terminated_by_load_balancer``: the cloud's load balancer holds the
  certificate (AWS ACM, Azure, a DigitalOcean certificate id...), configured
  through ``annotations``; it forwards plain HTTP to the proxy.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from labfleet.config.base import Section

_K8S_NAME = r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"


class LoadBalancerOptions(Section):
    """TLS and provider annotations of the public LoadBalancer Service."""

    tls_secret: str | None = Field(
        default=None,
        pattern=_K8S_NAME,
        description="A kubernetes.io/tls Secret in the hub's namespace; labfleet-proxy serves "
        "it on port 443 and redirects port 80 to https.",
    )
    tls_terminated_by_load_balancer: bool = Field(
        default=False,
        description="The cloud load balancer terminates TLS (its certificate set through "
        "'annotations'); Service port 443 forwards plain HTTP to the proxy.",
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Annotations of the LoadBalancer Service (provider options, e.g. "
        "service.beta.kubernetes.io/aws-load-balancer-ssl-cert).",
    )

    @model_validator(mode="after")
    def _one_way(self) -> LoadBalancerOptions:
        if self.tls_secret and self.tls_terminated_by_load_balancer:
            raise ValueError(
                "set tls_secret (the proxy serves TLS) or tls_terminated_by_load_balancer "
                "(the load balancer does), not both"
            )
        return self

    @property
    def https(self) -> bool:
        return bool(self.tls_secret) or self.tls_terminated_by_load_balancer
