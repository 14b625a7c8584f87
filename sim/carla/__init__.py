"""The CARLA backend: ``CarlaSimulator`` in ``sim.carla.client``.

Importing this package does not import ``carla``; the client module is loaded
when a session opens (or injected with ``carla_module=`` in tests).
"""
