"""How many viewer sessions one process serves to one user and on one camera.

A WHEP request takes a `Slot` before anything is decided or negotiated, and the slot is held until its
session ends (or the request fails), so requests arriving together are counted together: taking a slot is
one step on the event loop, with no await between the count and the claim."""

from __future__ import annotations

from collections import Counter

RETRY_AFTER_S = 10  # what a refused viewer is told to wait (a running session of theirs may end by then)


class SessionLimit(Exception):
    """Over a limit; the message says which, in one line."""


class Slot:
    """One session's place in the counts; `release()` once it ends (again does nothing)."""

    def __init__(self, quota: SessionQuota, user_id: int, camera_id: str) -> None:
        self._quota = quota
        self.user_id = user_id
        self.camera_id = camera_id
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._quota._give_back(self)


class SessionQuota:
    def __init__(self, per_user: int, per_camera: int) -> None:
        self.per_user = per_user
        self.per_camera = per_camera
        self._users: Counter[int] = Counter()
        self._cameras: Counter[str] = Counter()

    def take(self, user_id: int, username: str, camera_id: str) -> Slot:
        """A slot for a new session of `user_id` on `camera_id`, or SessionLimit."""
        if self._users[user_id] >= self.per_user:
            raise SessionLimit(f"{username} already has {self._users[user_id]} sessions running, the most "
                               f"one viewer may have; end one first")
        if self._cameras[camera_id] >= self.per_camera:
            raise SessionLimit(f"camera {camera_id} already has {self._cameras[camera_id]} viewers, the most "
                               f"it may have; try again later")
        self._users[user_id] += 1
        self._cameras[camera_id] += 1
        return Slot(self, user_id, camera_id)

    def users(self, user_id: int) -> int:
        return self._users[user_id]

    def cameras(self, camera_id: str) -> int:
        return self._cameras[camera_id]

    def _give_back(self, slot: Slot) -> None:
        for counter, key in ((self._users, slot.user_id), (self._cameras, slot.camera_id)):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]
