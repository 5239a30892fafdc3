#!/usr/bin/env bash
# Installs the Debian 12 packages libflow needs to build, test and run its
# demos. Installs only what is missing, so running it again is harmless.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config ccache   # toolchain
  libcaf-dev libssl-dev                      # CAF 0.17.6: core, io, openssl
  libspdlog-dev                              # logging (with fmt 9)
  libpqxx-dev postgresql                     # flow::pg and its tests/demos
  catch2                                     # unit tests
  libtbb-dev libbenchmark-dev python3        # benchmarks' alternatives
  openssl                                    # test certificates
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi
echo "setup: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
  --no-install-recommends "${missing[@]}"
