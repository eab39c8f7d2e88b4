"""labfleet-proxy: a pure-Python, CHP-compatible reverse proxy for JupyterHub.

Layers, bottom up (nothing imports upward): ``routes``/``http_parse``/``paths``
(pure), ``messages``/``targets``/``pool``, ``forward`` (data plane), ``api``,
``server``/``workers`` (effects), ``main`` (command line).
"""
