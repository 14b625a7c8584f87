"""Benchmarks and the latency regression gate.

``measure`` times an engine (back-to-back or paced at a camera rate), ``report``
holds rows and the JSON report, ``system`` records the machine, ``plot`` draws
latency distributions, ``gate`` compares with a baseline, and ``suite`` runs
rows and ties them together for the CLI, the pytest fixture and ``make bench``.
"""
