"""What the service's route handlers find on the app: its services, typed, and who is asking.

The app's lifespan builds one `Services` and `install()`s it; handlers take `services(request)` rather
than reading untyped attributes of `app.state`. The policy context also stays where policies' own routers
and `policies.auth` look for it (`app.state.policies`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from policies.auth import require
from policies.context import PolicyContext
from policies.contract import Principal
from relay.cameras import CameraManager
from relay.cluster.replica import Replica
from relay.config import RelaySettings
from relay.sessions import SessionRegistry


@dataclass(frozen=True, slots=True)
class Services:
    context: PolicyContext  # the control plane: policy service, authenticator, access log, database
    cameras: CameraManager
    sessions: SessionRegistry
    settings: RelaySettings
    cluster: Replica  # this relay among those sharing the database: leases, placement, drain


def install(app: FastAPI, services: Services) -> None:
    app.state.policies = services.context
    app.state.services = services


def app_services(app: FastAPI) -> Services:
    found = app.state.services
    if not isinstance(found, Services):
        raise RuntimeError("the relay's services are not installed (outside the app's lifespan)")
    return found


def services(request: Request) -> Services:
    return app_services(request.app)


# Who is asking, through the one auth gate (policies.auth): 401/403 refusals are logged there.
Viewer = Annotated[Principal, Depends(require("view"))]
SignedIn = Annotated[Principal, Depends(require())]
