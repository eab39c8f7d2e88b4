"""labfleet-proxy: a pure-Python, CHP-compatible reverse proxy for JupyterHub.

Layers, bottom up (nothing imports upward; ``tests/proxy/test_structure.py``
fails on any cycle): ``runtime`` (logger, loop); pure ``routes``/``paths``/
``http_parse``/``lifecycle``/``trust``/``wsframes``/``messages``/``targets``;
``pool``/``metrics``; ``context`` (the pool injected); ``upstream``; ``deadlines``;
``forward`` (data plane); ``api``; ``server`` (wiring pieces); ``workers``;
``single``; ``main`` (command line).
"""
