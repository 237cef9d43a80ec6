#!/usr/bin/env bash
# Install the mchub hub on Raspberry Pi OS / Debian from this source tree.
#
#   sudo deploy/edge/install.sh            install or upgrade, enable and start the service
#   PREFIX=/tmp/x NO_SYSTEMD=1 deploy/edge/install.sh   install into a test root (no users, no systemd)
#
# What it does: installs python3-venv if missing; copies this tree to $PREFIX/opt/mchub/app;
# builds $PREFIX/opt/mchub/venv with only the `edge` extra, exactly as pinned in uv.lock, its modules
# compiled (the service cannot write __pycache__ under ProtectSystem=strict: without this every start
# compiles every module again, slower and ~5 MB larger), also as the service runs them (-OO);
# creates the `mchub` service user (groups dialout + bluetooth for serial and BLE devices);
# creates /etc/mchub/hub.toml from the example when absent (never overwrites it) and
# /var/lib/mchub (0700); installs and enables mchub-edge.service. Re-running upgrades in place.
set -euo pipefail

PREFIX="${PREFIX:-}"
SRC="$(cd "$(dirname "$0")/../.." && pwd)"
APP="$PREFIX/opt/mchub/app"
VENV="$PREFIX/opt/mchub/venv"
TOOLS="$PREFIX/opt/mchub/tools"
ETC="$PREFIX/etc/mchub"
STATE="$PREFIX/var/lib/mchub"
UV_VERSION="$(sed -n 's/^UV_VERSION = "\(.*\)"/\1/p' "$SRC/dev.py")"

say() { echo "mchub-install: $*"; }

if [ -z "${NO_SYSTEMD:-}" ] && [ "$(id -u)" != 0 ]; then
  say "run as root (sudo $0)"; exit 1
fi
if ! python3 -c 'import ensurepip' 2>/dev/null; then
  say "installing python3-venv"; apt-get install -y -q python3-venv
fi

say "copying the application to $APP"
mkdir -p "$APP"
(cd "$SRC" && tar --exclude=.venv --exclude=.tools --exclude=.git --exclude='__pycache__' -cf - .) | (cd "$APP" && tar -xf -)

say "installing uv $UV_VERSION and the edge environment (from uv.lock)"
[ -x "$TOOLS/bin/uv" ] || { python3 -m venv "$TOOLS" && "$TOOLS/bin/pip" install -q "uv==$UV_VERSION"; }
(cd "$APP" && UV_PROJECT_ENVIRONMENT="$VENV" UV_PYTHON="$(command -v python3)" UV_PYTHON_DOWNLOADS=never \
  "$TOOLS/bin/uv" sync --frozen --quiet --no-dev --extra edge --no-editable --compile-bytecode)
# ... and compiled for the service's PYTHONOPTIMIZE=2 (mchub-edge.service: docstrings and asserts stripped)
"$VENV/bin/python" -OO -m compileall -q -j 0 "$VENV/lib" >/dev/null

mkdir -p "$ETC" "$STATE"
chmod 0700 "$STATE"
if [ ! -f "$ETC/hub.toml" ]; then
  say "writing $ETC/hub.toml from the example: edit it, then run 'mchub edge check-config'"
  cp "$SRC/deploy/edge/hub.example.toml" "$ETC/hub.toml"
fi

if [ -n "${NO_SYSTEMD:-}" ]; then
  say "NO_SYSTEMD set: skipping user and service setup"; exit 0
fi
id mchub >/dev/null 2>&1 || useradd --system --home-dir /var/lib/mchub --shell /usr/sbin/nologin mchub
for g in dialout bluetooth; do getent group "$g" >/dev/null && usermod -aG "$g" mchub; done
chown -R mchub:mchub "$STATE"
chown root:mchub "$ETC/hub.toml" && chmod 0640 "$ETC/hub.toml"
# staff PIN hashes: one 0600 file each, owned by the hub's user (mchub edge hash-password --out)
mkdir -p "$ETC/staff" && chown mchub:mchub "$ETC/staff" && chmod 0700 "$ETC/staff"
install -m 0644 "$SRC/deploy/edge/mchub-edge.service" /etc/systemd/system/mchub-edge.service
install -m 0644 "$SRC/deploy/edge/mchub-edge-backup.service" /etc/systemd/system/mchub-edge-backup.service
install -m 0644 "$SRC/deploy/edge/mchub-edge-backup.timer" /etc/systemd/system/mchub-edge-backup.timer
ln -sf "$VENV/bin/mchub" /usr/local/bin/mchub
systemctl daemon-reload
systemctl enable mchub-edge.service
systemctl enable --now mchub-edge-backup.timer
systemctl restart mchub-edge.service
say "done: 'systemctl status mchub-edge', 'mchub edge status --config /etc/mchub/hub.toml'"
