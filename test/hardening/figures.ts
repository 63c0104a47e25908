// Figures of the hardening suite (issue 6): a test states each one as it asserts it, and the
// report (tools/hardening/report.ts) turns the last run's figures into the README's table.
// Nothing is written unless HARDENING_FIGURES_DIR names a folder, so `npm test` stays read-only.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Figure {
  /** The item's number in issue 6 (1–14); several figures may share one. */
  item: number;
  /** What was checked, e.g. "Object-level authorization". */
  check: string;
  /** The measured result in words, e.g. "0 of 412 cross-tenant calls succeeded; 412 answered 404; 412 audited". */
  figure: string;
  /** Whether the figure meets the target the issue sets. */
  pass: boolean;
}

const figuresDir = process.env.HARDENING_FIGURES_DIR;
const databaseKind = process.env.TEST_DATABASE_URL ? 'postgresql' : 'embedded';

/** Records a figure of this run (one file per item and check, so a re-run replaces it). */
export function recordFigure(figure: Figure): void {
  if (!figuresDir) return;
  mkdirSync(figuresDir, { recursive: true });
  const slug = figure.check.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
  const file = join(figuresDir, `${String(figure.item).padStart(2, '0')}-${slug}-${databaseKind}.json`);
  writeFileSync(file, `${JSON.stringify({ ...figure, database: databaseKind, recordedAt: new Date().toISOString() }, null, 2)}\n`);
}
