"""Kubernetes: pure object builders (config in, manifests out) and, in ``apply``, the effects.

Builders never touch the network; :func:`labfleet.kube.render.render_objects`
composes them into the full, ordered list of manifests for one fleet.
"""
