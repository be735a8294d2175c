#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and run mr2ct, and nothing else: a
# Vulkan driver. Without a GPU, Mesa's lavapipe (package mesa-vulkan-drivers) gives wgpu a CPU
# adapter. On Debian 12 the lavapipe of Mesa 25 from bookworm-backports is installed instead of
# bookworm's Mesa 22.3: the same training iteration runs about 1.6x faster on it
# (benches/NOTES.md). A machine that already has Mesa >= 25, or a Vulkan driver that is not
# Mesa's (a GPU vendor's), is left alone, and the script says what it found.
#
# `--mpi` also installs what `cargo build --features mpi` (training on several GPUs or hosts
# with mpirun/srun) needs: OpenMPI (libopenmpi-dev, openmpi-bin) and libclang-dev, with which
# the mpi crate's bindgen reads mpi.h. Without it nothing MPI is installed.
set -euo pipefail

WANT_MPI=0
for arg in "$@"; do
    case "$arg" in
        --mpi) WANT_MPI=1 ;;
        *) echo "setup: unknown option $arg (known: --mpi)" >&2; exit 2 ;;
    esac
done

MIN_MESA=25
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

have_icd() {
    for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
        compgen -G "$d/*.json" >/dev/null 2>&1 && return 0
    done
    [ -n "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ]
}

mesa_version() {
    { dpkg-query -W -f='${Status} ${Version}\n' mesa-vulkan-drivers 2>/dev/null || true; } | awk '$3 == "installed" { print $4 }'
}

codename() {
    (. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}") || true
}

apt_updated=0
apt_update() {
    [ "$apt_updated" -eq 1 ] || { $SUDO apt-get update -qq; apt_updated=1; }
}

# Adds Debian 12's backports suite (same mirror as the system's sources) unless it is there.
enable_bookworm_backports() {
    if grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        return 0
    fi
    echo "setup: adding the bookworm-backports suite (/etc/apt/sources.list.d/mr2ct-backports.sources)" >&2
    $SUDO tee /etc/apt/sources.list.d/mr2ct-backports.sources >/dev/null <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    apt_updated=0
}

installed="$(mesa_version)"
major="${installed%%.*}"
if [ -n "$installed" ] && [ "${major:-0}" -ge "$MIN_MESA" ] 2>/dev/null; then
    echo "setup: found Mesa $installed lavapipe (mesa-vulkan-drivers >= $MIN_MESA); leaving it" >&2
elif [ -z "$installed" ] && have_icd; then
    echo "setup: found a Vulkan driver that is not Mesa's ($(ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null | tr '\n' ' ')); leaving it" >&2
elif [ "$(codename)" = "bookworm" ]; then
    echo "setup: installing lavapipe from Mesa >= $MIN_MESA (bookworm-backports)${installed:+, replacing Mesa $installed}" >&2
    enable_bookworm_backports
    apt_update
    if ! $SUDO apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >/dev/null; then
        echo "setup: bookworm-backports could not be installed; falling back to bookworm's mesa-vulkan-drivers" >&2
        $SUDO apt-get install -y -qq mesa-vulkan-drivers >/dev/null
    fi
    echo "setup: mesa-vulkan-drivers $(mesa_version)" >&2
elif [ -z "$installed" ]; then
    echo "setup: no Vulkan driver found; installing mesa-vulkan-drivers (lavapipe CPU adapter)" >&2
    apt_update
    $SUDO apt-get install -y -qq mesa-vulkan-drivers >/dev/null
else
    echo "setup: found Mesa $installed lavapipe; Mesa >= $MIN_MESA is faster, but this is not Debian 12, so it is left as it is" >&2
fi

if [ "$WANT_MPI" -eq 1 ]; then
    missing=""
    for pkg in libopenmpi-dev openmpi-bin libclang-dev; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        echo "setup: installing MPI build and launch tools:$missing" >&2
        apt_update
        # shellcheck disable=SC2086
        $SUDO apt-get install -y -qq $missing >/dev/null
    fi
    echo "setup: $(mpirun --version 2>/dev/null | head -n 1)" >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install Rust from https://rustup.rs" >&2
    exit 1
fi
