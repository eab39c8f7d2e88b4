"""The commented starter file written by ``labfleet init`` (it must always validate)."""

STARTER_CONFIG = """\
# labfleet.yaml — one file describes your notebook service.
# Check it with `labfleet check labfleet.yaml`; run it with `labfleet up -c labfleet.yaml`.
# Editor completion: `labfleet schema > labfleet.schema.json` and point your YAML plugin at it.

name: labfleet

auth:
  # password: accounts kept by labfleet (`labfleet users add NAME --password-stdin`).
  # dummy: any username with one shared password — for demos only.
  kind: password
  admin_users: [admin]
  # allowed_users: [alice, bob]   # optional extra allow-list

servers:
  default_url: /lab          # open JupyterLab after login
  start_timeout: 2m
  named_servers: false       # let people run several servers each

# What people may start. The first (or the one marked default) is preselected.
profiles:
  - slug: default
    display_name: Standard (2 CPUs, 4G memory)
    default: true
    cpu: 2
    memory: 4G
  - slug: large
    display_name: Large (8 CPUs, 32G memory)
    cpu: 8
    memory: 32G
    allowed_groups: [power-users]

# Stop servers nobody used for a while (frees memory and GPUs).
culling:
  enabled: true
  timeout: 1h
  every: 5m
  max_age: 0               # 0: no upper age limit

hub:
  base_url: /
  log_level: INFO
  # Escape hatch: any JupyterHub setting labfleet does not model yet.
  # extra_config:
  #   JupyterHub:
  #     shutdown_on_logout: true
"""
