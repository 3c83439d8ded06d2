#!/usr/bin/env bash
# docker-up.sh makes sure a Docker engine answers for the container test:
# it installs Debian's docker.io (dockerd, containerd, runc) and
# busybox-static (the shell and tools of the stand-in builder image) when
# missing, and starts dockerd in the background when none answers. The
# engine it starts has no bridge network: the test builds and runs with
# --network host, on loopback ports only.
set -euo pipefail
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker >/dev/null || need+=(docker.io)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if docker info >/dev/null 2>&1; then
	exit 0
fi
log=${TMPDIR:-/tmp}/maxine-dockerd.log
echo "docker-up: starting dockerd (log $log)"
nohup dockerd --bridge=none --iptables=false >"$log" 2>&1 &
for _ in $(seq 1 60); do
	if docker info >/dev/null 2>&1; then
		exit 0
	fi
	sleep 1
done
echo "docker-up: dockerd did not answer within 60s; its log:" >&2
tail -n 30 "$log" >&2
exit 1
