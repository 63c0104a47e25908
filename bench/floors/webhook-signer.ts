// Floor W: raw fetch and HMAC signing (the Standard Webhooks scheme, by hand) to the loopback
// receiver, 16 at a time: the most deliveries a sender without a database makes here.
import { createHmac, randomUUID } from 'node:crypto';

process.on('message', async (message: { id: number; url: string; secret: string; count: number; concurrency: number }) => {
  const key = Buffer.from(message.secret.replace(/^whsec_/, ''), 'base64');
  let next = 0;
  let failed = 0;
  const began = performance.now();
  async function sender() {
    while (next < message.count) {
      next++;
      const id = `msg_${randomUUID()}`;
      const timestamp = Math.floor(Date.now() / 1000);
      const body = JSON.stringify({ type: 'referral.sent', timestamp: new Date().toISOString(), data: { resource: 'referral', id: randomUUID(), status: 'sent' } });
      const signature = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
      const response = await fetch(message.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': `v1,${signature}` },
        body,
      });
      await response.arrayBuffer();
      if (!response.ok) failed++;
    }
  }
  await Promise.all(Array.from({ length: message.concurrency }, sender));
  const seconds = (performance.now() - began) / 1000;
  process.send!({ id: message.id, result: { perSecond: message.count / seconds, failed } });
});
process.send!({ ready: true });
