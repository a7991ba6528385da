#!/usr/bin/env bash
# Base images for the Dockerfiles on a machine that cannot pull from Docker Hub, made from
# Debian's own packages (mmdebstrap) and this machine's pip configuration:
#
#   postwerk-base:bookworm    Debian 12 with python3 (3.11), venv, pip and this machine's CA
#                             bundle (the one pip uses), so pip inside a build reaches the
#                             package index the way pip here does.
#   postwerk-wheels:local     the wheels in the folders pip's find-links names (here the
#                             CPU build of torch), as an image of *.whl files: model/Dockerfile
#                             hands them to pip without copying them into the image.
#
# It prints the variables to build with as shell exports (its progress goes to stderr), so
# `eval "$(scripts/local-base-image.sh)"` sets them. An image that exists is kept;
# REBUILD=1 makes both again. Needs root (or sudo) and a Docker engine.
set -euo pipefail

BASE_IMAGE=postwerk-base:bookworm
WHEELS_IMAGE=postwerk-wheels:local
SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)

exists() { docker image inspect "$1" >/dev/null 2>&1; }
say() { echo "$@" >&2; }

# The CA bundle and find-links folders pip uses here (`pip config list` names them).
pip_setting() {
    python3 -m pip config list 2>/dev/null | sed -n -E "s/^[^=]*\.$1='(.*)'$/\1/p" | head -n 1
}

build_base() {
    command -v mmdebstrap >/dev/null || {
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mmdebstrap >/dev/null
    }
    local ca_bundle work
    ca_bundle=${PIP_CERT:-$(pip_setting cert)}
    ca_bundle=${ca_bundle:-/etc/ssl/certs/ca-certificates.crt}
    work=$(mktemp -d)
    trap 'rm -rf "$work"' RETURN
    say "building $BASE_IMAGE from Debian's packages (about a minute) ..."
    # shellcheck disable=SC2016 # the hooks' "$1" is mmdebstrap's, expanded by it
    $SUDO mmdebstrap --quiet --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates \
        --dpkg-opt='path-exclude=/usr/share/doc/*' --dpkg-opt='path-exclude=/usr/share/man/*' \
        --dpkg-opt='path-exclude=/usr/share/locale/*' \
        --customize-hook="cp '$ca_bundle' \"\$1/etc/ssl/certs/ca-certificates.crt\"" \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
        bookworm "$work/base.tar"
    $SUDO docker import --change 'CMD ["python3"]' "$work/base.tar" "$BASE_IMAGE" >/dev/null
    say "  $BASE_IMAGE: $(docker image inspect --format '{{.Size}}' "$BASE_IMAGE" | numfmt --to=si)B"
}

build_wheels() {
    local folders wheels=() folder
    folders=$(pip_setting find-links)
    for folder in $folders; do
        [ -d "$folder" ] && wheels+=("$folder"/*.whl)
    done
    if [ ${#wheels[@]} -eq 0 ] || [ ! -e "${wheels[0]}" ]; then
        say "no local wheels (pip's find-links names none): torch comes from the index"
        return
    fi
    say "packing ${#wheels[@]} local wheel(s) into $WHEELS_IMAGE ..."
    tar --create --absolute-names --transform='s,.*/,,' "${wheels[@]}" | docker import - "$WHEELS_IMAGE" >/dev/null
}

if [ "${REBUILD:-0}" = 1 ] || ! exists "$BASE_IMAGE"; then build_base; fi
if [ "${REBUILD:-0}" = 1 ] || ! exists "$WHEELS_IMAGE"; then build_wheels; fi
echo "export POSTWERK_BASE_IMAGE=$BASE_IMAGE"
if exists "$WHEELS_IMAGE"; then echo "export POSTWERK_WHEELS_IMAGE=$WHEELS_IMAGE"; fi
