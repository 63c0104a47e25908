# Multi-stage image: compile TypeScript (as npm start does), then run the compiled service as a non-root user against DATABASE_URL.
# The final image holds the compiled service and the production dependencies only: the compiler
# (esbuild) and the TypeScript runner (tsx) are development dependencies and stay in the build stage.
# A maintained Node.js LTS line; every stage uses the same one.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The driver patch (src/db/driver-patches) is applied by npm ci's postinstall.
COPY src/db/driver-patches ./src/db/driver-patches
RUN npm ci
COPY src ./src
COPY tools/build.ts ./tools/build.ts
RUN npm run build

FROM ${NODE_IMAGE} AS production-dependencies
WORKDIR /app
COPY package.json package-lock.json ./
COPY src/db/driver-patches ./src/db/driver-patches
RUN npm ci --omit=dev && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000
WORKDIR /app
COPY --from=production-dependencies --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist/src ./dist/src
COPY package.json ./
# The code is root-owned and read-only to the process; it runs as the unprivileged "node" user.
USER node
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health/ready').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"
# Expects DATABASE_URL, JWT_SECRET, DATA_ENCRYPTION_KEY and AUDIT_SIGNING_KEY (see README, Configuration). Production on
# 0.0.0.0: no demo accounts unless DEMO_SEED=true.
CMD ["node", "--enable-source-maps", "--max-semi-space-size=4", "dist/src/server.js"]
