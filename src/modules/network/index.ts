// The network module: organizations, their users and API clients, the therapist directory, and
// the worker's notices of licenses about to expire.
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import { schedulePeriodicJob } from '../../lib/periodic-job.js';
import { systemAuditContext } from '../audit/audit-log.js';
import { LicenseNotices } from './license-notices.js';
import apiClientRoutes from './api-clients-routes.js';
import directoryRoutes from './directory-routes.js';
import organizationRoutes from './organizations-routes.js';
import userRoutes from './users-routes.js';
import { UsersRepository } from './users-repository.js';
import { OrganizationsRepository } from './organizations-repository.js';
import type { Organization, User } from './schemas.js';

export { displayNames } from './display-names.js';
export { seesOrganization } from './organization-access.js';
export type { Organization, User } from './schemas.js';

/** Finds people and organizations by id, for modules that apply their own visibility rule (the FHIR façade). */
export interface Directory {
  user(id: string): Promise<User | undefined>;
  organization(id: string): Promise<Organization | undefined>;
}

declare module 'fastify' {
  interface FastifyInstance {
    directory: Directory;
    /** Sends the license.expiring notices now due; returns how many. */
    sendLicenseNotices(): Promise<number>;
  }
}

export default fp(
  async (app, options: ModuleOptions) => {
    const notices = new LicenseNotices(app.unitOfWork);
    const users = new UsersRepository(app.db);
    const organizations = new OrganizationsRepository(app.db);
    app.decorate('directory', { user: (id: string) => users.findById(id), organization: (id: string) => organizations.findById({ id }) });
    app.decorate('sendLicenseNotices', () => notices.sendDue(systemAuditContext('license-notices')));
    if (servesRoutes(options.config)) {
      await app.register(organizationRoutes, { prefix: apiPrefix });
      await app.register(userRoutes, { prefix: apiPrefix });
      await app.register(apiClientRoutes, { prefix: apiPrefix, config: options.config });
      await app.register(directoryRoutes, { prefix: apiPrefix });
    }
    if (options.config.role === 'api') return;
    schedulePeriodicJob(app, { name: 'license-notices', everySeconds: options.config.licenseNoticeSweepSeconds, run: () => app.sendLicenseNotices() });
  },
  { name: 'network', dependencies: ['unit-of-work', 'auth', 'idempotency'] },
);
