// Prints the results table, writes it as JSON under bench/results/, and puts it in the README's
// Performance section between its markers.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { projectRoot } from './processes.js';
import type { Measured } from './run.js';

export interface Row {
  scenario: string;
  measured?: Measured;
  /** A figure that is not a load run, e.g. a start-up time. */
  value?: string;
  floor?: string;
  ratio?: number;
  target?: string;
  pass?: boolean;
  note?: string;
}

const begin = '<!-- bench:begin -->';
const end = '<!-- bench:end -->';

function cells(row: Row): string[] {
  const m = row.measured;
  return [
    row.scenario,
    m ? m.requestsPerSecond.toFixed(0) : (row.value ?? ''),
    m ? String(m.p50) : '',
    m ? String(m.p99) : '',
    m ? String(m.non2xx) : '',
    m?.cpuMsPerRequest ? `${m.cpuMsPerRequest.service.toFixed(2)} / ${m.cpuMsPerRequest.postgres.toFixed(2)}` : '',
    row.ratio === undefined ? '' : `${row.ratio.toFixed(2)}${row.floor ? ` × ${row.floor}` : ''}`,
    row.target ?? '',
    row.pass === undefined ? '' : row.pass ? 'pass' : 'FAIL',
  ];
}

const header = ['scenario', 'req/s (or figure)', 'p50 ms', 'p99 ms', 'non-2xx', 'CPU ms/req (process / PostgreSQL)', 'ratio', 'target', 'result'];

function markdownTable(rows: Row[]): string {
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const row of rows) lines.push(`| ${cells(row).join(' | ')} |`);
  return lines.join('\n');
}

function consoleTable(rows: Row[]): string {
  const all = [header, ...rows.map(cells)];
  const widths = header.map((_, column) => Math.max(...all.map((line) => line[column]!.length)));
  return all.map((line) => line.map((cell, column) => cell.padEnd(widths[column]!)).join('  ')).join('\n');
}

export async function report(rows: Row[], { quick, extras, seconds }: { quick: boolean; extras: Record<string, unknown>; seconds: number }): Promise<void> {
  const when = new Date().toISOString();
  const machine = `${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown'}), Node.js ${process.version}`;
  process.stdout.write(`\n${consoleTable(rows)}\n\n`);
  for (const row of rows.filter((candidate) => candidate.note)) process.stdout.write(`${row.scenario}: ${row.note}\n`);
  const failed = rows.filter((row) => row.pass === false).length;
  process.stdout.write(`${rows.filter((row) => row.pass).length} targets met, ${failed} missed; ${seconds.toFixed(0)} s in all\n`);

  const resultsDir = join(projectRoot, 'bench', 'results');
  await mkdir(resultsDir, { recursive: true });
  const file = join(resultsDir, `${when.replace(/[:.]/g, '-')}${quick ? '-quick' : ''}.json`);
  await writeFile(file, `${JSON.stringify({ when, quick, machine, seconds, rows, ...extras }, null, 2)}\n`);
  process.stdout.write(`results: ${file}\n`);
  if (quick) return;

  const readmePath = join(projectRoot, 'README.md');
  const readme = await readFile(readmePath, 'utf8');
  const from = readme.indexOf(begin);
  const to = readme.indexOf(end);
  if (from === -1 || to === -1) return;
  const notes = rows.filter((row) => row.note).map((row) => `- ${row.scenario}: ${row.note}`);
  const section = [begin, `Last run: ${when.slice(0, 10)}, ${machine}, ${seconds.toFixed(0)} s.`, '', markdownTable(rows), '', ...notes, end].join('\n');
  await writeFile(readmePath, readme.slice(0, from) + section + readme.slice(to + end.length));
}
