// Webhook figures: floor W, the drain of a full outbox, and create-to-delivery latency at a
// steady create rate, all against a receiver that verifies every signature.
import type { Sql } from 'postgres';
import { demoCredentials } from '../src/seed/demo-network.js';
import { deliveryChannel } from '../src/modules/webhooks/outbox.js';
import type { LoadResult } from './load-generator.js';
import { ask, startChild, startCpuMeter } from './processes.js';
import type { Row } from './report.js';
import type { BenchData } from './scenarios.js';
import type { DemoIds } from './seed.js';

interface ReceiverStats {
  valid: number;
  invalid: number;
  unique: number;
  duplicates: number;
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
};
const median = (values: number[]) => percentile(values, 50);

export async function measureWebhooks(options: {
  url: string;
  sql: Sql;
  ids: DemoIds;
  data: BenchData;
  loadGenerator: import('node:child_process').ChildProcess;
  drainCount: number;
  steadySeconds: number;
  log: (message: string) => void;
  /** The service's process, whose CPU time per delivery is reported. */
  servicePid: number | undefined;
}): Promise<Row[]> {
  const { url, sql, ids, log } = options;
  const receiver = await startChild('bench/receiver.ts');
  const signer = await startChild('bench/floors/webhook-signer.ts');
  try {
    const receiverUrl = `http://127.0.0.1:${receiver.ready.port}/hooks/massage`;
    const endpoint = await registerEndpoint(url, receiverUrl);
    await ask(receiver.child, { type: 'configure', secret: endpoint.secret });
    log('receiver registered');

    const floorRuns: number[] = [];
    for (let run = 0; run < 3; run++) {
      const result = await ask<{ perSecond: number; failed: number }>(signer.child, {
        url: receiverUrl,
        secret: endpoint.secret,
        count: Math.max(500, Math.floor(options.drainCount / 3)),
        concurrency: 16,
      });
      floorRuns.push(result.perSecond);
    }
    const floorW = median(floorRuns);
    log(`W: ${floorW.toFixed(0)} deliveries/s`);

    await ask(receiver.child, { type: 'reset' });
    const cpu = await startCpuMeter(options.servicePid);
    const drainBegan = await fillOutbox(sql, ids, endpoint.id, options.drainCount);
    let stats = await ask<ReceiverStats>(receiver.child, { type: 'stats' });
    while (stats.unique < options.drainCount && performance.now() - drainBegan < 180_000) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      stats = await ask<ReceiverStats>(receiver.child, { type: 'stats' });
    }
    const drainSeconds = (performance.now() - drainBegan) / 1000;
    const drainRate = stats.unique / drainSeconds;
    // Filling the outbox (one statement of PostgreSQL's) is counted in: a small part of the drain.
    const cpuMs = await cpu.perItem(stats.unique);
    const cpuPerDelivery = cpuMs && `service ${cpuMs.service.toFixed(2)} ms, PostgreSQL ${cpuMs.postgres.toFixed(2)} ms`;
    // The receiver may have a delivery a moment before the worker has recorded its success.
    let succeeded = 0;
    for (let waited = 0; waited < 10_000 && succeeded < options.drainCount; waited += 50) {
      [{ succeeded }] = (await sql`
        select count(*)::int as succeeded from webhook_deliveries where endpoint_id = ${endpoint.id} and status = 'succeeded'`) as unknown as [{ succeeded: number }];
      if (succeeded < options.drainCount) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const lost = options.drainCount - stats.unique;
    log(`drain: ${drainRate.toFixed(0)} deliveries/s, ${stats.unique} received, ${stats.invalid} bad signatures, ${succeeded} marked succeeded${cpuPerDelivery ? `; CPU per delivery: ${cpuPerDelivery}` : ''}`);

    await ask(receiver.child, { type: 'reset' });
    const steady = await ask<LoadResult>(options.loadGenerator, {
      scenario: 'create',
      url,
      data: options.data,
      connections: 10,
      durationSeconds: options.steadySeconds,
      overallRate: 100,
      recordCreated: true,
    });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const arrivals = await ask<Record<string, number>>(receiver.child, { type: 'arrivals' });
    const latencies: number[] = [];
    let undelivered = 0;
    for (const [id, answeredAt] of steady.created ?? []) {
      const arrived = arrivals[id];
      if (arrived === undefined) undelivered++;
      else latencies.push(arrived - answeredAt);
    }
    const steadyStats = await ask<ReceiverStats>(receiver.child, { type: 'stats' });
    const p50 = percentile(latencies, 50);
    const p99 = percentile(latencies, 99);
    log(`create→delivery at 100/s: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, ${undelivered} undelivered of ${steady.created?.length}`);

    return [
      { scenario: 'floor W: fetch + HMAC to loopback, 16 at a time', value: `${floorW.toFixed(0)} /s` },
      {
        scenario: `webhook drain, ${options.drainCount.toLocaleString('en')} outbox rows`,
        value: `${drainRate.toFixed(0)} /s; ${lost} lost; ${stats.invalid} bad signatures`,
        floor: 'W',
        ratio: drainRate / floorW,
        target: '≥ 0.5 × W, 0 lost, 0 bad signatures',
        pass: drainRate >= 0.5 * floorW && lost === 0 && stats.invalid === 0 && succeeded === options.drainCount,
        ...(cpuPerDelivery ? { note: `CPU per delivery: ${cpuPerDelivery}` } : {}),
      },
      {
        scenario: 'create → delivery at 100 creates/s',
        value: `p50 ${p50.toFixed(0)} ms, p99 ${p99.toFixed(0)} ms; ${undelivered} of ${steady.created?.length ?? 0} undelivered`,
        target: 'p99 ≤ 500 ms',
        pass: p99 <= 500 && undelivered === 0 && steady.non2xx === 0 && steadyStats.invalid === 0,
      },
    ];
  } finally {
    await receiver.stop();
    await signer.stop();
  }
}

async function registerEndpoint(url: string, receiverUrl: string): Promise<{ id: string; secret: string }> {
  const signIn = await fetch(`${url}/v1/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ grant_type: 'password', username: demoCredentials.users.officeAdmin, password: demoCredentials.password }),
  });
  const { access_token: token } = (await signIn.json()) as { access_token: string };
  const response = await fetch(`${url}/v1/webhook-endpoints`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ url: receiverUrl, eventTypes: ['referral.sent'], description: 'Benchmark receiver' }),
  });
  if (response.status !== 201) throw new Error(`registering the receiver failed: ${response.status} ${await response.text()}`);
  return (await response.json()) as { id: string; secret: string };
}

/** Writes `count` events and their deliveries in one transaction, as the outbox would, and wakes the workers. */
async function fillOutbox(sql: Sql, ids: DemoIds, endpointId: string, count: number): Promise<number> {
  await sql.begin(async (tx) => {
    await tx`
      with picked as (
        select id from referrals where organization_id = ${ids.officeId} order by id limit ${count}
      ), events as (
        insert into webhook_events (type, referral_id, payload)
        select 'referral.sent', picked.id, jsonb_build_object(
          'type', 'referral.sent', 'timestamp', to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
          'data', jsonb_build_object('resource', 'referral', 'id', picked.id, 'referralId', picked.id, 'status', 'sent',
            'organizations', jsonb_build_array(${ids.officeId}::text, ${ids.harborId}::text), 'url', '/v1/referrals/' || picked.id))
        from picked
        returning id, referral_id
      )
      insert into webhook_deliveries (event_id, endpoint_id, referral_id)
      select id, ${endpointId}, referral_id from events`;
    await tx`select pg_notify(${deliveryChannel}, '')`;
  });
  return performance.now();
}
