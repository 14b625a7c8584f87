"""Training and evaluation: ``train_seg``/``train_det`` and ``evaluate_seg``/``evaluate_det``,
configured by ``load_config(task, path)`` (typed defaults in ``config.py``, YAML overrides)."""
