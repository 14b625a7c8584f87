"""Models in plain torch: Fast-SCNN segmentation and a CenterNet-style detector."""
