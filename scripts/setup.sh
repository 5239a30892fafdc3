#!/usr/bin/env bash
# Installs the Debian 12 packages libflow needs to build, test and run its
# demos. Installs only what is missing, so running it again is harmless.
#   bash scripts/setup.sh           build, tests, demos
#   bash scripts/setup.sh --bench   also what bench/run.sh needs (gnuplot)
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config ccache   # toolchain
  clang libclang-rt-14-dev                   # fuzz targets: libFuzzer, ASan
  libcaf-dev libssl-dev                      # CAF 0.17.6: core, io, openssl
  libspdlog-dev                              # logging (with fmt 9)
  libpqxx-dev postgresql                     # flow::pg and its tests/demos
  catch2                                     # unit tests
  libtbb-dev libbenchmark-dev python3        # benchmarks' alternatives
  openssl                                    # test certificates
  python3-psycopg2                           # bench/etl_psycopg2.py
  libcli11-dev nlohmann-json3-dev            # apps: command line, JSON output
  libtoml11-dev                              # flow-etl run: job files
  libcpp-httplib-dev                         # flow::status: the status server
  prometheus                                 # promtool checks the /metrics text
  chromium chromium-driver python3-selenium  # the status page's browser test
  iproute2                                   # tests/net/netns_faults.py: ip netns, tc
)
if [ "${1:-}" = "--bench" ]; then
  packages+=(gnuplot-nox)                    # bench/plot.gp
fi

# flow-etl and the pg tests start throwaway PostgreSQL clusters; PostgreSQL
# refuses to run as root, so under root they run the server as this user.
ensure_server_user() {
  if [ "$(id -u)" -eq 0 ] && ! id flowpg >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin flowpg
    echo "setup: created system user flowpg (runs throwaway PostgreSQL clusters)"
  fi
}

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages already installed"
  ensure_server_user
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
ensure_server_user
