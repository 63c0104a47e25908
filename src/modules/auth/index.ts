// The auth module: bearer-token authentication on every API route (authentication.ts, registered
// before any other module so that no route is added without it), and the token, revoke and /me
// routes. Who may do what is policy.ts, which other modules import. API clients sign in with a
// secret or, for SMART Backend Services, with an assertion signed by a key they registered.
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import { guardedLookup, systemResolver, type Resolver } from '../../lib/outbound/target-guard.js';
import { schedulePeriodicJob } from '../../lib/periodic-job.js';
import authentication from './authentication.js';
import { CredentialsRepository } from './credentials-repository.js';
import { Passwords } from './passwords.js';
import { RemoteJwks } from './remote-jwks.js';
import authRoutes from './routes.js';

export type { Principal } from './policy.js';
export { documentedAccessOf, oauth2SecurityScheme } from './documented-access.js';
export { fhirScopeAllows, smartScopeFor, supportedSmartScopes, type FhirInteraction } from './smart-scopes.js';
export { smartConfiguration } from './smart-configuration.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Hashes passwords and client secrets at the configured cost; other modules hash through it. */
    passwords: Passwords;
  }
}

// A used assertion is refused for its whole lifetime anyway; this only bounds the table.
const assertionJtiSweepSeconds = 600;

export default fp(
  async (app, options: ModuleOptions & { jwksResolver?: Resolver | undefined }) => {
    const { config } = options;
    app.decorate('passwords', new Passwords(config.login.passwordHashCostLog2));
    await app.register(authentication, options);
    if (servesRoutes(config)) {
      const remoteJwks = new RemoteJwks({ lookup: guardedLookup(options.jwksResolver ?? systemResolver, config.jwksAllowPrivateUrls), allowPrivate: config.jwksAllowPrivateUrls });
      app.addHook('onClose', () => remoteJwks.close());
      await app.register(authRoutes, { prefix: apiPrefix, config, remoteJwks });
    }
    if (config.role === 'api') return;
    const credentials = new CredentialsRepository(app.db);
    schedulePeriodicJob(app, { name: 'client-assertion-jtis', everySeconds: assertionJtiSweepSeconds, run: () => credentials.removeExpiredAssertionJtis() });
  },
  { name: 'auth', dependencies: ['database', 'audit-log'] },
);
