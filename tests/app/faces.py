"""Is a sample face visible in a received frame? The test clip's faces walk along known rows, so we
search each walker's row for its face by normalized cross-correlation of high-passed images (fine detail
is what identifies a face, and what pixelation and blur remove): a visible face scores > 0.9 here, a
pixelated or blurred one < 0.35, wherever on its row it is, so no need to know which frame this is."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from relay.samples import Walker, face_patch

VISIBLE = 0.6  # at least this: the face is there to see (raw view)
MASKED = 0.5  # below this: no identifiable face (measured: masked 0.17-0.32, unmasked 0.91-0.94)


def _high_pass(gray: np.ndarray) -> np.ndarray:
    g = gray.astype(np.float32)
    return g - cv2.GaussianBlur(g, (0, 0), 2.0)


class FaceProbe:
    def __init__(self, walkers: Sequence[Walker]) -> None:
        self.walkers = tuple(walkers)
        self.templates = [_high_pass(cv2.cvtColor(face_patch(w.height), cv2.COLOR_BGR2GRAY)) for w in walkers]

    def scores(self, bgr: np.ndarray) -> list[float]:
        """Best match of each walker's face along its row (1.0 = identical)."""
        hp = _high_pass(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
        out = []
        for walker, tmpl in zip(self.walkers, self.templates, strict=True):
            band = hp[max(0, walker.y - 6) : walker.y + tmpl.shape[0] + 6]
            if band.shape[0] < tmpl.shape[0] or band.shape[1] < tmpl.shape[1]:
                out.append(0.0)
                continue
            out.append(float(cv2.matchTemplate(band, tmpl, cv2.TM_CCOEFF_NORMED).max()))
        return out

    def masked(self, bgr: np.ndarray) -> bool:
        """No walker's face is recognizable."""
        return max(self.scores(bgr)) < MASKED

    def visible(self, bgr: np.ndarray) -> bool:
        """Every walker's face is there to see."""
        return min(self.scores(bgr)) >= VISIBLE
