"""Engine build machinery shared by the backends and callable without an engine.

``fp16`` (FP16 graphs), ``tensorrt`` (build plans and engine builds) and
``cache`` (fingerprints and the bundle's engine cache). No backend module is
imported from here, and backends share code only through this package.
"""
