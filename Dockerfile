# syntax=docker/dockerfile:1
# The worker image: the KCL MultiLangDaemon (Java 17) and the Node 20 record
# processor it launches per shard lease. Configuration comes from the
# environment at run time (IPS_* variables, AWS_REGION; docs/configuration.md).
#   docker build -t iam-policy-stream .

# TypeScript build; dev dependencies stay in this stage.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# Runtime dependencies only, resolved apart from the build so no dev package leaks in.
FROM node:20-bookworm-slim AS runtime-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error

# The daemon's jars, fetched by the same script the local setup runs.
FROM maven:3-eclipse-temurin-17 AS jars
WORKDIR /app
COPY kcl/pom.xml kcl/fetch-jars.sh ./kcl/
RUN bash kcl/fetch-jars.sh /app/kcl/lib

FROM eclipse-temurin:17-jre
# The daemon starts `node` from PATH for every shard; the binary is
# self-contained apart from glibc and libstdc++, which this image has.
COPY --from=build /usr/local/bin/node /usr/local/bin/node
RUN groupadd --system --gid 10001 ips \
 && useradd --system --uid 10001 --gid ips --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ips
WORKDIR /app
# package.json marks dist/ as ES modules.
COPY package.json ./
COPY --from=runtime-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=jars /app/kcl/lib ./kcl/lib
COPY kcl/logback.xml ./kcl/logback.xml
COPY properties ./properties
# Everything above is owned by root and read-only to the worker: it writes only
# the rendered properties file under the temp folder.
ENV NODE_ENV=production \
    APP_ROOT=/app \
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
USER 10001:10001
# No HEALTHCHECK: the launcher exits when the daemon does, so a live container
# is a live daemon; whether shards progress shows in lease and metric data,
# not in anything a probe inside the container could answer.
ENTRYPOINT ["node", "dist/daemon/run.js"]
CMD ["--properties", "properties/aws.properties"]
