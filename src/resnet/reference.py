"""Figures reported by the paper and by torchvision, as data (used by ``summary`` with `paper` and tests),
and the published normalisation statistics of the data sets (the one place each mean / std is written)."""

from __future__ import annotations

# Paper Table 1: multiply-adds (billions) at 224x224.
PAPER_IMAGENET_GMACS = {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}
# torchvision's published figures (v1.5 stride placement).
TORCHVISION_GMACS = {18: 1.814, 34: 3.664, 50: 4.089, 101: 7.801, 152: 11.514}
TORCHVISION_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}
TORCHVISION_TOP1_V1 = {18: 69.758, 34: 73.314, 50: 76.130, 101: 77.374, 152: 78.312}
# Paper Table 4: 10-crop top-1 error (%) on ImageNet validation (ResNet-34 with option B).
PAPER_IMAGENET_10CROP_TOP1_ERR = {18: 27.88, 34: 24.52, 50: 22.85, 101: 21.75, 152: 21.43}
PAPER_PLAIN_10CROP_TOP1_ERR = {18: 27.94, 34: 28.54}

# Paper Table 6 (CIFAR-10): params (millions) and test error (%).
PAPER_CIFAR_PARAMS_M = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7, 1202: 19.4}
PAPER_CIFAR_ERR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
PAPER_CIFAR_110_MEAN_STD = (6.61, 0.16)
CIFAR_MMACS = {20: 40.55, 56: 125.49, 110: 252.89}

# akamaster checkpoints (CIFAR-10, ImageNet normalisation): test error (%) reported in that repository's README.
AKAMASTER_REPORTED_ERR = {20: 8.27, 32: 7.37, 44: 6.90, 56: 6.61, 110: 6.32, 1202: 6.18}
# the four whose files the reference-weights test data holds (the two deepest are over its 4 MiB limit)
AKAMASTER_ERR = {d: AKAMASTER_REPORTED_ERR[d] for d in (20, 32, 44, 56)}
# Their files (github.com/akamaster/pytorch_resnet_cifar10, pretrained_models/): the 8-hex suffix is the sha256 prefix.
AKAMASTER_FILES = {20: "resnet20-12fca82f.th", 32: "resnet32-d509ac18.th", 44: "resnet44-014dd654.th",
                   56: "resnet56-4bfd9763.th", 110: "resnet110-1d1ed7c2.th", 1202: "resnet1202-f3b1deed.th"}
AKAMASTER_URL = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN: tuple[float, float, float] = (0.5071, 0.4865, 0.4409)
CIFAR100_STD: tuple[float, float, float] = (0.2673, 0.2564, 0.2762)
