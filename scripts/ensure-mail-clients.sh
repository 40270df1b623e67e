#!/usr/bin/env bash
# The real mail clients the listener's tests drive: Debian's swaks, Jakarta Mail with a
# headless Java runtime (Keycloak's mail library), and Node with nodemailer from npm (into
# tests/clients/node, from its committed package-lock.json). Installed only when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v swaks >/dev/null 2>&1 || missing+=(swaks)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
[ -e /usr/share/java/jakarta-mail.jar ] || missing+=(libjakarta-mail-java)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -d tests/clients/node/node_modules/nodemailer ]; then
  (cd tests/clients/node && npm ci --no-audit --no-fund --loglevel=error)
fi
