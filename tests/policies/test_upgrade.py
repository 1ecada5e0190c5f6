"""A database made before purposes and roles had display names gets the column, and keeps its rows."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from policies.db import Database
from policies.models import Camera, Purpose


def test_labels_column_is_added_to_an_older_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = create_engine(url)
    with old.begin() as conn:  # the purposes and roles tables as an earlier version made them
        conn.execute(text("CREATE TABLE purposes (id VARCHAR(64) PRIMARY KEY, label VARCHAR(200), "
                          "allows_raw BOOLEAN)"))
        conn.execute(text("CREATE TABLE roles (name VARCHAR(64) PRIMARY KEY, description TEXT, "
                          "can_view BOOLEAN, can_request_raw BOOLEAN, can_approve_raw BOOLEAN, "
                          "can_admin BOOLEAN, can_audit BOOLEAN)"))
        conn.execute(text("INSERT INTO purposes VALUES ('flood_watch', 'Flood watch', 0)"))
    old.dispose()
    db = Database(url)
    db.create_all()
    db.create_all()  # twice: nothing left to add
    with db.session() as s:
        purpose = s.get(Purpose, "flood_watch")
        assert purpose is not None and purpose.label == "Flood watch" and purpose.labels == {}
        purpose.labels = {"zh-TW": "淹水監看", "en": "Flood watch"}
    with db.session() as s:
        assert s.get(Purpose, "flood_watch").labels["zh-TW"] == "淹水監看"
    db.dispose()


def test_cameras_made_before_the_silhouette_setting_stay_grey(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = create_engine(url)
    with old.begin() as conn:  # the cameras table before `silhouettes`
        conn.execute(text("CREATE TABLE cameras (id VARCHAR(64) PRIMARY KEY, name VARCHAR(200), "
                          "latitude FLOAT, longitude FLOAT, address VARCHAR(300), district VARCHAR(100), "
                          "agency VARCHAR(200), purposes JSON, tags JSON, signage BOOLEAN, source_url TEXT, "
                          "source_username VARCHAR(200), source_password VARCHAR(200), privacy_masks JSON, "
                          "keepalive BOOLEAN, enabled BOOLEAN, updated_at DATETIME)"))
        conn.execute(text("INSERT INTO cameras VALUES ('cam-1', 'Old camera', NULL, NULL, '', '', '', '[]', "
                          "'[]', 1, '', NULL, NULL, '[]', 0, 1, '2026-01-01 00:00:00')"))
    old.dispose()
    db = Database(url)
    db.create_all()
    with db.session() as s:
        camera = s.get(Camera, "cam-1")
        assert camera is not None and camera.name == "Old camera" and camera.silhouettes == "grey"
    db.dispose()
