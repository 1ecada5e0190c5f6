"""The public register needs no login and gives away nothing secret: no stream URLs, credentials or
privacy masks, no disabled cameras, no user names in the statistics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from policies.context import PolicyContext
from policies.models import Camera
from policies.register import router as register_router

ADDRESS = "Zhongshan Rd Sec. 2 & Nanjing E Rd"
SECRETS = ("rtsp://", "s3cret-pw", "hunter2-secret", "10.20.30.40", "cam-admin", "0.123456")


@pytest.fixture
def client(context: PolicyContext) -> Iterator[TestClient]:
    with context.db.session() as s:
        s.add(Camera(id="zs-001", name="Zhongshan Rd / Nanjing Rd", latitude=25.0522, longitude=121.5203,
                     address=ADDRESS, district="Zhongshan", agency="Taipei Police",
                     purposes=["public_safety", "traffic_management"], signage=True,
                     source_url="rtsp://cam-admin:s3cret-pw@10.20.30.40:554/stream1",
                     source_username="cam-admin", source_password="hunter2-secret",
                     privacy_masks=[[[0.123456, 0.1], [0.3, 0.1], [0.3, 0.4]]]))
        s.add(Camera(id="da-002", name="Da'an Park gate", latitude=25.0300, longitude=121.5350,
                     district="Da'an", agency="Parks Office", purposes=["public_safety"], signage=False,
                     source_url="http://cam-admin:s3cret-pw@10.20.30.40/mjpeg"))
        s.add(Camera(id="da-003", name="Unlocated", district="Da'an", purposes=["disaster_response"],
                     source_url="rtsp://10.20.30.40/x"))
        s.add(Camera(id="off-9", name="Decommissioned", district="Wanhua", enabled=False,
                     source_url="rtsp://10.20.30.40/old"))
    app = FastAPI()
    app.state.policies = context
    app.include_router(register_router)
    with TestClient(app) as c:
        yield c


def assert_no_secrets(body: str) -> None:
    for secret in SECRETS:
        assert secret not in body
    assert "source" not in body and "password" not in body and "mask" not in body
    assert "off-9" not in body and "Decommissioned" not in body


def test_cameras_json(client: TestClient) -> None:
    resp = client.get("/public/cameras.json")  # no credentials at all
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "public, max-age=60"
    assert_no_secrets(resp.text)
    body = resp.json()
    assert body["count"] == 3 and body["districts"] == {"Da'an": 2, "Zhongshan": 1}
    cam = next(c for c in body["cameras"] if c["id"] == "zs-001")
    assert cam == {
        "id": "zs-001", "name": "Zhongshan Rd / Nanjing Rd",
        "location": {"latitude": 25.0522, "longitude": 121.5203, "address": ADDRESS,
                     "district": "Zhongshan"},
        "agency": "Taipei Police",
        "purposes": [{"id": "public_safety", "label": "Public safety (公共安全)",
                      "labels": {"zh-TW": "公共安全", "en": "Public safety"}},
                     {"id": "traffic_management", "label": "Traffic management (交通管理)",
                      "labels": {"zh-TW": "交通管理", "en": "Traffic management"}}],
        "signage": True,
    }
    assert client.get("/public/districts.json").json() == {"Da'an": 2, "Zhongshan": 1}


def test_cameras_geojson(client: TestClient) -> None:
    resp = client.get("/public/cameras.geojson")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/geo+json"
    assert_no_secrets(resp.text)
    doc = resp.json()
    assert doc["type"] == "FeatureCollection"
    features = {f["id"]: f for f in doc["features"]}
    assert set(features) == {"zs-001", "da-002", "da-003"}
    assert features["zs-001"]["geometry"] == {"type": "Point", "coordinates": [121.5203, 25.0522]}
    assert features["da-003"]["geometry"] is None
    assert features["da-002"]["properties"]["signage"] is False
    assert features["da-002"]["properties"]["district"] == "Da'an"


def test_stats_json_counts_views_without_names(client: TestClient, context: PolicyContext) -> None:
    starts = [context.audit.append("view.start", actor="officer.lin", roles=["police_investigator"],
                                   camera_id=cam, purpose=purpose, mode=mode)
              for cam, purpose, mode in [("zs-001", "traffic_management", "anonymized")] * 3 + [
                  ("zs-001", "criminal_investigation", "raw"), ("off-9", "public_safety", "anonymized")]]
    context.audit.append("view.request", actor="officer.lin", camera_id="da-002", purpose="public_safety",
                         decision="deny", reason="outside hours")
    resp = client.get("/public/stats.json")
    assert resp.status_code == 200
    assert "officer.lin" not in resp.text and "police_investigator" not in resp.text
    assert "off-9" not in resp.text and "outside hours" not in resp.text
    # Counted in the month of each entry's own time in Taipei (a clock read here could be a month later).
    months = [e.ts.astimezone(ZoneInfo("Asia/Taipei")).strftime("%Y-%m") for e in starts[:4]]
    views = Counter((m, e.purpose, e.mode) for m, e in zip(months, starts[:4], strict=True))
    assert resp.json() == {
        "views": [{"month": m, "camera_id": "zs-001", "purpose": p, "mode": mode, "count": n}
                  for (m, p, mode), n in sorted(views.items())],
        "monthly_totals": dict(sorted(Counter(months).items())), "timezone": "Asia/Taipei",
    }
    # Reading the register is not an access to anyone's data: nothing was refused or logged for it.
    assert context.audit.query(kind="auth") == []
