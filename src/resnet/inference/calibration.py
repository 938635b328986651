"""Where a network's int8 calibration images and its default evaluation data come from.

int8 calibration measures activation ranges on sample images. Taken from the images under test it
makes a prediction depend on the other files passed and lets an evaluation see its test set, so
calibration images come from a file or folder the user names, else from the training data the run
recorded (its data set and data folder, in the checkpoint metadata or the run's ``recipe.json``),
never from the inputs. :func:`calibration_batch` is the one place that decides, for every command.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..data.decode import read_image
from ..data.preprocess import match_channels, network_input
from ..data.load import open_arrays
from ..data.registry import ARRAY_DATASETS, IMAGE_FOLDER
from ..data.scan import find_images, split_folder
from ..data.split import spread_indices
from ..errors import DataError
from .network import Network
from .protocols import center_view, stack_or_list

CALIBRATION_IMAGES = 256  # images spread evenly over the source; more changes the ranges little


@dataclass(frozen=True)
class RecordedData:
    """The data set a network was trained on, as its run recorded it."""

    dataset: str
    data_dir: str | None

    def describe(self) -> str:
        return self.dataset + (f" in {self.data_dir}" if self.data_dir else "")

    @property
    def image_folder(self) -> bool:
        """Whether the data is an image folder read image by image (``data_dir``): a folder data set, or the
        ``folder`` data set, whose photos may be of any size (a fine-tune on photos records it; small images of
        one size read the same way)."""
        return self.data_dir is not None and (self.dataset not in ARRAY_DATASETS or self.dataset == IMAGE_FOLDER)


def recorded_data(member: Network) -> RecordedData | None:
    """The training data recorded with ``member`` (checkpoint metadata first, then the run's ``recipe.json``),
    if it names something that can be opened: a data set by name, or an image folder."""
    meta = member.metadata
    record = None
    if meta.get("dataset"):
        record = RecordedData(str(meta["dataset"]), _existing(meta.get("data_dir")))
    else:
        header = _run_header(Path(member.source))
        if header and header.get("data"):
            record = RecordedData(str(header["data"]), _existing(header.get("data_dir")))
    if record is None or (record.dataset not in ARRAY_DATASETS and record.data_dir is None):
        return None
    return record


def _run_header(source: Path) -> dict | None:
    folder = source if source.is_dir() else source.parent
    path = folder / "recipe.json"
    try:
        header = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) else None


def _existing(data_dir: object) -> str | None:
    return str(data_dir) if data_dir else None


def calibration_batch(member: Network, images: str | os.PathLike[str] | None = None, *, n: int = CALIBRATION_IMAGES) -> Tensor:
    """Normalised ``[N, C, H, W]`` calibration inputs for ``member``: from ``images`` (an image file or a
    folder searched for images) when given, else from its recorded training data; :class:`DataError`
    naming what to pass when neither exists."""
    pre = member.preprocess
    if images is not None:
        raw = _from_path(Path(images), pre.channels, n)
    else:
        record = recorded_data(member)
        if record is None:
            raise DataError(
                f"{member.source} records no training data to calibrate int8 on, and the images under test must not "
                "be used; pass `calibration` images (an image file or a folder of training images)"
            )
        raw = _from_record(record, pre.channels, n)
    return network_input(center_view(raw, pre), pre)


def _from_path(path: Path, channels: int, n: int) -> list[Tensor] | Tensor:
    if not path.exists():
        raise DataError(f"calibration images {path} do not exist; name an image file or a folder of images")
    files = find_images([path])
    if not files:
        raise DataError(f"{path} holds no image files to calibrate on")
    picked = [files[i] for i in spread_indices(len(files), min(n, len(files)))]
    return stack_or_list([read_image(f, channels) for f in picked])


def _from_record(record: RecordedData, channels: int, n: int) -> list[Tensor] | Tensor:
    if not record.image_folder:
        try:
            data = open_arrays(record.dataset, "train", record.data_dir)
        except DataError as err:
            raise DataError(f"cannot read the training data recorded with the network ({record.describe()}) to "
                            f"calibrate int8: {err}; pass `calibration` images instead") from None
        index = torch.tensor(spread_indices(len(data), min(n, len(data))), dtype=torch.int64)
        return match_channels(data.images[index], channels, f"the recorded training data ({record.describe()})")
    if record.data_dir is None or not Path(record.data_dir).is_dir():
        raise DataError(f"the training folder recorded with the network ({record.describe()}) is not here; "
                        "pass `calibration` images instead")
    root = split_folder(record.data_dir, "train", fallback=False, classes_at_root=True)
    return _from_path(root, channels, n)
