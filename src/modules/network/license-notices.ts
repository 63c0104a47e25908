// license.expiring (SPEC §14.2): a practice hears, once per expiry date, that a therapist's license
// runs out within the notice window, while there is still time to renew it. Run by the worker;
// several workers at once never tell the same expiry twice (rows are claimed under lock, and the
// date told is written in the same transaction as the event).
import { sql } from 'drizzle-orm';
import { rowsOf } from '../../db/database.js';
import { apiPrefix } from '../../lib/api-prefix.js';
import type { UnitsOfWork } from '../../lib/unit-of-work.js';
import type { AuditContext } from '../audit/audit-log.js';

export const licenseNoticeDays = 30;

interface Noticed {
  user_id: string;
  organization_id: string;
  license_expires_on: string;
}

export class LicenseNotices {
  constructor(private readonly units: UnitsOfWork) {}

  /** Sends the notices that are due; returns how many. */
  async sendDue(context: AuditContext, batchSize = 200): Promise<number> {
    let sent = 0;
    for (;;) {
      const count = await this.units.run(context, async (unit) => {
        const due = rowsOf<Noticed>(
          await unit.tx.execute(sql`
            update therapist_profiles p set license_expiry_notice_for = p.license_expires_on
            from users u
            where u.id = p.user_id and p.user_id in (
              select q.user_id from therapist_profiles q join users v on v.id = q.user_id
              where v.active and v.organization_id is not null
                and q.license_expires_on between (now() at time zone 'utc')::date and (now() at time zone 'utc')::date + ${licenseNoticeDays}::int
                and q.license_expiry_notice_for is distinct from q.license_expires_on
              limit ${batchSize}::int
              for update of q skip locked)
            returning p.user_id, u.organization_id, p.license_expires_on::text as license_expires_on`),
        );
        for (const row of due) {
          unit.emit({
            type: 'license.expiring',
            organizationId: row.organization_id,
            resource: { type: 'user', id: row.user_id, url: `${apiPrefix}/organizations/${row.organization_id}/users/${row.user_id}` },
            facts: { licenseExpiresOn: row.license_expires_on },
          });
          unit.audit({ action: 'user.license_expiring', resourceType: 'user', resourceId: row.user_id });
        }
        return due.length;
      });
      sent += count;
      if (count < batchSize) return sent;
    }
  }
}
