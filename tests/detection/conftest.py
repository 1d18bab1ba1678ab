"""Torchvision made importable (where a wheel that links CUDA is installed) before the tests import torchmetrics."""

from tests.detection.torchvision_cpu import install

install()
