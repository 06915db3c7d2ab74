#!/usr/bin/env bash
# Installs what the notify tests need, idempotently: Debian's python3-aiosmtpd, the real SMTP
# server the email tests start on 127.0.0.1. Prints nothing once everything is present.
set -euo pipefail

log() { echo "[notify-deps] $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    log "root (or passwordless sudo) is needed to run: $*"
    exit 1
  fi
}

# Debian's package installs into the system interpreter, not into pyenv or a venv.
if /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  exit 0
fi
log "installing python3-aiosmtpd"
export DEBIAN_FRONTEND=noninteractive
if ! as_root apt-get install -y --no-install-recommends python3-aiosmtpd >/dev/null; then
  as_root apt-get update >/dev/null
  as_root apt-get install -y --no-install-recommends python3-aiosmtpd >/dev/null
fi
/usr/bin/python3 -c 'import aiosmtpd' || { log "python3-aiosmtpd is still missing"; exit 1; }
