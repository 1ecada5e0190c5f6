"""How the readable-face rule of privacy_video scores masks that are, by construction, at least as coarse as
its reference: real faces, mosaics of known cell counts laid on a grid that is not the face's own.

The rule (`legibility.face_readability`): a masked face is *readable* when its SSIM to the original exceeds
that of a 6-cell mosaic aligned with the face box, + 0.05. The engine's masks are never aligned with the
face: a silhouette's grid is fixed to the picture, a face mask's to the detector's grown box. This measures,
for WIDER FACE val faces scaled to each height, how often the rule flags a mosaic of N cells down the face
laid at a random offset (and a Gaussian blur, for comparison), so that the privacy_video figures can be read
against the rule's own floor. Writes benchmarks/results/readable_rule.{json,png}.

`python -m benchmarks.readable_rule [--faces N]`
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import cv2
import numpy as np

from benchmarks import legibility as leg
from benchmarks.common import write_results
from benchmarks.videogen import load_face_crops

HEIGHTS = (20, 30, 45, 60, 80)
CELLS = (8, 6, 5, 4, 3)       # mosaic cells down the face, at a random grid offset
BLURS = (12, 8)               # Gaussian blur, sigma = face height / this


def grid_mosaic(img: np.ndarray, cell: int, offset: tuple[int, int]) -> np.ndarray:
    """Block means of `cell` px squares on a grid shifted by `offset` (x, y), over the whole picture."""
    h, w = img.shape
    ox, oy = offset
    pad = np.pad(img, ((oy, cell), (ox, cell)), mode="edge")
    ph, pw = (pad.shape[0] // cell) * cell, (pad.shape[1] // cell) * cell
    blocks = pad[:ph, :pw].reshape(ph // cell, cell, pw // cell, cell).mean(axis=(1, 3))
    return np.repeat(np.repeat(blocks, cell, 0), cell, 1)[oy:oy + h, ox:ox + w]


def measure(faces: int, seed: int = 7) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    crops = load_face_crops()
    picked = [crops[i] for i in rng.choice(len(crops), min(faces, len(crops)), replace=False)]
    masks = [f"mosaic {c} cells" for c in CELLS] + [f"blur sigma h/{b}" for b in BLURS]
    flagged = {m: {h: 0 for h in HEIGHTS} for m in masks}
    counted = {h: 0 for h in HEIGHTS}
    for crop in picked:
        bx, by, bw, bh = crop.box
        for height in HEIGHTS:
            f = height / bh
            img = cv2.resize(crop.image, None, fx=f, fy=f,
                             interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
            grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
            x1, y1 = int(bx * f), int(by * f)
            x2, y2 = min(grey.shape[1], int((bx + bw) * f)), min(grey.shape[0], int((by + bh) * f))
            if x2 - x1 < 8 or y2 - y1 < 8:
                continue
            counted[height] += 1
            face = grey[y1:y2, x1:x2]
            for cells in CELLS:
                cell = max(1, round((y2 - y1) / cells))
                masked = grid_mosaic(grey, cell, (int(rng.integers(cell)), int(rng.integers(cell))))
                flagged[f"mosaic {cells} cells"][height] += leg.readable(
                    *leg.face_readability(face, masked[y1:y2, x1:x2]))
            for b in BLURS:
                blurred = cv2.GaussianBlur(grey, (0, 0), (y2 - y1) / b)
                flagged[f"blur sigma h/{b}"][height] += leg.readable(
                    *leg.face_readability(face, blurred[y1:y2, x1:x2]))
    share = {m: {str(h): flagged[m][h] / counted[h] for h in HEIGHTS if counted[h]} for m in masks}
    return {"faces": {str(h): counted[h] for h in HEIGHTS}, "readable_share": share}


def _figure(result: dict[str, Any]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, by_height in result["readable_share"].items():
        ax.plot([int(h) for h in by_height], [100 * v for v in by_height.values()], marker="o", label=name)
    ax.set_xlabel("face height (px)")
    ax.set_ylabel("flagged readable (%)")
    ax.set_title("Readable rule on masks at a random grid offset (WIDER faces)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=300, help="WIDER faces to sample (default 300)")
    args = parser.parse_args(argv)
    result = measure(args.faces)
    for name, by_height in result["readable_share"].items():
        print(f"{name:<18} " + " ".join(f"{h:>3} px {100 * v:5.1f} %" for h, v in by_height.items()))
    write_results("readable_rule", {
        "benchmark": "readable_rule",
        "what": "share of faces the readable rule flags, per mask known to be at least as coarse as told",
        "rule": f"SSIM to the original > that of a {leg.MOSAIC_CELLS}-cell mosaic aligned with the face box "
                f"+ {leg.READABLE_MARGIN}",
        **result,
    }, _figure(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
