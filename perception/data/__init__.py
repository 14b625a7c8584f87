"""Datasets: the datagen folder layout, readers for datagen and user data, augmentation."""
