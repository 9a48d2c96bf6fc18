#!/usr/bin/env bash
# Install the system packages gapfill's local STAC API needs (PostgreSQL + PostGIS),
# only where dpkg says they are missing. Quick when everything is there.
set -euo pipefail

need=()
for pkg in postgresql postgresql-postgis; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
# postgresql-postgis is a metapackage; an installed versioned PostGIS is enough.
if [[ " ${need[*]-} " == *" postgresql-postgis "* ]] && ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1; then
  need=("${need[@]/postgresql-postgis}")
fi
need=(${need[@]+"${need[@]}"})
[ ${#need[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || {
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q "${need[@]}" >/dev/null
}
