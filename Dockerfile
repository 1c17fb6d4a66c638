# fleet-upload's four commands (upload, retry, trigger, master) in a small runtime image.
#
#   docker build -t fleet-upload .
#   docker run --rm fleet-upload master --help
#
# docker-compose.yml builds it for the demo agent.

# ---- build: the release binaries, with the Swift runtime linked in statically
FROM swift:6.3-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq-dev libcurl4-openssl-dev libssl-dev libzstd-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so that a source change does not fetch them again.
COPY Package.swift Package.resolved ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
COPY sql ./sql
RUN swift build -c release --static-swift-stdlib \
    && bin=$(swift build -c release --static-swift-stdlib --show-bin-path) \
    && mkdir -p /out \
    && cp "$bin/upload" "$bin/retry" "$bin/trigger" "$bin/master" /out/

# ---- runtime: the C libraries the binaries link against, nothing else
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 libcurl4 libssl3 libzstd1 libxml2 ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
COPY examples/agent.yaml /usr/share/fleet-upload/agent.example.yaml
RUN mkdir -p /etc/fleet-upload
# SIGTERM lets the agent finish the uploads in flight; give it time (docker compose stop -t / stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT []
CMD ["master", "run", "--config", "/etc/fleet-upload/agent.yaml"]
