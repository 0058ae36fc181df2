#!/usr/bin/env bash
# Prints the path of a Prometheus server binary for the Prometheus check
# tests, installing Debian's `prometheus` package first when none is on PATH.
# It needs root or sudo for apt-get; the binary is only run by the tests,
# on 127.0.0.1, never as a service.
set -euo pipefail

if path=$(command -v prometheus); then
	echo "$path"
	exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null; then
		echo "prometheus is not installed and installing it needs root: apt-get install prometheus" >&2
		exit 1
	fi
	sudo="sudo"
fi
echo "installing Debian's prometheus package for the Prometheus check tests..." >&2
install() { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends prometheus >&2; }
# The package lists of a fresh machine may be missing or stale.
install || { $sudo apt-get update >&2 && install; }
command -v prometheus
