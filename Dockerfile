# The operator image: `traiding operator` (and every other `traiding` command) on Python 3.11.
#
# The same file builds for users and GitHub (BASE_IMAGE defaults to the official slim Python image) and on
# the project's offline machine (BASE_IMAGE=ai-traiding-base:bookworm, see scripts/image). Either way the
# dependencies come from the committed lock (requirements/operator.txt, exported from uv.lock, with
# hashes) as wheels built beforehand into build/wheels (`make image` does both): nothing is downloaded
# inside the build.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG VERSION
COPY requirements/operator.txt /tmp/requirements.txt
COPY build/wheels/ /tmp/wheels/
RUN python3 -m venv /opt/traiding \
 && /opt/traiding/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels \
        --require-hashes --only-binary :all: -r /tmp/requirements.txt \
 && /opt/traiding/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels --no-deps \
        "ai-traiding==${VERSION}" \
 && /opt/traiding/bin/pip uninstall --yes pip \
 && /opt/traiding/bin/traiding --version

FROM ${BASE_IMAGE}
ARG VERSION
LABEL org.opencontainers.image.title="ai-traiding" \
      org.opencontainers.image.description="Kubernetes operator that takes a trading strategy from idea to live trading through gated phases" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/ai-traiding/ai-traiding"
COPY --from=build /opt/traiding /opt/traiding
COPY examples/ /app/examples/
# The candle cache is the only place the operator writes besides /tmp: a volume, so the root filesystem
# can stay read-only. HOME points into /tmp for libraries that want a writable home.
RUN mkdir -p /var/cache/traiding && chown 65532:65532 /var/cache/traiding
ENV PATH=/opt/traiding/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TRAIDING_CACHE_DIR=/var/cache/traiding
VOLUME ["/var/cache/traiding"]
WORKDIR /app
USER 65532:65532
ENTRYPOINT ["traiding", "operator"]
CMD ["--all-namespaces"]
