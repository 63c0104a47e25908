// The therapist-sync example's command line: reads its settings from the environment, signs in
// with the password grant and runs the sync (sync.ts), keeping the events cursor in STATE_FILE.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createApiClient } from '@massage-referral/client';
import { syncReferrals } from './sync.js';

const usage = 'usage: API_URL=… THERAPIST_EMAIL=… THERAPIST_PASSWORD=… [STATE_FILE=…] [AUTO_ACCEPT=1] [WAIT_SECONDS=30] main.ts [--until-idle]';

function setting(name: string): string {
  const value = process.env[name];
  if (!value) {
    process.stderr.write(`${name} is not set\n${usage}\n`);
    process.exit(2);
  }
  return value;
}

const apiUrl = setting('API_URL');
const username = setting('THERAPIST_EMAIL');
const password = setting('THERAPIST_PASSWORD');
const stateFile = process.env.STATE_FILE;
const wait = Number(process.env.WAIT_SECONDS ?? 30);
if (!Number.isInteger(wait) || wait < 0 || wait > 30) {
  process.stderr.write(`WAIT_SECONDS must be a whole number of seconds from 0 to 30\n${usage}\n`);
  process.exit(2);
}
const log = (line: string) => process.stdout.write(`${line}\n`);

async function readCursor(): Promise<string | undefined> {
  if (!stateFile) return undefined;
  try {
    return (JSON.parse(await readFile(stateFile, 'utf8')) as { cursor?: string }).cursor;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

// Written aside and renamed: a run stopped mid-write keeps the previous cursor, not half of one.
async function saveCursor(cursor: string): Promise<void> {
  if (!stateFile) return;
  await mkdir(dirname(stateFile), { recursive: true });
  await writeFile(`${stateFile}.partial`, `${JSON.stringify({ cursor })}\n`);
  await rename(`${stateFile}.partial`, stateFile);
}

const stop = new AbortController();
process.once('SIGINT', () => stop.abort());
process.once('SIGTERM', () => stop.abort());

try {
  if (!stateFile) log('STATE_FILE is not set: the cursor is not kept, and the next run reads the feed from its start');
  await syncReferrals(createApiClient({ baseUrl: apiUrl, auth: { username, password } }), {
    autoAccept: process.env.AUTO_ACCEPT === '1',
    untilIdle: process.argv.includes('--until-idle'),
    wait,
    after: await readCursor(),
    saveCursor,
    log,
    signal: stop.signal,
  });
} catch (error) {
  if (stop.signal.aborted) {
    log('stopped');
  } else {
    process.stderr.write(`therapist-sync failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  }
}
