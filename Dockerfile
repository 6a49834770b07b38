# bgem3 container image: docker build -t bgem3 .
# The build stage runs scripts/build-release.sh, the same script CI runs outside Docker; the
# runtime stage is slim Debian with only the packages in deploy/runtime-packages.txt.
# Where no Swift image can be pulled (scripts/image_check.sh), --build-arg BINARY=prebuilt takes
# the binary scripts/build-release.sh left in .build-static/dist instead; the build stage is then
# never run (unused stages are skipped by BuildKit and buildah).
ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG BINARY=build

FROM ${SWIFT_IMAGE} AS build
WORKDIR /src
COPY . .
RUN scripts/build-release.sh /out

FROM ${RUNTIME_IMAGE} AS prebuilt
COPY .build-static/dist/bgem3 /out/bgem3

FROM ${BINARY} AS binary

FROM ${RUNTIME_IMAGE}
COPY deploy/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
    && grep -v '^#' /tmp/runtime-packages.txt | xargs apt-get install -y --no-install-recommends \
    && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
    && groupadd --system --gid 10001 bgem3 \
    && useradd --system --uid 10001 --gid bgem3 --home-dir /data --no-create-home bgem3 \
    && mkdir -p /data/hub /data/probe-cache && chown -R bgem3:bgem3 /data
COPY --from=binary /out/bgem3 /usr/local/bin/bgem3

# The model (Hugging Face cache layout) and the probe cache live on the volume, so that a restart
# neither downloads nor probes again, and replicas sharing the volume probe once.
ENV BGE_M3_BIND=0.0.0.0:8081 \
    BGE_M3_CACHE_DIR=/data/hub \
    BGE_M3_PROBE_CACHE_DIR=/data/probe-cache \
    BGE_M3_LOG_FORMAT=json \
    HOME=/data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8081
# /live answers while the process serves (the model may still be loading: /ready says when it
# can take requests). The start period covers a first download of the model.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30m --retries=3 \
    CMD ["bgem3", "health", "--url", "http://127.0.0.1:8081/live"]
ENTRYPOINT ["bgem3"]
CMD ["serve"]
