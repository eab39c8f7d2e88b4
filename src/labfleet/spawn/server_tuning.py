"""Settings of members' Jupyter servers that make their path fast, in one place.

JupyterLab's hashed bundles are already sent with ``Cache-Control: public,
max-age=31536000, immutable``, so a returning member's browser fetches
nothing twice; but they go out uncompressed (the largest script is ~2.5 MB).
``compress_response`` makes the server gzip text responses (scripts, CSS,
JSON) for clients that accept it: about a quarter of the bytes over a real
network, at a few tens of milliseconds of the server's CPU per large file,
once per member per JupyterLab version thanks to the cache. Websocket frames
(kernel messages) are not affected.

Kernels: ``spawn.kernel_zygote`` forks a server's default Python kernels from
a per-server process that has already imported ipykernel, so a kernel start is
a fork rather than a fresh interpreter (``local.kernel_preload``, default on).

Kernel messages: ``spawn.kernel_nodelay`` turns TCP_NODELAY on for kernel
websockets, so a cell's output is not held back ~40 ms behind the frame before it.

JupyterLab's page: ``spawn.lab_settings`` turns off the rebuild check that runs
``node`` on each page load (members cannot rebuild a shared environment).

JupyterLab's extension manager is the read-only one: a member cannot install
into the shared environment, and a member's server need not reach PyPI (the
PyPI manager searches and installs from there). Extensions are the admin's, as
prebuilt packages in the server environment.

Pure: the spawner appends :func:`server_args` to every server's command line,
whichever launcher starts it.
"""

from __future__ import annotations

#: the server extension that forks kernels from a preloaded zygote
KERNEL_ZYGOTE = "labfleet.spawn.kernel_zygote"

#: the server extension that sets members' JupyterLab page config (no build check)
LAB_SETTINGS = "labfleet.spawn.lab_settings"

#: the server extension that sends kernel messages without Nagle's delay (TCP_NODELAY)
KERNEL_NODELAY = "labfleet.spawn.kernel_nodelay"

#: Tornado application settings for every user server
TORNADO_SETTINGS = {"compress_response": "True"}

#: JupyterLab's extension manager for members: list what is installed, install nothing
LAB_EXTENSION_MANAGER = "readonly"


def server_args(kernel_preload: bool = True) -> list[str]:
    """``jupyterhub-singleuser`` arguments: Tornado settings and our server extensions."""
    return [
        *(f"--ServerApp.tornado_settings={key}={value}" for key, value in TORNADO_SETTINGS.items()),
        f"--ServerApp.jpserver_extensions={LAB_SETTINGS}=True",
        f"--ServerApp.jpserver_extensions={KERNEL_NODELAY}=True",
        f"--LabApp.extension_manager={LAB_EXTENSION_MANAGER}",
        *zygote_args(kernel_preload),
    ]


def zygote_args(enabled: bool = True) -> list[str]:
    """Arguments that enable the kernel zygote extension (``spawn.kernel_zygote``)."""
    return [f"--ServerApp.jpserver_extensions={KERNEL_ZYGOTE}=True"] if enabled else []
