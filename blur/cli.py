"""`cctv-relay anonymize`: anonymize image and video files offline.

Images become lossless PNG, videos H.264 MP4 (audio dropped), each with its input's stem in the output
folder. Files named as images (.png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp, ...) are read as images,
anything else as video (animated GIFs included). A bad input is reported on one line and the others are
still processed; the exit status is 1 if any input failed. The default profile is `quality`: files have no
real-time deadline, so every frame gets full detection. `realtime` treats a file as its camera would be
treated: a detection round every round(fps / detect_hz) frames, tracking in between, and a faster encoder.
Videos go through the engine's three stages on three threads (`blur.filepipe`): decoding, motion and
detection; tracking; masking and encoding. More than one core works, and the output does not depend on how
the threads interleave.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blur.filepipe import run_pipeline
from blur.media import (
    H264_FAST,
    H264_QUALITY,
    MediaError,
    VideoReader,
    VideoWriter,
    is_image_path,
    read_image,
    usable_cores,
    write_png,
)

PROG = "cctv-relay"
PROFILE_CHOICES = ("realtime", "quality")
MODE_CHOICES = ("blur", "pixelate", "solid")
# Profiles whose files run on their live detection schedule (counted in frames), with the faster encoder.
LIVE_SCHEDULE = frozenset({"realtime"})


@dataclass
class FileSummary:
    frames: int = 0
    faces: int = 0  # face boxes masked, summed over frames
    frames_with_faces: int = 0
    failsafe_frames: int = 0

    def add(self, report: Any) -> None:
        self.frames += 1
        n = len(report.boxes)
        self.faces += n
        self.frames_with_faces += int(n > 0)
        self.failsafe_frames += int(bool(report.failsafe))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "anonymize",
        help="mask faces in image and video files",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", type=Path, help="image or video files")
    parser.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="output folder (created if missing)"
    )
    parser.add_argument(
        "--profile",
        choices=PROFILE_CHOICES,
        default="quality",
        help="detector profile (default: quality; realtime is what live cameras use)",
    )
    parser.add_argument(
        "--mode", choices=MODE_CHOICES, default="pixelate", help="how faces are masked (default: pixelate)"
    )
    parser.set_defaults(func=run)


def _error(path: Path, reason: str) -> None:
    print(f"{PROG}: error: {path}: {reason}", file=sys.stderr, flush=True)


def _output_path(src: Path, out_dir: Path) -> Path:
    return out_dir / (src.stem + (".png" if is_image_path(src) else ".mp4"))


def engine_config(profile: str, fps: float | None = None) -> Any:
    """The engine's settings for a file of `fps` frames a second (None: a still image). A profile in
    `LIVE_SCHEDULE` detects on its live schedule, a round every round(fps / detect_hz) frames with tracking in
    between, as a camera at that rate gets it, but counted in frames: the output does not depend on how fast
    the machine is. Other profiles keep their own `detect_every` (`quality`: every frame)."""
    from blur.profiles import get_profile

    # A file has the machine to itself: a detection call may use every core (a camera's uses one).
    config = get_profile(profile).with_(detector_threads=usable_cores())
    if profile in LIVE_SCHEDULE and fps:
        config = config.with_(detect_every=max(1, round(fps / config.detect_hz)))
    return config


def encoder_options(profile: str) -> dict[str, str]:
    return dict(H264_FAST if profile in LIVE_SCHEDULE else H264_QUALITY)


def _anonymize_image(src: Path, dst: Path, anonymizer_factory: Any) -> FileSummary:
    img = read_image(src)
    anonymizer = anonymizer_factory(live=False)
    try:
        out, report = anonymizer.process_bgr(img)
    finally:
        anonymizer.close()
    write_png(dst, np.ascontiguousarray(out))
    summary = FileSummary()
    summary.add(report)
    return summary


def _anonymize_video(src: Path, dst: Path, anonymizer_factory: Any,
                     encoder: dict[str, str] | None = None) -> FileSummary:
    summary = FileSummary()
    with VideoReader(src) as reader:
        # One anonymizer per file: tracks must not carry over from one video into the next. Built before the
        # writer: an engine that cannot be built (DetectorUnavailable) leaves no partial output behind.
        anonymizer = anonymizer_factory(live=False, fps=float(reader.rate))
        try:
            writer = VideoWriter(dst, reader.width, reader.height, reader.rate, reader.time_base, encoder)
            try:
                def look(frames: Any) -> Any:
                    for frame in frames:
                        yield anonymizer.look(frame), frame.pts

                def plan(item: tuple[Any, int | None]) -> tuple[Any, int | None]:
                    return anonymizer.plan(item[0]), item[1]

                def finish(item: tuple[Any, int | None]) -> None:
                    out, report = anonymizer.finish(item[0])
                    summary.add(report)
                    writer.write(out, item[1])

                # The engine's three stages (`Anonymizer.look`, `plan`, `finish`) on three threads: decoding
                # with motion and detection on the reader thread, tracking and planning on this one, masking
                # with encoding on the writer thread. An error in any of them comes out here once all three
                # have stopped, so the partial file can be removed.
                run_pipeline(look(reader.frames()), plan, finish)
                writer.commit()
            except BaseException:
                writer.abort()
                raise
        finally:
            anonymizer.close()
    return summary


def _describe(src: Path, dst: Path, summary: FileSummary, video: bool) -> str:
    if not video:
        faces = f"{summary.faces} face{'s' if summary.faces != 1 else ''} masked"
        failsafe = ", failsafe (whole image masked)" if summary.failsafe_frames else ""
        return f"{src} -> {dst}: {faces}{failsafe}"
    return (
        f"{src} -> {dst}: {summary.frames} frames, {summary.faces} face boxes masked "
        f"in {summary.frames_with_faces} frames, {summary.failsafe_frames} failsafe frames"
    )


def run(args: argparse.Namespace) -> int:
    out_dir: Path = args.out
    if out_dir.exists() and not out_dir.is_dir():
        print(f"{PROG}: error: {out_dir}: --out must be a folder", file=sys.stderr)
        return 2
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(
            f"{PROG}: error: {out_dir}: cannot create output folder: {exc.strerror or exc}", file=sys.stderr
        )
        return 2

    try:
        from blur import Anonymizer, DetectorUnavailable, one_opencv_thread
    except ImportError as exc:  # the engine failing to load is a set-up problem, not a per-file one
        print(f"{PROG}: error: anonymizer unavailable: {exc}", file=sys.stderr)
        return 2
    one_opencv_thread()  # a file's stages keep the cores busy

    def factory(live: bool, fps: float | None = None) -> Any:
        return Anonymizer(engine_config(args.profile, fps), mode=args.mode, live=live)

    failed = 0
    claimed: dict[Path, Path] = {}
    for src in args.inputs:
        dst = _output_path(src, out_dir)
        key = dst.resolve()
        if key in claimed:
            _error(src, f"output {dst} would overwrite the output of {claimed[key]}; rename one of them")
            failed += 1
            continue
        if src.exists() and key == src.resolve():
            _error(src, "output would overwrite the input; choose another --out folder")
            failed += 1
            continue
        claimed[key] = src
        video = not is_image_path(src)
        try:
            if video:
                summary = _anonymize_video(src, dst, factory, encoder_options(args.profile))
            else:
                summary = _anonymize_image(src, dst, factory)
        except MediaError as exc:
            _error(src, str(exc))
            failed += 1
            continue
        except DetectorUnavailable as exc:  # a set-up problem: no other file would fare better
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted while processing {src}", file=sys.stderr)
            return 130
        except Exception as exc:  # one bad file must not stop the others; say what, without a traceback
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            _error(src, f"failed: {reason}")
            failed += 1
            continue
        print(_describe(src, dst, summary, video), flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Run `anonymize` on its own (`python -m blur.cli ...`), without the rest of the command line."""
    parser = argparse.ArgumentParser(prog=PROG)
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["anonymize", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
