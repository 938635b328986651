"""What a network expects of its input: normalisation, resize, crop and resize interpolation.

One typed value travels with a network from its weights (named pretrained weights, a run folder's
metadata) to every consumer: ``resnet eval`` / ``predict`` and the fine-tuning data pipeline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ..errors import CheckpointError
from ..utils.limits import MAX_SIDE

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass(frozen=True)
class Preprocess:
    """Input convention of one network.

    ``resize`` is the shorter side images are scaled to before cropping and ``crop`` the side of the
    square crop fed to the network; ``None`` for both means "the image as it is" (CIFAR nets),
    and images of another size are then scaled and cropped to ``input_size``.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: int
    resize: int | None = None
    crop: int | None = None
    interpolation: str = "bilinear"  # of the resize: bilinear (torchvision) or bicubic (most timm weights)

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"mean {self.mean} and std {self.std} need one entry per channel")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")
        for name in ("input_size", "resize", "crop"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or not 1 <= value <= MAX_SIDE):
                raise ValueError(f"{name} must be an integer from 1 to {MAX_SIDE} pixels, got {value!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        if self.resize is not None and self.resize < self.crop_size:
            raise ValueError(f"the resize to {self.resize} pixels leaves no room for the {self.crop_size}-pixel crop; "
                             "resize must be at least the crop")

    @property
    def crop_size(self) -> int:
        return self.crop or self.input_size

    @property
    def resize_size(self) -> int:
        return self.resize or self.crop_size

    @property
    def channels(self) -> int:
        return len(self.mean)

    def with_sizes(self, resize: int | None = None, crop: int | None = None) -> "Preprocess":
        """A copy with ``resize`` / ``crop`` replaced where given."""
        return Preprocess(
            self.mean, self.std, self.input_size, resize if resize is not None else self.resize,
            crop if crop is not None else self.crop, self.interpolation,
        )

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], origin: str = "checkpoint") -> "Preprocess":
        try:
            return cls(
                mean=tuple(float(v) for v in d["mean"]),
                std=tuple(float(v) for v in d["std"]),
                input_size=int(d.get("input_size") or d.get("crop") or 224),
                resize=None if d.get("resize") is None else int(d["resize"]),
                crop=None if d.get("crop") is None else int(d["crop"]),
                interpolation=str(d.get("interpolation") or "bilinear"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{origin}: its preprocessing metadata is invalid ({err}); rewrite it with mean, std and input_size") from None
