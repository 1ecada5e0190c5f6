"""The camera manager: one pipeline per watched camera, started on demand and stopped `linger_s` after its
last viewer leaves (keepalive cameras stay connected from `start()` to `stop()`).

The manager knows cameras through `resolve(camera_id)`, which the app builds from the policy service's
CameraRuntime; any object with the CameraSpec attributes will do. One failing camera never affects another:
each pipeline owns its threads, and a source's failures stay in its health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from blur import Anonymizer, one_opencv_thread
from blur.profiles import get_profile
from relay.encoder import CODECS
from relay.health import CameraHealth
from relay.hub import Subscription
from relay.pipeline import FrameAnonymizer, Pipeline
from relay.sources import SourceOptions

log = logging.getLogger("relay.cameras")


class UnknownCamera(KeyError):
    """No such camera, or it is disabled."""

    def __str__(self) -> str:
        return f"unknown camera {self.args[0]!r}" if self.args else "unknown camera"


@dataclass(frozen=True, slots=True)
class CameraSpec:
    """What the data plane needs of a camera. `source_url` may hold credentials: never log or show it;
    `redacted_url` is what is shown instead, redacted by the caller (the app: policies' CameraRuntime)."""

    id: str
    name: str
    source_url: str = field(repr=False)
    redacted_url: str = ""
    privacy_masks: Sequence[Sequence[tuple[float, float]]] = ()
    keepalive: bool = False
    silhouettes: str = "grey"  # moving people's mosaic: "grey" or "colour" (the camera's setting)

    def __post_init__(self) -> None:
        if not self.redacted_url:  # never fall back to showing the real URL
            object.__setattr__(self, "redacted_url", "(source not shown)")

    @classmethod
    def of(cls, camera: Any) -> CameraSpec:
        """From policies' CameraRuntime or anything with the same attributes."""
        if isinstance(camera, CameraSpec):
            return camera
        url = camera.source_url
        return cls(id=camera.id, name=getattr(camera, "name", camera.id) or camera.id, source_url=url,
                   redacted_url=getattr(camera, "redacted_url", ""),
                   privacy_masks=tuple(tuple((float(x), float(y)) for x, y in poly)
                                       for poly in getattr(camera, "privacy_masks", None) or ()),
                   keepalive=bool(getattr(camera, "keepalive", False)),
                   silhouettes=str(getattr(camera, "silhouettes", None) or "grey"))


class LeaseGate(Protocol):
    """Who may pull a camera, when relays share the cameras (relay.cluster.LeaseKeeper): `acquire` before a
    pipeline starts (raises when another relay holds the camera, or this one may take no more), `release`
    once it has stopped."""

    async def acquire(self, camera_id: str) -> None: ...

    async def release(self, camera_id: str) -> None: ...


def default_anonymizer(camera: CameraSpec) -> FrameAnonymizer:
    one_opencv_thread()  # cameras are the relay's parallelism (process-wide, idempotent)
    config = get_profile("realtime").with_(silhouette_colour=camera.silhouettes == "colour")
    return Anonymizer(config, mode="pixelate", masks=[list(p) for p in camera.privacy_masks], live=True)


class CameraManager:
    def __init__(self, resolve: Callable[[str], Any | None], *, linger_s: float = 10.0,
                 anonymizer_factory: Callable[[CameraSpec], FrameAnonymizer] | None = None,
                 codec: str = "h264",
                 cameras: Callable[[], Iterable[Any]] | None = None,
                 source_options: SourceOptions | None = None,
                 leases: LeaseGate | None = None) -> None:
        """`resolve(id)`: the camera (CameraRuntime-like) or None if unknown/disabled. `cameras()`: all of
        them, used for keepalive at start() and to list idle cameras in health(); optional. `leases`: the
        gate a pipeline passes before it starts and is let out of once stopped (none: pull any camera)."""
        if codec not in CODECS:
            raise ValueError(f"unsupported codec {codec!r} (use {', '.join(CODECS)})")
        self._resolve = resolve
        self._list = cameras
        self.linger_s = linger_s
        self._factory = anonymizer_factory or default_anonymizer
        self.codec = codec
        self.source_options = source_options
        self._leases = leases
        self._pipelines: dict[str, Pipeline] = {}
        self._known: dict[str, CameraSpec] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._linger: dict[str, asyncio.TimerHandle] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> None:
        """Connect keepalive cameras (they stay connected with nobody watching)."""
        self._closed = False
        for camera in await asyncio.to_thread(self._all):
            spec = CameraSpec.of(camera)
            self._known[spec.id] = spec
            if spec.keepalive and getattr(camera, "enabled", True):
                try:
                    await self._ensure(spec)
                except Exception as exc:
                    log.error("camera %s: cannot start (%s)", spec.id, type(exc).__name__)

    async def sync(self) -> None:
        """Re-read the camera list after an admin change: start new keepalive cameras, apply changed
        sources or masks, stop cameras that are gone or disabled, let former keepalive ones linger."""
        current = {}
        for camera in await asyncio.to_thread(self._all):
            if getattr(camera, "enabled", True):
                spec = CameraSpec.of(camera)
                current[spec.id] = spec
        self._known = dict(current)
        for camera_id in [cid for cid in self._pipelines if cid not in current]:
            await self.restart(camera_id)
        for spec in current.values():
            pipeline = self._pipelines.get(spec.id)
            if spec.keepalive or pipeline is not None:
                try:
                    pipeline = await self._ensure(spec)
                except Exception as exc:
                    log.error("camera %s: cannot start (%s)", spec.id, type(exc).__name__)
                    continue
                if not spec.keepalive and not (pipeline.viewers or pipeline.raw_viewers):
                    self._idle(pipeline)

    async def stop(self) -> None:
        self._closed = True
        for handle in self._linger.values():
            handle.cancel()
        self._linger.clear()
        pipelines = list(self._pipelines.values())
        self._pipelines.clear()
        await asyncio.gather(*(self._stop_pipeline(p) for p in pipelines), *self._stopping,
                             return_exceptions=True)

    async def subscribe(self, camera_id: str, *, raw: bool = False) -> Subscription:
        """A viewer's subscription to the camera's anonymized (default) or raw rendition. Starts the pipeline
        if needed. Raises UnknownCamera (a KeyError) for unknown or disabled cameras."""
        if self._closed:
            raise RuntimeError("camera manager stopped")
        camera = await asyncio.to_thread(self._resolve, camera_id)
        if camera is None or not getattr(camera, "enabled", True):
            raise UnknownCamera(camera_id)
        spec = CameraSpec.of(camera)
        self._known[spec.id] = spec
        pipeline = await self._ensure(spec)
        self._cancel_linger(spec.id)
        return pipeline.subscribe(raw=raw)

    def health(self) -> dict[str, CameraHealth]:
        out = {cid: CameraHealth.idle(s.id, s.name, s.redacted_url, s.keepalive)
               for cid, s in self._known.items()}
        for cid, pipeline in self._pipelines.items():
            out[cid] = pipeline.health()
        return out

    def pipeline(self, camera_id: str) -> Pipeline | None:
        return self._pipelines.get(camera_id)

    async def restart(self, camera_id: str) -> None:
        """Drop a camera's pipeline (e.g. its source changed); its viewers' subscriptions end."""
        self._cancel_linger(camera_id)
        pipeline = self._pipelines.pop(camera_id, None)
        if pipeline is not None:
            await self._stop_pipeline(pipeline)

    # -- internals --------------------------------------------------------------------------------------

    def _all(self) -> list[Any]:
        return list(self._list()) if self._list is not None else []

    async def _ensure(self, spec: CameraSpec) -> Pipeline:
        lock = self._locks.setdefault(spec.id, asyncio.Lock())
        async with lock:
            pipeline = self._pipelines.get(spec.id)
            if pipeline is not None and not pipeline.stopped:
                old = pipeline.camera
                if ((old.source_url, old.privacy_masks, old.silhouettes)
                        == (spec.source_url, spec.privacy_masks, spec.silhouettes)):
                    pipeline.camera = spec  # name or keepalive may change without a reconnect
                    return pipeline
                # A new source, static masks or silhouettes: restart, so no frame leaves under the old ones.
                log.info("camera %s: source or masking changed, restarting its pipeline", spec.id)
                self._pipelines.pop(spec.id, None)
                await pipeline.stop()
            if self._leases is not None:
                await self._leases.acquire(spec.id)  # no frame pulled without the camera's lease
            try:
                anonymizer = await asyncio.to_thread(self._factory, spec)  # loads models: off the loop
                pipeline = Pipeline(spec, anonymizer, codec=self.codec, source_options=self.source_options)
                pipeline.on_idle(self._idle)
                pipeline.start()
            except BaseException:
                if self._leases is not None and spec.id not in self._pipelines:
                    await self._leases.release(spec.id)
                raise
            self._pipelines[spec.id] = pipeline
            log.info("camera %s (%s): pipeline started", spec.id, spec.redacted_url)
            return pipeline

    def _idle(self, pipeline: Pipeline) -> None:
        camera_id = pipeline.camera_id
        if pipeline.camera.keepalive or self._closed or self._pipelines.get(camera_id) is not pipeline:
            return
        self._cancel_linger(camera_id)
        loop = asyncio.get_running_loop()
        self._linger[camera_id] = loop.call_later(self.linger_s, self._expire, pipeline)

    def _expire(self, pipeline: Pipeline) -> None:
        camera_id = pipeline.camera_id
        self._linger.pop(camera_id, None)
        if self._pipelines.get(camera_id) is not pipeline or pipeline.viewers or pipeline.raw_viewers:
            return
        del self._pipelines[camera_id]
        log.info("camera %s: nobody watching for %g s, disconnected", camera_id, self.linger_s)
        task = asyncio.get_running_loop().create_task(self._stop_pipeline(pipeline))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _stop_pipeline(self, pipeline: Pipeline) -> None:
        """Stop a pipeline taken out of `_pipelines`; then its lease goes, unless a new pipeline of the
        same camera started meanwhile (it holds the lease on)."""
        try:
            await pipeline.stop()
        finally:
            if self._leases is not None and pipeline.camera_id not in self._pipelines:
                await self._leases.release(pipeline.camera_id)

    def _cancel_linger(self, camera_id: str) -> None:
        handle = self._linger.pop(camera_id, None)
        if handle is not None:
            with contextlib.suppress(Exception):
                handle.cancel()
