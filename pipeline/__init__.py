"""Reproducible GAN data augmentation for scarce, class-imbalanced medical and infrared images."""

import os

# albumentations asks PyPI for a newer version when imported; nothing may go online at run time.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
