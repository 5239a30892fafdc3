#!/bin/sh
# Makes a test certificate authority and node certificates for flow::net's
# mutual TLS, with the openssl command.
#
#   scripts/make-certs.sh DIR [NODE...]
#
# writes DIR/ca.pem and DIR/ca.key (the CA), and for every NODE (default:
# manager worker) DIR/NODE.pem and DIR/NODE.key signed by that CA. Give every
# node the CA (--ca DIR/ca.pem) and its own pair (--cert DIR/NODE.pem --key
# DIR/NODE.key). Keep ca.key off the nodes. Keys are not encrypted; add a
# passphrase with `openssl pkey -aes256` and pass it with --passphrase.
set -eu
if [ $# -lt 1 ]; then
  echo "usage: $0 DIR [NODE...]" >&2
  exit 2
fi
dir=$1
shift
[ $# -gt 0 ] || set -- manager worker
command -v openssl >/dev/null || { echo "$0: the openssl command is missing" >&2; exit 2; }
mkdir -p "$dir"
umask 077
if [ ! -f "$dir/ca.pem" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 365 -sha256 \
    -subj "/CN=libflow test CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
    2>/dev/null
fi
for node in "$@"; do
  openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=$node" \
    -keyout "$dir/$node.key" -out "$dir/$node.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$node.csr" -CA "$dir/ca.pem" \
    -CAkey "$dir/ca.key" -CAcreateserial -days 365 -sha256 \
    -out "$dir/$node.pem" 2>/dev/null
  rm -f "$dir/$node.csr"
done
chmod 0644 "$dir"/*.pem
echo "$dir: CA ca.pem; nodes: $*"
