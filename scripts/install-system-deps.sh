#!/usr/bin/env bash
# System libraries the Python stack needs at import time (OpenCV/MediaPipe want libGL and GLib).
# Installs them with apt-get when they are missing and we are allowed to; otherwise says what to install.
set -euo pipefail
needed=()
ldconfig -p 2>/dev/null | grep -q "libGL.so.1" || needed+=(libgl1)
ldconfig -p 2>/dev/null | grep -q "libglib-2.0.so.0" || needed+=(libglib2.0-0)
[ ${#needed[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "installing system packages: ${needed[*]}"
  $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq "${needed[@]}" >/dev/null
else
  echo "warning: please install ${needed[*]} (OpenGL and GLib runtime libraries) with your package manager" >&2
fi
