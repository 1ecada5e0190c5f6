"""What the administrator console needs of the data plane: a still of a camera's picture to draw privacy
masks over. It is the running pipeline's anonymized output (faces masked, the camera's static masks
applied), never a frame from before the anonymizer; asked under the purpose "camera configuration" by
someone who may configure cameras, and logged like a view (`view.still`)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated

import cv2
import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response

from policies.auth import client_address, require
from policies.contract import Principal
from policies.schemas import IDENT_MAX, problems
from relay.cameras import UnknownCamera
from relay.services import services

log = logging.getLogger("relay.consoles")
router = APIRouter(tags=["cameras"])
Admin = Annotated[Principal, Depends(require("admin"))]
STILL_PURPOSE = "camera_configuration"
STILL_WAIT_S = 15.0  # for a frame the engine vouches for (the first ones are masked whole)
STILL_MAX_SIDE = 1280  # the editor needs the geometry, not full resolution
STILLS_AT_ONCE = 4  # per app: each holds a subscription (and may start a pipeline) for up to STILL_WAIT_S


def _jpeg(picture: np.ndarray) -> bytes:
    h, w = picture.shape[:2]
    scale = min(1.0, STILL_MAX_SIDE / max(h, w))
    if scale < 1.0:
        picture = cv2.resize(picture, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise HTTPException(503, detail="the still could not be encoded")
    return bytes(data)


@router.get("/api/cameras/{camera_id}/still", summary="An anonymized still of a camera, to draw masks over",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}},
                                                **problems(401, 403, 404, 429, 503)})
async def camera_still(camera_id: Annotated[str, Path(max_length=IDENT_MAX)], request: Request,
                       who: Admin) -> Response:
    state = request.app.state  # counted on the event loop: no lock needed
    running = getattr(state, "stills_running", 0)
    if running >= STILLS_AT_ONCE:
        raise HTTPException(429, detail="too many camera stills being taken; try again",
                            headers={"Retry-After": "2"})
    state.stills_running = running + 1
    try:
        return await _still(camera_id, request, who)
    finally:
        state.stills_running -= 1


async def _still(camera_id: str, request: Request, who: Principal) -> Response:
    svc = services(request)
    audit = svc.context.audit

    def log_entry(decision: str, reason: str) -> None:
        audit.append("view.still", actor=who.username, roles=who.roles, camera_id=camera_id,
                     purpose=STILL_PURPOSE, mode="anonymized", decision=decision, reason=reason,
                     details={"client": client_address(request)})

    try:
        subscription = await svc.cameras.subscribe(camera_id)  # frames are anonymized only while watched
    except UnknownCamera:
        await asyncio.to_thread(log_entry, "deny", f"unknown camera {camera_id} or it is disabled")
        raise HTTPException(404, detail=f"unknown camera {camera_id!r}, or it is disabled") from None
    except Exception as exc:  # another relay holds the camera's lease, or this one may pull no more
        log.warning("still of %s: cannot subscribe (%s)", camera_id, type(exc).__name__)
        await asyncio.to_thread(log_entry, "deny", "camera cannot be streamed right now")
        raise HTTPException(503, detail=f"camera {camera_id!r} cannot be streamed right now") from None
    try:
        pipeline = svc.cameras.pipeline(camera_id)
        if pipeline is None:
            raise HTTPException(503, detail="the camera's stream stopped; try again")
        deadline = time.monotonic() + STILL_WAIT_S
        found: tuple[np.ndarray, bool] | None = None
        while found is None or found[1]:  # until a frame the engine vouches for, or the wait is over
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                found = await asyncio.wait_for(pipeline.next_still(), left)
            except TimeoutError:
                break
    finally:
        subscription.close()
    if found is None:
        await asyncio.to_thread(log_entry, "deny", "no picture from the camera")
        raise HTTPException(503, detail=f"no picture from camera {camera_id!r} within {STILL_WAIT_S:g} s")
    picture, failsafe = found
    body = await asyncio.to_thread(_jpeg, picture)
    # Logged before it is shown, like a view: the evidence first.
    await asyncio.to_thread(log_entry, "allow", "masked whole (the engine was not ready)" if failsafe else "")
    return Response(body, media_type="image/jpeg",
                    headers={"Cache-Control": "no-store", "X-Still-Masked-Whole": str(failsafe).lower()})
