"""FleetConfig → JupyterHub settings (pure), and the entry file JupyterHub loads."""
