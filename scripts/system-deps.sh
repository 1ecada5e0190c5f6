#!/usr/bin/env bash
# Debian packages the relay's tests and demo use: GStreamer's RTSP server (the fake camera, run with
# Debian's own python3 and its python3-gi), headless Chromium (the dashboard test, driven by Playwright
# through executable_path; Noto CJK so the zh-TW pages render) and PostgreSQL (the deployment database,
# started by the tests on loopback) and coturn (the TURN server, started by the tests on loopback).
set -euo pipefail
pkgs=(
  python3 python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav
  chromium fonts-dejavu-core fonts-noto-cjk
  postgresql
  coturn
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "system-deps: missing Debian packages (${missing[*]}); run this script as root" >&2; exit 1
  fi
else SUDO=""; fi
echo "system-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
