"""Every tuning knob of the engine, and the named profiles, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from blur import maskers

SILHOUETTE_CELLS = ("perspective", "piece")


@dataclass(frozen=True)
class AnonymizerConfig:
    # Detector.
    detector: str = "centerface"          # "centerface" | "centerface-int8" | "blazeface" | "none" (motion
                                          # masking only)
    device: str = "cpu"
    detector_threads: int = 1             # onnxruntime threads per call: 1 per camera; a file may use more
    threshold: float = 0.09               # low on purpose: a false mask costs little, a missed face a lot
    # Whole-frame detection: one pass per factor, each lowered to fit `max_detect_pixels` (after
    # upscaling); larger factors find smaller faces.
    scales: tuple[float, ...] = (1.0, 2.0)
    max_detect_pixels: int = 1_000_000
    union_merge: bool = False             # merging passes: the kept box grows over the boxes it replaces
    # Zoom: small faces come in crowds, so the neighbourhood of every face found smaller than
    # `zoom_small_px` (grown by `zoom_grow` x, y) gets another pass at `zoom_scale` (0 = off).
    zoom_scale: float = 4.0
    zoom_small_px: float = 30.0
    zoom_grow: tuple[float, float] = (8.0, 4.8)
    zoom_max_pixels: int = 1_500_000      # all zoom regions of the first round together, after upscaling
    zoom_video_max_pixels: int = 500_000  # ...and of each later sweep (video: tracks keep earlier finds)
    # Masking. Detector boxes are tighter than a head (hair, chin), hence the margin and the extra height.
    margin: float = 1.4                   # box scale around a small detection (1.0 = the face box)
    margin_large: float = 1.15            # ...and around one at least `large_px` high
    large_px: float = 24.0
    vertical: float = 1.35                # extra height factor on top of the margin
    face_min_aspect: float = 0.7          # a face box narrower than this x its height is part of a face
                                          # (turned, half hidden): widened about its centre to it first
    shape: str = "ellipse"                # "ellipse" | "box"
    face_cells: int = 6                   # mosaic cells across a face mask's (grown) box...
    face_cells_large: int = 4             # ...and across one whose face was found at least `large_px` high:
                                          # a box on part of a large face must not leave cells finer than a
                                          # sixth of the face
    live_shape: str = "box"               # live mode: boxes are carried, not fresh; cover their corners
    crowd_neighbors: int = 0              # > 0: a face with this many others nearby is "in a crowd"...
    crowd_radius: float = 4.0             # ...nearby = within this many face heights...
    crowd_grow: tuple[float, float] = (2.2, 1.6)  # ...and its mask grows by (x, y) to cover missed faces
    # Video: how often detection runs and how boxes are carried between detections.
    detect_every: int = 1                 # offline: detect every N frames
    detect_hz: float = 2.0                # live: detection rounds per second on the worker thread
    sweep_share: float = 0.25             # live: whole-frame rounds may take this share of a core...
    full_sweep_s: float = 5.0             # whole-frame round at least this often (people standing still);
                                          # offline (detect_every) counted as full_sweep_s * detect_hz rounds
    motion_gating: bool = True            # between full sweeps, detect only in moving regions...
    motion_scale: float = 2.0             # ...upscaled by this...
    motion_max_pixels: int = 100_000      # ...within this many pixels (after upscaling) per round
    min_face_px: float = 16.0             # the smallest face the detector finds, in its input's pixels: a
                                          # round scaled down further cannot miss a smaller face's track
    motion_mask: bool = False             # also mask the head band of every moving blob (detector-free net)
    track: bool = True                    # False only for diagnosis: boxes then hold for one frame
    track_persist: int = 2                # drop a track after this many detections in a row missed it
    track_pad: float = 0.15               # extra box padding per frame of track age (fraction of size)
    track_shrink: float = 0.8             # a matched detection smaller than this share of the last one
                                          # found there covers both boxes until the next round confirms it
    # Fail closed.
    max_result_age_s: float = 2.5         # live: newest applied detection may be at most this old
    max_carry_s: float = 0.8              # live: a result from an older frame is not carried forward as
                                          # fresh (flow cannot follow that far): fail closed instead
    lead_frames: float = 2.0              # live: moving masks reach this many frames of motion each way
    guard_motion: bool = True             # video: mask whatever moves that no face mask accounts for (the
                                          # silhouettes of people whose faces were missed or not yet found)
    # Moving silhouettes: "perspective" cuts them into cells sized to the faces expected at each row (at
    # most 6 cells across a face there, learnt from this camera's detections), so a crowd stays a crowd;
    # "piece" cuts each moving piece into ~6 cells whatever its size (coarse on merged crowds).
    silhouette_cells: str = "perspective"
    silhouette_colour: bool = False       # True: silhouettes keep a mosaic of their colour; False: grey
    silhouette_max_cell: float = 0.0      # > 0: silhouette cells at most this share of the frame height
    perspective_min_score: float = 0.5    # detections that teach the perspective model
    perspective_hold: float = 0.8         # per re-cut of the mosaic (about a second): silhouette cells
                                          # may grow finer by at most a fifth, coarser at once
    motion_warmup: int = 5                # video: frames 1..motion_warmup-1 leave masked whole: until the
                                          # background has seen a few frames, a slow face's motion is a few
                                          # pixels wide and its silhouette does not cover it yet. (Frame 0 is
                                          # judged like a still image: by its detection round.)
    stall_timeout_s: float = 3.0          # live: a detector call running longer than this is stalled
    frame_budget_ms: float | None = None  # offline: a frame whose detection ran over this leaves fully masked
    extras: dict[str, float] = field(default_factory=dict)

    def with_(self, **changes: object) -> AnonymizerConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


PROFILES: dict[str, AnonymizerConfig] = {
    # Live: per-camera budget; detection a few times a second on a worker thread, tracking in between. The
    # 8-bit detector: half the time a call, as many faces found on video (benchmarks/README.md).
    "realtime": AnonymizerConfig(detector="centerface-int8"),
    # Offline: every frame, more scales, larger passes; cost is not the concern. Small faces are found by
    # the 6x zoom around small faces; a whole-image 4x pass adds little and masks texture on portraits.
    "quality": AnonymizerConfig(
        scales=(1.0, 2.0, 3.0), max_detect_pixels=4_000_000, zoom_scale=6.0,
        zoom_max_pixels=6_000_000, zoom_video_max_pixels=6_000_000, detect_every=1,
        motion_gating=False, frame_budget_ms=None,
    ),
}


def get_profile(name: str) -> AnonymizerConfig:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}") from None


def check_options(config: AnonymizerConfig, mode: str) -> None:
    """Refuse an unknown mask mode or shape when an engine is built, not on its first frame."""
    if mode not in maskers.MODES:
        raise ValueError(f"unknown mask mode {mode!r}: choose one of {', '.join(maskers.MODES)}")
    if config.silhouette_cells not in SILHOUETTE_CELLS:
        raise ValueError(f"unknown silhouette cells {config.silhouette_cells!r}: choose one of "
                         f"{', '.join(SILHOUETTE_CELLS)}")
    if not 0.0 <= config.perspective_hold <= 1.0:
        # Above 1 the cells would coarsen by themselves, step after step.
        raise ValueError(f"perspective_hold must be between 0 and 1, got {config.perspective_hold}")
    if not 0.0 <= config.face_min_aspect <= 2.0:
        # 0 turns it off; a face is about 0.8 as wide as it is high, so 2 already widens every box.
        raise ValueError(f"face_min_aspect must be between 0 and 2, got {config.face_min_aspect}")
    for shape in (config.shape, config.live_shape):
        if shape not in maskers.SHAPES:
            raise ValueError(f"unknown mask shape {shape!r}: choose one of {', '.join(maskers.SHAPES)}")
