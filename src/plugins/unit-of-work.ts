// The unit of work and the domain events bus, for every module that changes something.
import fp from 'fastify-plugin';
import { DomainEvents } from '../lib/domain-events.js';
import { UnitsOfWork } from '../lib/unit-of-work.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Runs a change in one transaction with its audit entries and domain events. */
    unitOfWork: UnitsOfWork;
    /** Modules subscribe here to the domain events of others (webhooks to referrals, messages, notes). */
    domainEvents: DomainEvents;
  }
}

export default fp(
  async (app) => {
    const events = new DomainEvents();
    app.decorate('domainEvents', events);
    app.decorate('unitOfWork', new UnitsOfWork(app.db, app.auditLog, events));
  },
  { name: 'unit-of-work', dependencies: ['database', 'audit-log'] },
);
