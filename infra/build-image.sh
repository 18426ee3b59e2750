#!/usr/bin/env bash
# Build infra/Dockerfile without a Docker daemon (buildah, vfs storage, chroot isolation),
# then run the image once to check it. Run as root from anywhere inside the repository:
#
#   apt-get install -y buildah debootstrap
#   infra/build-image.sh                      # base image made here from Debian packages
#   BASE_IMAGE=python:3.11-slim-bookworm infra/build-image.sh   # where Docker Hub is reachable
#
# The build context is `git archive HEAD`: the image holds one commit, never a working tree.
# Without BASE_IMAGE the script makes localhost/debian-python:3.11-bookworm with debootstrap
# (Debian bookworm minbase + python3.11, its venv module and `python`), the same Debian
# release and Python minor version as the official python:3.11-slim-bookworm.
# CA_BUNDLE=/path/to/ca.crt: behind a TLS-inspecting proxy, pip in the build stage trusts this
# bundle (mounted for the build's RUN steps only; nothing of it is left in the image).
#
# Checks, printed as it goes: the user is 10001, no compiler (gcc, cc, g++, c++, clang) is on
# the PATH or in /usr/bin, `attendwise --help` runs, and gunicorn serves /healthz and, after
# `attendwise db upgrade` against SQLite, /readyz with 200.
set -euo pipefail

export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
repo=$(git rev-parse --show-toplevel)
commit=$(git -C "$repo" rev-parse --short HEAD)
image=${IMAGE:-localhost/attendwise:$commit}
work=$(mktemp -d /tmp/attendwise-image.XXXXXX)
trap 'rm -rf "$work"' EXIT

if [[ -z "${BASE_IMAGE:-}" ]]; then
  BASE_IMAGE=localhost/debian-python:3.11-bookworm
  if ! buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
    echo "== base image: debootstrap bookworm from $mirror"
    debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror"
    cp /etc/resolv.conf "$work/rootfs/etc/resolv.conf"
    chroot "$work/rootfs" sh -c 'apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
           python3.11 python3.11-venv python-is-python3 ca-certificates \
      && apt-get clean && rm -rf /var/lib/apt/lists/*'
    rm -rf "$work/rootfs/etc/resolv.conf" "$work/rootfs/debootstrap"
    base=$(buildah from scratch)
    cp -a "$work/rootfs/." "$(buildah mount "$base")/"
    buildah umount "$base"
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env LANG=C.UTF-8 --cmd python3 "$base"
    buildah commit --rm "$base" "$BASE_IMAGE"
    rm -rf "$work/rootfs"
  fi
fi

echo "== build $image from $commit on $BASE_IMAGE"
mkdir "$work/context"
git -C "$repo" archive HEAD | tar -x -C "$work/context"
mounts=()
if [[ -n "${CA_BUNDLE:-}" ]]; then
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$work/pip.conf"
  mounts=(-v "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" -v "$work/pip.conf:/etc/pip.conf:ro")
fi
buildah bud --layers=false --build-arg "BASE_IMAGE=$BASE_IMAGE" "${mounts[@]}" \
  -f "$work/context/infra/Dockerfile" -t "$image" "$work/context"

echo "== check $image"
ctr=$(buildah from "$image")
trap 'buildah rm "$ctr" >/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
buildah run \
  --env ATTENDWISE_SECRET_KEY=image-check-not-a-real-secret-0123456789 \
  --env ATTENDWISE_DATABASE_URL=sqlite:////var/lib/attendwise/check.sqlite3 \
  --env GUNICORN_BIND=127.0.0.1:$port --env GUNICORN_WORKERS=2 \
  "$ctr" -- sh -eu -c '
    echo "user: $(id -u):$(id -g) ($(id -un))"
    test "$(id -u)" = 10001
    for tool in gcc cc g++ c++ clang; do
      if command -v "$tool" || ls /usr/bin/"$tool"* 2>/dev/null; then echo "compiler found: $tool"; exit 1; fi
    done
    echo "compilers: none (gcc, cc, g++, c++, clang)"
    attendwise --help | head -3
    attendwise db upgrade
    gunicorn --config /app/gunicorn.conf.py & pid=$!
    python - <<EOF
import sys, time, urllib.request
base = "http://127.0.0.1:'"$port"'"
for _ in range(120):
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
            print("GET /healthz:", r.status, r.read().decode()[:80])
        break
    except OSError:
        time.sleep(0.5)
else:
    sys.exit("gunicorn did not answer /healthz in 60 s")
with urllib.request.urlopen(base + "/readyz", timeout=5) as r:
    print("GET /readyz:", r.status, r.read().decode()[:200])
EOF
    kill -TERM "$pid"; wait "$pid" || true
    echo "gunicorn stopped on SIGTERM"'
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$image"
