// The plan of the therapist pull at a deep cursor: it must walk indexes in order, with no sort
// step and no OFFSET, so its cost does not grow with the table.
import { drizzle } from 'drizzle-orm/postgres-js';
import type { Sql } from 'postgres';
import type { Database } from '../src/db/database.js';
import * as schema from '../src/db/schema.js';
import { ReferralsRepository } from '../src/modules/referrals/referrals-repository.js';
import type { DemoIds } from './seed.js';

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Relation Name'?: string;
  Plans?: PlanNode[];
}

const nodesOf = (node: PlanNode): PlanNode[] => [node, ...(node.Plans ?? []).flatMap(nodesOf)];

/** EXPLAIN ANALYZE of the very query the service builds for Sam's pull after a cursor. */
export async function explainPull(sql: Sql, ids: DemoIds, cursor: string): Promise<{ indexOnly: boolean; summary: string }> {
  const after = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [string, string];
  const repository = new ReferralsRepository(drizzle(sql, { schema }) as unknown as Database);
  const principal = { kind: 'user' as const, id: ids.samId, organizationId: ids.harborId, organizationKind: 'therapy_practice' as const, role: 'therapist' as const, scopes: [] };
  const query = repository.listQuery({ principal, after, limit: 50 }, []).toSQL();
  const [row] = await sql.unsafe(`explain (analyze, buffers, format json) ${query.sql}`, query.params as never[]);
  const [plan] = (row as unknown as { 'QUERY PLAN': [{ Plan: PlanNode; 'Execution Time': number }] })['QUERY PLAN'];
  const nodes = nodesOf(plan.Plan);
  const steps = [...new Set(nodes.map((node) => (node['Index Name'] ? `${node['Node Type']} ${node['Index Name']}` : node['Node Type'])))];
  const sorts = nodes.filter((node) => node['Node Type'] === 'Sort');
  // The offers of one therapist are few; the planner may fetch them any way it likes.
  const scans = nodes.filter((node) => node['Relation Name'] === 'referrals' && !/^Index( Only)? Scan$/.test(node['Node Type']));
  return {
    indexOnly: sorts.length === 0 && scans.length === 0 && !/offset/i.test(query.sql),
    summary: `${steps.join(' > ')}; ${plan['Execution Time'].toFixed(1)} ms`,
  };
}
