"""Perception: the class map, datasets, models, training and metrics.

Importing this package (and ``tags``, ``classes``, ``data.layout``) needs only numpy;
torch is imported by the modules that train or run models.
"""
