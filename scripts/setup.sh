#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and run mr2ct, and nothing else:
# a Vulkan driver. Without a GPU, Mesa's lavapipe (package mesa-vulkan-drivers) gives wgpu a
# CPU adapter. Runs apt-get only when no Vulkan ICD is present.
set -euo pipefail

have_icd() {
    for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
        compgen -G "$d/*.json" >/dev/null 2>&1 && return 0
    done
    [ -n "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ]
}

if ! have_icd; then
    echo "setup: no Vulkan driver found; installing mesa-vulkan-drivers (lavapipe CPU adapter)" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq mesa-vulkan-drivers >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install Rust from https://rustup.rs" >&2
    exit 1
fi
