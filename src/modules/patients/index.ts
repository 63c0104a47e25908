// The patients module: patients belong to the physician office that registered them.
import fp from 'fastify-plugin';
import { apiPrefix } from '../../lib/api-prefix.js';
import { servesRoutes, type ModuleOptions } from '../../lib/module-options.js';
import { PatientsRepository, toPatient } from './patients-repository.js';
import type { Patient } from './schemas.js';
import patientRoutes from './routes.js';

export type { Patient } from './schemas.js';

export interface PatientRecords {
  findInOrganization(args: { organizationId: string; patientId: string }): Promise<Patient | undefined>;
  /** By creation, with the cursor key of each (as /v1/patients pages). */
  list(args: Parameters<PatientsRepository['list']>[0]): Promise<{ patient: Patient; cursorTime: string }[]>;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The office's patients, for modules that show them in another form (the FHIR façade); always within one office. */
    patientRecords: PatientRecords;
  }
}

export default fp(
  async (app, options: ModuleOptions) => {
    const repository = new PatientsRepository(app.db);
    app.decorate('patientRecords', {
      findInOrganization: (args) => repository.findInOrganization(args),
      list: async (args) => (await repository.list(args)).map((row) => ({ patient: toPatient(row.patient), cursorTime: row.cursorTime })),
    } satisfies PatientRecords);
    if (servesRoutes(options.config)) await app.register(patientRoutes, { prefix: apiPrefix });
  },
  { name: 'patients', dependencies: ['unit-of-work', 'auth', 'idempotency'] },
);
