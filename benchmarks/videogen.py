"""Annotated test clips whose truth is known by construction: real faces moving over real CCTV footage.

Face crops are cut from the WIDER FACE validation images in `../shared/data/faces/wider-val-416/`
(faces at least 20 px tall, not marked invalid, with a margin of context around each), un-squashed back to
their original aspect, scaled to 15–80 px face height and pasted with a feathered edge onto a real
background from `../shared/data/videos/` (`BACKGROUNDS`): `vtest`, the fixed CCTV view `vtest_h264.mp4`
(768x576, 10 fps, frames held to 25 fps), or `crowd`, the dense crowd of `MOT20-08_960x366_127f.mp4`
(25 fps, scaled to fill 1280x720 and centre-cropped, played forward and back: ping-pong). Each face
follows a smooth path (straight or curved, walking to running speed, growing or shrinking as if approaching
or leaving the camera), entering or leaving the picture or appearing inside it, about 8–12 at a time; faces
move at the full 25 fps.

The clip is written to a caller-chosen (temporary) path and encoded to H.264, so the benchmark sees real
compression. Nothing generated here belongs in the repository: the face crops are for internal evaluation
only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from benchmarks.common import shared_data_dir

SIZE_BUCKETS: tuple[tuple[float, float], ...] = ((15, 20), (20, 30), (30, 45), (45, 60), (60, 81))
MIN_SIZE, MAX_SIZE = 15.0, 80.0
MIN_VISIBLE = (
    0.5  # a face-frame counts when at least half of its box is in the picture and not behind another face
)


@dataclass
class FaceCrop:
    image: np.ndarray  # BGR crop: the face plus context around it
    box: tuple[float, float, float, float]  # face box inside the crop: x, y, w, h (pixels of `image`)
    source: str  # WIDER image file it was cut from
    attributes: dict[str, int] = field(default_factory=dict)  # WIDER's occlusion, pose, blur, illumination


@dataclass
class Track:
    track_id: int
    crop: FaceCrop
    start: int  # first frame (may be negative: already on screen when the clip starts)
    duration: int
    p0: tuple[float, float]
    p1: tuple[float, float]
    p2: tuple[
        float, float
    ]  # quadratic Bezier: p0 -> p2 with control point p1 (p1 on the chord for straight paths)
    size0: float  # face height in px at the start
    size1: float  # ... and at the end
    kind: str  # "crossing", "curved", "appearing" or "stopping"
    speed: float  # face heights per second along the path
    moving: int | None = None  # "stopping": frames spent walking the path; then it stands at its end

    def state(self, frame: int) -> tuple[float, float, float] | None:
        """Face centre (x, y) and height at `frame`, or None when the track is not live."""
        t = frame - self.start
        if t < 0 or t >= self.duration:
            return None
        walk = self.duration if self.moving is None else self.moving
        u = min(1.0, t / max(1, walk - 1))
        a, b, c = (1 - u) ** 2, 2 * u * (1 - u), u**2
        x = a * self.p0[0] + b * self.p1[0] + c * self.p2[0]
        y = a * self.p0[1] + b * self.p1[1] + c * self.p2[1]
        size = self.size0 * (self.size1 / self.size0) ** u
        return x, y, size


@dataclass
class FaceFrame:
    """One face in one frame: its box in frame pixels (clipped to the picture) and which pixels show."""

    track_id: int
    box: tuple[int, int, int, int]  # x1, y1, x2, y2, clipped, exclusive end
    height: float  # face height in px (the size the face is drawn at)
    visible: np.ndarray  # bool mask over `box`: in the picture and not covered by a face drawn above it
    visible_share: float  # visible pixels / full (unclipped) box area


@dataclass
class ClipTruth:
    path: Path
    width: int
    height: int
    fps: int
    frames: list[list[FaceFrame]] = field(default_factory=list)
    tracks: list[Track] = field(default_factory=list)
    background: str = "vtest"

    def counted(self) -> list[list[FaceFrame]]:
        """The face-frames a benchmark scores: those with enough of the face showing."""
        return [[f for f in frame if f.visible_share >= MIN_VISIBLE] for frame in self.frames]

    def describe(self) -> dict:
        live = [len(f) for f in self.counted()]
        return {
            "frames": len(self.frames),
            "size": [self.width, self.height],
            "fps": self.fps,
            "face_tracks": len(self.tracks),
            "track_kinds": {
                k: sum(t.kind == k for t in self.tracks)
                for k in ("crossing", "curved", "appearing", "stopping")
            },
            "faces_per_frame": {"min": min(live), "median": float(np.median(live)), "max": max(live)},
            "face_frames_scored": int(sum(live)),
            "background": BACKGROUNDS[self.background].describe,
            "face_source": "WIDER FACE val (wider-val-416), faces >= 20 px tall, not invalid",
        }


def load_face_crops(
    data_dir: Path | None = None, min_height: float = 20.0, margin: float = 0.6
) -> list[FaceCrop]:
    """Cut every usable face with `margin` (share of the box size) of context on each side, un-squashed."""
    root = (data_dir or shared_data_dir()) / "faces" / "wider-val-416"
    meta = json.loads((root / "annotations.json").read_text())
    crops: list[FaceCrop] = []
    for entry in meta["images"]:
        img = cv2.imread(str(root / entry["file"]), cv2.IMREAD_COLOR)
        if img is None:
            continue
        sx, sy = entry["scale"]
        # The 416x416 files were stretched from the originals: undo it so faces have their real proportions.
        fx = 1.0 if sx >= sy else sy / sx
        fy = 1.0 if sy >= sx else sx / sy
        big = cv2.resize(img, None, fx=fx, fy=fy, interpolation=cv2.INTER_CUBIC)
        for (x, y, w, h), attrs in zip(entry["faces"], entry["face_attributes"], strict=True):
            if attrs["invalid"] or h < min_height:
                continue
            x, y, w, h = x * fx, y * fy, w * fx, h * fy
            mx, my = margin * w, margin * h
            x0, y0 = max(0, int(x - mx)), max(0, int(y - my))
            x1, y1 = (
                min(big.shape[1], math.ceil(x + w + mx)),
                min(big.shape[0], math.ceil(y + h + my)),
            )
            attrs = {k: int(attrs[k]) for k in ("occlusion", "pose", "blur", "illumination")}
            crops.append(FaceCrop(big[y0:y1, x0:x1].copy(), (x - x0, y - y0, w, h), entry["file"], attrs))
    if not crops:
        raise FileNotFoundError(f"no face crops found under {root}")
    return crops


def _feather(h: int, w: int, box: tuple[float, float, float, float]) -> np.ndarray:
    """Alpha: opaque over the face and a little around it, fading to zero at the crop edge."""
    bx, by, bw, bh = box
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = bx + bw / 2, by + bh / 2
    # Normalised distance outside the face box, 0 on the box edge, 1 on the crop edge.
    dx = np.maximum(np.abs(xx + 0.5 - cx) - bw / 2, 0) / max(1.0, min(cx, w - cx) - bw / 2)
    dy = np.maximum(np.abs(yy + 0.5 - cy) - bh / 2, 0) / max(1.0, min(cy, h - cy) - bh / 2)
    d = np.sqrt(dx**2 + dy**2)
    return np.clip(1.0 - (d - 0.3) / 0.7, 0.0, 1.0)[..., None]


def make_tracks(
    crops: list[FaceCrop], n_frames: int, width: int, height: int, fps: int, rng: np.random.Generator
) -> list[Track]:
    """Keep about 8–12 faces live at once; each track gets its own path, speed and size."""
    tracks: list[Track] = []
    large = [c for c in crops if c.box[3] >= 40]

    def spawn(start: int, already_on: bool) -> Track:
        size0 = float(math.exp(rng.uniform(math.log(MIN_SIZE), math.log(MAX_SIZE))))
        size1 = float(np.clip(size0 * math.exp(rng.uniform(-0.35, 0.35)), MIN_SIZE, MAX_SIZE))
        # Big faces come from big crops where possible, so upscaling stays modest.
        pool = large if max(size0, size1) > 50 and large else crops
        crop = pool[int(rng.integers(len(pool)))]
        heights_per_s = float(math.exp(rng.uniform(math.log(0.4), math.log(8.0))))
        speed = heights_per_s * size0 / fps  # px per frame
        kind = str(rng.choice(["crossing", "curved", "appearing"], p=[0.5, 0.3, 0.2]))
        duration = int(rng.integers(40, 320))
        length = speed * duration
        angle = rng.uniform(0, 2 * math.pi)
        direction = np.array([math.cos(angle), math.sin(angle)])
        if kind == "appearing":
            p0 = np.array([rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height])
        else:
            # Enter from the edge the path points away from, starting just outside the picture.
            edge_x = -size0 if direction[0] > 0 else width + size0
            edge_y = -size0 if direction[1] > 0 else height + size0
            if abs(direction[0]) > abs(direction[1]):
                p0 = np.array([edge_x, rng.uniform(0.1, 0.9) * height])
            else:
                p0 = np.array([rng.uniform(0.1, 0.9) * width, edge_y])
        p2 = p0 + direction * length
        mid = (p0 + p2) / 2
        if kind == "curved":
            normal = np.array([-direction[1], direction[0]])
            mid = mid + normal * length * rng.uniform(-0.6, 0.6)
        offset = int(rng.integers(0, duration - 10)) if already_on else 0
        return Track(
            track_id=len(tracks),
            crop=crop,
            start=start - offset,
            duration=duration,
            p0=(float(p0[0]), float(p0[1])),
            p1=(float(mid[0]), float(mid[1])),
            p2=(float(p2[0]), float(p2[1])),
            size0=size0,
            size1=size1,
            kind=kind,
            speed=heights_per_s,
        )

    for frame in range(n_frames):
        target = 11 + round(2 * math.sin(2 * math.pi * frame / 240))
        live = [t for t in tracks if t.state(frame) is not None and _on_screen(t, frame, width, height)]
        for _ in range(max(0, target - len(live))):
            tracks.append(spawn(frame, already_on=frame == 0))
    return tracks


def stopping_tracks(crops: list[FaceCrop], count: int, first_id: int, n_frames: int, width: int, height: int,
                    fps: int, rng: np.random.Generator) -> list[Track]:
    """People who walk in and then wait (at a crossing, a bus stop): each walks 1–3 s from the picture's
    edge to a point inside it, then stands there to the end of the clip, longer than the ~6.6 s after which
    a background model takes in someone who stopped."""
    out = []
    for i in range(count):
        size = float(math.exp(rng.uniform(math.log(20.0), math.log(MAX_SIZE))))
        crop = crops[int(rng.integers(len(crops)))]
        start = int(rng.integers(0, max(1, n_frames // 8)))
        moving = int(rng.integers(fps, 3 * fps))
        p2 = np.array([rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height])
        side = int(rng.integers(4))
        p0 = np.array([[-size, p2[1]], [width + size, p2[1]], [p2[0], -size], [p2[0], height + size]][side])
        mid = (p0 + p2) / 2
        out.append(Track(
            track_id=first_id + i, crop=crop, start=start, duration=n_frames - start,
            p0=(float(p0[0]), float(p0[1])), p1=(float(mid[0]), float(mid[1])),
            p2=(float(p2[0]), float(p2[1])), size0=size, size1=size, kind="stopping",
            speed=float(np.linalg.norm(p2 - p0)) / size / (moving / fps), moving=moving,
        ))
    return out


def _on_screen(track: Track, frame: int, width: int, height: int) -> bool:
    state = track.state(frame)
    if state is None:
        return False
    x, y, size = state
    return -1.5 * size < x < width + 1.5 * size and -1.5 * size < y < height + 1.5 * size


@dataclass(frozen=True)
class Background:
    """Real footage under the faces: `file` in the shared videos folder, its frame rate, and the size it is
    scaled to fill and centre-cropped to (None: as it is)."""

    file: str
    fps: int
    size: tuple[int, int] | None
    ping_pong: bool  # play forward then back (a short clip made long without a jump)
    describe: str


BACKGROUNDS: dict[str, Background] = {
    "vtest": Background("vtest_h264.mp4", 10, None, False,
                        "vtest_h264.mp4 (768x576, 10 fps), frames held to 25 fps"),
    "crowd": Background("MOT20-08_960x366_127f.mp4", 25, (1280, 720), True,
                        "MOT20-08_960x366_127f.mp4 (dense crowd, 960x366, 25 fps, 127 frames), scaled to "
                        "fill 1280x720 and centre-cropped, played forward and back (ping-pong)"),
}


def _background_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(container.streams.video[0])]


def fill_crop(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale `img` to fill width x height (cubic) and keep the middle."""
    h, w = img.shape[:2]
    scale = max(width / w, height / h)
    big = cv2.resize(img, (max(width, round(w * scale)), max(height, round(h * scale))),
                     interpolation=cv2.INTER_CUBIC)
    y0, x0 = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    return big[y0 : y0 + height, x0 : x0 + width]


def background_index(frame_no: int, fps: int, source: Background, count: int) -> int:
    """Which source frame shows at clip frame `frame_no` (held to the clip's rate; looped or ping-pong)."""
    index = frame_no * source.fps // fps
    if not source.ping_pong or count < 2:
        return index % count
    period = 2 * (count - 1)
    index %= period
    return index if index < count else period - index


def make_clip(
    out_path: Path,
    n_frames: int = 500,
    fps: int = 25,
    seed: int = 2026,
    data_dir: Path | None = None,
    crf: int = 23,
    stops: int = 0,
    background: str = "vtest",
) -> ClipTruth:
    """Render the clip, encode it to H.264 MP4 at `out_path`, and return the per-frame truth. `stops`: add
    that many people who walk in and then stand still (drawn in front; the rest of the clip is unchanged).
    `background`: a key of `BACKGROUNDS`."""
    data = data_dir or shared_data_dir()
    rng = np.random.default_rng(seed)
    source = BACKGROUNDS[background]
    backgrounds = _background_frames(data / "videos" / source.file)  # at source size: resized per frame
    if source.size is None:
        height, width = backgrounds[0].shape[:2]
    else:
        width, height = source.size
    crops = load_face_crops(data)
    tracks = make_tracks(crops, n_frames, width, height, fps, rng)
    if stops:
        more = np.random.default_rng([seed, 1])  # its own stream: the other tracks stay as they were
        tracks += stopping_tracks(crops, stops, len(tracks), n_frames, width, height, fps, more)
    truth = ClipTruth(out_path, width, height, fps, tracks=tracks, background=background)

    container = av.open(str(out_path), mode="w")
    stream = container.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": "medium"})
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    for frame_no in range(n_frames):
        bg = backgrounds[background_index(frame_no, fps, source, len(backgrounds))]
        canvas = (bg if source.size is None else fill_crop(bg, width, height)).astype(np.float32)
        owner = np.full((height, width), -1, dtype=np.int32)  # which face shows at each pixel
        placed: list[tuple[Track, tuple[float, float, float, float], float]] = []
        for track in tracks:  # list order is drawing order: later tracks pass in front of earlier ones
            state = track.state(frame_no)
            if state is None:
                continue
            cx, cy, size = state
            crop = track.crop
            scale = size / crop.box[3]
            ch, cw = crop.image.shape[:2]
            w, h = max(1, round(cw * scale)), max(1, round(ch * scale))
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            patch = cv2.resize(crop.image, (w, h), interpolation=interp).astype(np.float32)
            bx, by, bw, bh = (v * scale for v in crop.box)
            alpha = _feather(h, w, (bx, by, bw, bh))
            # Place so the face centre lands on the path point.
            ox = round(cx - (bx + bw / 2))
            oy = round(cy - (by + bh / 2))
            x0, y0, x1, y1 = max(0, ox), max(0, oy), min(width, ox + w), min(height, oy + h)
            if x0 >= x1 or y0 >= y1:
                continue
            sub_a = alpha[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
            sub_p = patch[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
            region = canvas[y0:y1, x0:x1]
            canvas[y0:y1, x0:x1] = region * (1 - sub_a) + sub_p * sub_a
            owner[y0:y1, x0:x1][sub_a[..., 0] > 0.5] = track.track_id
            placed.append((track, (ox + bx, oy + by, bw, bh), size))

        faces: list[FaceFrame] = []
        for track, (fx, fy, fw, fh), size in placed:
            x1f, y1f = math.floor(fx), math.floor(fy)
            x2f, y2f = math.ceil(fx + fw), math.ceil(fy + fh)
            full_area = max(1, (x2f - x1f) * (y2f - y1f))
            bx1, by1, bx2, by2 = max(0, x1f), max(0, y1f), min(width, x2f), min(height, y2f)
            if bx1 >= bx2 or by1 >= by2:
                continue
            visible = owner[by1:by2, bx1:bx2] == track.track_id
            share = float(visible.sum()) / full_area
            faces.append(FaceFrame(track.track_id, (bx1, by1, bx2, by2), size, visible, share))
        truth.frames.append(faces)

        out = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(out, format="bgr24").reformat(format="yuv420p")
        frame.pts = frame_no
        frame.time_base = Fraction(1, fps)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    return truth


def size_bucket(height: float) -> str:
    for lo, hi in SIZE_BUCKETS:
        if lo <= height < hi:
            return f"{lo:g}-{min(hi, MAX_SIZE):g}px"
    return f"{SIZE_BUCKETS[0][0]:g}-{SIZE_BUCKETS[0][1]:g}px" if height < SIZE_BUCKETS[0][0] else "60-80px"
