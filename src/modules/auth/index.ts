// The auth module: bearer-token authentication on every API route (authentication.ts, registered
// before any other module so that no route is added without it), and the token, revoke and /me
// routes. Who may do what is policy.ts, which other modules import.
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import authentication from './authentication.js';
import { Passwords } from './passwords.js';
import authRoutes from './routes.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Hashes passwords and client secrets at the configured cost; other modules hash through it. */
    passwords: Passwords;
  }
}

export default fp(
  async (app, options: ModuleOptions) => {
    app.decorate('passwords', new Passwords(options.config.login.passwordHashCostLog2));
    await app.register(authentication, options);
    if (servesRoutes(options.config)) await app.register(authRoutes, { prefix: apiPrefix, config: options.config });
  },
  { name: 'auth', dependencies: ['database', 'audit-log'] },
);
