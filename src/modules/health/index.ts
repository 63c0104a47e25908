// The health module: liveness and readiness for orchestrators; public and outside the API prefix.
import fp from 'fastify-plugin';
import healthRoutes, { type ReadinessDetails } from './routes.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Figures modules report in /health/ready details (e.g. the audit sequencer's lag), by name. */
    readinessDetails: ReadinessDetails;
  }
}

export default fp(
  async (app) => {
    const details: ReadinessDetails = new Map();
    app.decorate('readinessDetails', details);
    await app.register(healthRoutes, { details });
  },
  { name: 'health', dependencies: ['database'] },
);
