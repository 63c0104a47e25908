// The health module: liveness and readiness for orchestrators; public and outside the API prefix.
import fp from 'fastify-plugin';
import healthRoutes from './routes.js';

export default fp(
  async (app) => {
    await app.register(healthRoutes);
  },
  { name: 'health', dependencies: ['database'] },
);
