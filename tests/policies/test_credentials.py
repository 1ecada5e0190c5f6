"""Camera URLs are redacted in one place (policies.credentials.redact_url): user names, passwords and
secret query values never reach logs, screens, policy exports or the access log."""

from __future__ import annotations

from policies.credentials import redact_url, url_secrets


def test_user_names_passwords_and_query_secrets_are_redacted() -> None:
    assert redact_url("http://cam/mjpeg?user=ops&password=s3cret") == "http://cam/mjpeg?user=***&password=***"
    assert redact_url("rtsp://admin:pw@10.0.0.5:554/live?channel=1") == "rtsp://***@10.0.0.5:554/live?channel=1"
    assert redact_url("rtsp://ops@10.0.0.5/live") == "rtsp://***@10.0.0.5/live"
    keys = ("password", "pass", "pwd", "token", "key", "apikey", "secret", "auth", "signature", "sig", "user",
            "username", "X-Amz-Credential", "session_id")
    query = "&".join(f"{k}=v{n}" for n, k in enumerate(keys))
    shown = redact_url(f"https://cam.example/v.m3u8?{query}&channel=2")
    assert shown == "https://cam.example/v.m3u8?" + "&".join(f"{k}=***" for k in keys) + "&channel=2"
    assert redact_url("rtsp://10.0.0.5/live#transport=udp") == "rtsp://10.0.0.5/live"
    assert redact_url("http://[::1/x") == "<unparseable url>"
    assert url_secrets("rtsp://a%40b:p%3Aw@h/x?token=t&n=1") == ["a@b", "p:w", "t"]
