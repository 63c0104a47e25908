// The load generator: autocannon in a process of its own, so that it does not share the
// service's event loop. Takes runs over IPC and answers with their figures.
import autocannon from 'autocannon';
import { requestOf, type BenchData, type ScenarioName } from './scenarios.js';

export interface LoadRun {
  scenario: ScenarioName;
  url: string;
  connections: number;
  durationSeconds: number;
  /** Requests per second over all connections, for a steady rate instead of as fast as possible. */
  overallRate?: number;
  data?: BenchData;
  /** Note when each created referral was answered, to time its webhook's arrival against. */
  recordCreated?: boolean;
}

export interface LoadResult {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  total: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** A few refused requests, to tell what went wrong. */
  samples: string[];
  /** [referral id, epoch ms of the 201], with recordCreated. */
  created?: [string, number][];
}

async function run(options: LoadRun): Promise<LoadResult> {
  const samples: string[] = [];
  const created: [string, number][] = [];
  const data = options.data as BenchData;
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.durationSeconds,
    ...(options.overallRate ? { overallRate: options.overallRate } : {}),
    requests: [
      {
        setupRequest: (request) => ({ ...request, ...requestOf(options.scenario, data) }),
        onResponse: (status, body) => {
          if (options.recordCreated && status === 201) created.push([(JSON.parse(String(body)) as { id: string }).id, performance.timeOrigin + performance.now()]);
          if ((status < 200 || status > 299) && samples.length < 5) samples.push(`${status} ${String(body).slice(0, 300)}`);
        },
      },
    ],
  });
  return {
    requestsPerSecond: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    total: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    samples,
    ...(options.recordCreated ? { created } : {}),
  };
}

process.on('message', (message: LoadRun & { id: number }) => {
  run(message).then(
    (result) => process.send!({ id: message.id, result }),
    (error: Error) => process.send!({ id: message.id, error: error.message }),
  );
});
process.send!({ ready: true });
