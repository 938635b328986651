"""Batched pad-crop-flip against a per-image reference, and normalisation."""

from __future__ import annotations

import torch
import pytest

from resnet.data import cifar_augment, fused_normalize
from resnet.data.augment import draw_crop_flip


def reference_crop_flip(img: torch.Tensor, top: int, left: int, flip: bool, padding: int) -> torch.Tensor:
    """One image the obvious way: pad, slice, mirror."""
    c, h, w = img.shape
    padded = torch.zeros((c, h + 2 * padding, w + 2 * padding), dtype=img.dtype)
    padded[:, padding : padding + h, padding : padding + w] = img
    out = padded[:, top : top + h, left : left + w]
    return out.flip(-1) if flip else out


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("padding", [4, 2])
def test_matches_per_image_reference(dtype: torch.dtype, padding: int) -> None:
    x = torch.randint(1, 256, (64, 3, 32, 32)).to(dtype)  # no zeros inside, so padding is recognisable
    out = cifar_augment(x, torch.Generator().manual_seed(7), padding=padding)
    params = draw_crop_flip(64, padding, torch.Generator().manual_seed(7))
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    for i in range(64):
        want = reference_crop_flip(x[i], int(params.top[i]), int(params.left[i]), bool(params.flip[i]), padding)
        torch.testing.assert_close(out[i], want, rtol=0, atol=0)
    # The draws really vary: several offsets, both flip states, some zero padding visible.
    assert len(set(params.top.tolist())) > 3 and 0 < int(params.flip.sum()) < 64
    assert (out == 0).any()


def test_seeded_generator_is_deterministic_and_seed_matters() -> None:
    x = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    a = cifar_augment(x, torch.Generator().manual_seed(3))
    b = cifar_augment(x, torch.Generator().manual_seed(3))
    c = cifar_augment(x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_rectangular_and_single_channel_images() -> None:
    x = torch.randint(1, 256, (5, 1, 12, 20), dtype=torch.uint8)
    out = cifar_augment(x, torch.Generator().manual_seed(0), padding=3)
    params = draw_crop_flip(5, 3, torch.Generator().manual_seed(0))
    for i in range(5):
        want = reference_crop_flip(x[i], int(params.top[i]), int(params.left[i]), bool(params.flip[i]), 3)
        assert torch.equal(out[i], want)


def test_rejects_unbatched_input() -> None:
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        cifar_augment(torch.zeros(3, 32, 32))


def test_fused_normalize_matches_formula_and_casts_once() -> None:
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    mean_t, std_t = (torch.tensor(v, dtype=torch.float64).view(3, 1, 1) for v in (mean, std))
    want = (x.double() / 255 - mean_t) / std_t
    out = fused_normalize(x, mean, std)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), want, rtol=0, atol=1e-5)
    bf16 = fused_normalize(x, mean, std, dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16 and torch.equal(bf16, out.to(torch.bfloat16))
    with pytest.raises(ValueError, match="3-channel"):
        fused_normalize(x, (0.5,), (0.5,))
