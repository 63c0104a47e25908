// Floor T: a raw postgres.js transaction of three single-row inserts with prepared statements,
// behind a bare Fastify route: the most write transactions this machine's PostgreSQL commits.
import Fastify from 'fastify';
import postgres from 'postgres';

const sql = postgres(process.env.DATABASE_URL!, { max: Number(process.env.DATABASE_POOL_SIZE ?? 10), onnotice: () => {} });
await sql`create table if not exists floor_a (id uuid primary key default gen_random_uuid(), body jsonb not null, created_at timestamptz not null default now())`;
await sql`create table if not exists floor_b (id bigserial primary key, a_id uuid not null, note text not null)`;
await sql`create table if not exists floor_c (id bigserial primary key, a_id uuid not null, kind text not null)`;

const app = Fastify({ logger: false });
app.post('/', async (request) => {
  const body = request.body as Record<string, unknown>;
  const id = await sql.begin(async (tx) => {
    const [row] = await tx`insert into floor_a (body) values (${tx.json(body as never)}) returning id`;
    await tx`insert into floor_b (a_id, note) values (${row!.id}, 'created')`;
    await tx`insert into floor_c (a_id, kind) values (${row!.id}, 'created')`;
    return row!.id as string;
  });
  return { id };
});
app.addHook('onClose', () => sql.end({ timeout: 5 }));
await app.listen({ port: 0, host: '127.0.0.1' });
process.send!({ port: (app.server.address() as { port: number }).port });
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
