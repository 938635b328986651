"""``resnet predict --explain``: one PNG per image (the photo, the top-k classes, the CAM of the top class
over what the network saw) and an ``index.html`` contact sheet linking them, written atomically."""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..evaluate.predict import Failure, Prediction
from ..inference.network import Network
from ..utils.atomic import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    import torch

CAM_BATCH = 16  # images explained per backward pass


@dataclass
class Explained:
    """One written picture: the prediction it shows and the PNG's file name inside the output folder."""

    prediction: Prediction
    picture: str


def explain_predictions(
    member: Network, predictions: Sequence[Prediction], out: Path, method: str = "gradcam", failures: Sequence[Failure] = ()
) -> Path:
    """Write the pictures and the contact sheet for ``predictions`` into ``out``; returns the index.html path."""
    import torch

    from ..data.decode import read_image
    from ..evaluate.preprocess import network_input
    from . import network_view
    from .cam import cam_maps, overlay

    out.mkdir(parents=True, exist_ok=True)
    pre = member.preprocess
    done: list[Explained] = []
    for start in range(0, len(predictions), CAM_BATCH):
        chunk = predictions[start : start + CAM_BATCH]
        photos = [read_image(p.path, pre.channels) for p in chunk]
        views = [network_view(photo, pre) for photo in photos]
        maps = cam_maps(member.model, network_input(torch.stack(views), pre), method, [p.top[0][1] for p in chunk])
        for i, (pred, photo, view, heatmap) in enumerate(zip(chunk, photos, views, maps)):
            name = f"{start + i:04d}-{_safe_stem(pred.path)}.png"
            picture = render_picture(pred, _hwc(photo), overlay(_hwc(view), heatmap), method)
            atomic_write_bytes(out / name, picture)
            done.append(Explained(pred, name))
    index = out / "index.html"
    atomic_write_text(index, contact_sheet(done, failures, member, method))
    return index


def _hwc(image: "torch.Tensor") -> np.ndarray:
    return image.permute(1, 2, 0).numpy()


def _safe_stem(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem)[:60] or "image"


def render_picture(pred: Prediction, photo: np.ndarray, cam_overlay: np.ndarray, method: str) -> bytes:
    """PNG bytes: the photo as given, the network's view with the CAM over it, and the top-k as bars."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.4), dpi=100, layout="constrained")
    ax_photo, ax_cam, ax_bars = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.3]})
    ax_photo.imshow(photo[:, :, 0] if photo.shape[2] == 1 else photo, cmap="gray")
    ax_photo.set_title(_short(Path(pred.path).name, 40), fontsize=9)
    ax_cam.imshow(cam_overlay, interpolation="bilinear")
    ax_cam.set_title(f"{_method_title(method)}: {_short(pred.top[0][0], 30)}", fontsize=9)
    for ax in (ax_photo, ax_cam):
        ax.set_axis_off()
    names = [_short(c, 28) for c, _, _ in pred.top][::-1]
    probs = [100 * p for _, _, p in pred.top][::-1]
    ax_bars.barh(range(len(names)), probs, color="#3b78c2")
    ax_bars.set_yticks(range(len(names)), names, fontsize=8)
    ax_bars.set_xlim(0, 100)
    ax_bars.set_xlabel("probability (%)", fontsize=8)
    for y, p in enumerate(probs):
        ax_bars.text(min(p + 1, 80), y, f"{p:.1f}%", va="center", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _method_title(method: str) -> str:
    return {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "scorecam": "Score-CAM"}.get(method, method)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def contact_sheet(done: Sequence[Explained], failures: Sequence[Failure], member: Network, method: str) -> str:
    """A self-contained HTML page (no external URL) showing every picture with its top class."""
    esc = html.escape
    cards = "\n".join(
        f'<figure><a href="{esc(e.picture)}"><img src="{esc(e.picture)}" alt="{esc(e.prediction.path)}"></a>'
        f"<figcaption>{esc(e.prediction.path)}<br><b>{esc(e.prediction.top[0][0])}</b> "
        f"{100 * e.prediction.top[0][2]:.1f}%</figcaption></figure>"
        for e in done
    )
    errors = "".join(f"<li>{esc(f.error)}</li>" for f in failures)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(member.name)}: {esc(_method_title(method))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
main {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 1em; }}
figure {{ margin: 0; border: 1px solid #ddd; border-radius: 6px; padding: .5em; }}
img {{ width: 100%; }} figcaption {{ font-size: .85em; overflow-wrap: anywhere; }}
</style></head><body>
<h1>{esc(member.name)} — {esc(_method_title(method))} of the top class</h1>
<p>Network {esc(member.model_name)}, {len(done)} image(s); the map is drawn over the view the network saw
({member.preprocess.crop_size}×{member.preprocess.crop_size} pixels).</p>
{f"<h2>Not explained</h2><ul>{errors}</ul>" if errors else ""}
<main>
{cards}
</main></body></html>
"""
