// Package deploy holds the test of the container image: it builds the
// repository's Dockerfile with local stand-ins for the two base images and
// runs the image for real (read-only root, non-root user, a named volume on
// /data, both listeners, the HEALTHCHECK, graceful stop with the state kept
// in the volume). It needs a Docker engine, so it runs only when
// MAXINE_CONTAINER_TEST=1; `make container` (part of `make test`) installs
// and starts one (docker-up.sh) and sets it.
package deploy
