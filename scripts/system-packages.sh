#!/usr/bin/env bash
# Install the system packages gapfill's local STAC API needs (PostgreSQL + PostGIS),
# only where dpkg says they are missing. Quick when everything is there.
set -euo pipefail

need=()
dpkg -s postgresql >/dev/null 2>&1 || need+=(postgresql)
# Any installed PostGIS for the server's major version will do (postgresql-15-postgis-3
# here); the metapackage postgresql-postgis picks the one of the default server.
if ! dpkg -s postgresql-postgis >/dev/null 2>&1 \
    && ! ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1; then
  need+=(postgresql-postgis)
fi
[ ${#need[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q "${need[@]}" >/dev/null 2>&1; then
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q "${need[@]}" >/dev/null
fi
