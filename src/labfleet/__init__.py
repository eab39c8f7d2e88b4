"""labfleet: a multi-user Jupyter platform driven by one typed config file.

The public façade is deliberately small: the config loader and the model.
Everything else is reached through the ``labfleet`` CLI or the JupyterHub
entry file (``labfleet.hub.jupyterhub_config``).
"""

from labfleet.config.load import ConfigError, load_config
from labfleet.config.model import FleetConfig

__all__ = ["ConfigError", "FleetConfig", "load_config"]
__version__ = "0.1.0"
