# The relay as a container: `docker build -t cctv-relay . && docker run -p 8080:8080 cctv-relay serve`
# (the default command runs the demo). Debian bookworm, as the relay's tests run on.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

# GStreamer's RTSP server backs the demo camera (relay/sample_camera, installed with the package, runs it
# with Debian's python3 and python3-gi); libgl/glib are what OpenCV and mediapipe load at import.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-rtsp-server-1.0 \
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav \
      libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY relay ./relay
COPY blur ./blur
COPY policies ./policies
RUN pip install . && useradd --system --uid 10001 --home /app relay && mkdir -p /app/var && chown relay /app/var

USER 10001
EXPOSE 8080
# WebRTC media uses UDP ports chosen by ICE; run with host networking or publish a UDP range in production.
ENTRYPOINT ["cctv-relay"]
CMD ["demo", "--host", "0.0.0.0", "--port", "8080"]
