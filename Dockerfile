# The hubdir image: the four service binaries and the `hubdir` CLI on an empty base, run as
# a non-root user. Build from the repository's root:
#
#   docker build --build-arg HUBDIR_BUILD_COMMIT="$(git rev-parse --short=12 HEAD)" \
#     -t hubdir:0.1.0 .                      (or: podman build ...)
#
# The build stage compiles the release binaries (the `dist` profile); .ci/image-rootfs then
# gathers them, stripped, the shared libraries they load, the CA roots and a passwd entry
# into /rootfs, the runtime image's whole file system. docs/DEPLOY.md has the details.
ARG RUST_VERSION=1.95
# Where the runtime stage takes its file system from: the build stage below, or an image a
# test assembled from binaries it built (integration-tests/tests/deploy.rs).
ARG ROOTFS=build

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
# The commit the binaries report (--version, GetNodeInfo): .git is not in the build context.
ARG HUBDIR_BUILD_COMMIT=unknown
WORKDIR /src
COPY . .
RUN HUBDIR_BUILD_COMMIT="${HUBDIR_BUILD_COMMIT}" cargo build --locked --profile dist \
        -p hubdir -p hubdir-registry -p hubdir-discovery -p hubdir-connectivity -p hubdir-federation \
    && .ci/image-rootfs target/dist /rootfs

FROM ${ROOTFS} AS rootfs

FROM scratch AS runtime
COPY --from=rootfs /rootfs/ /
USER 65532:65532
WORKDIR /etc/hubdir
ENTRYPOINT ["/usr/local/bin/hubdir"]
CMD ["--help"]
