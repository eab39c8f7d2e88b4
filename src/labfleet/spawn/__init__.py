"""Spawning servers: profiles and policy, the local spawner and its launchers."""
