// A partner EHR's webhook receiver on loopback: verifies every signature as a partner would
// (standardwebhooks), counts good, bad and repeated deliveries, and notes when each referral's
// event arrived.
import { createServer } from 'node:http';
import { Webhook } from 'standardwebhooks';

let verifier: Webhook | undefined;
let valid = 0;
let invalid = 0;
const seen = new Set<string>();
let duplicates = 0;
const arrivals = new Map<string, number>();

const now = () => performance.timeOrigin + performance.now();

const server = createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    try {
      const event = verifier!.verify(body, request.headers as Record<string, string>) as { data?: { referralId?: string } };
      valid++;
      const id = String(request.headers['webhook-id']);
      if (seen.has(id)) duplicates++;
      seen.add(id);
      if (event.data?.referralId) arrivals.set(event.data.referralId, now());
      response.writeHead(204).end();
    } catch {
      invalid++;
      response.writeHead(400).end();
    }
  });
});

process.on('message', (message: { id: number; type: 'configure' | 'stats' | 'reset' | 'arrivals'; secret?: string }) => {
  if (message.type === 'configure') verifier = new Webhook(message.secret!);
  if (message.type === 'reset') {
    valid = 0;
    invalid = 0;
    duplicates = 0;
    seen.clear();
    arrivals.clear();
  }
  const result =
    message.type === 'arrivals' ? Object.fromEntries(arrivals) : { valid, invalid, unique: seen.size, duplicates };
  process.send!({ id: message.id, result });
});

server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as { port: number }).port }));
