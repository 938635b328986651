"""Data sets, caches and batched augmentation."""
