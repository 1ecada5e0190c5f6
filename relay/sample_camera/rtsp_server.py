"""The sample camera's server: GStreamer's gst-rtsp-server serving an H.264 elementary stream (Annex B,
`.h264`) in a loop, like a live camera. Not imported by the relay: `relay.sample_camera.RtspServer` runs this
file as a script with Debian's /usr/bin/python3, which has python3-gi (the relay's own environment need not):

    /usr/bin/python3 rtsp_server.py --port 0 --path /cam --file sample.h264 --fps 25

Port 0 (the default) lets the system pick a free port when the server binds it; once it listens it prints
"READY rtsp://127.0.0.1:PORT/PATH" on stdout with the port it bound, or "ERROR ..." if it could not.
Optional --user/--password enable basic auth.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0, help="0: any free port (reported on READY)")
    ap.add_argument("--path", default="/cam")
    ap.add_argument("--file", required=True, help="H.264 Annex B elementary stream, looped")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--user")
    ap.add_argument("--password")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    # The parser restamps the looped stream at a steady rate; identity sync paces it like a live camera.
    factory.set_launch(
        f"( multifilesrc location={args.file} loop=true caps=video/x-h264,stream-format=byte-stream,"
        f"framerate={args.fps}/1 ! h264parse ! video/x-h264,framerate={args.fps}/1 ! identity sync=true "
        f"! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
    factory.set_shared(True)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_role_from_structure(Gst.Structure.new_from_string("user,media.factory.access=true,media.factory.construct=true"))
        factory.set_permissions(perms)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"ERROR cannot listen on port {args.port}", flush=True)
        return 1
    loop = GLib.MainLoop()
    signal.signal(signal.SIGTERM, lambda *_: loop.quit())
    print(f"READY rtsp://127.0.0.1:{server.get_bound_port()}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
