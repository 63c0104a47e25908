// A report as the PDF a physician files in the chart (SPEC §14.3): header (patient, prescriber,
// therapist, practice, dates), goals, the pain and outcome series drawn as charts, and the signature
// block. pdfkit is loaded with the first PDF asked for, so a process that never renders one never
// carries it.
import type { Report } from './schemas.js';

export interface ReportDocumentParties {
  /** Who the patient is, as the reader may know them (name and birth date, or age and sex only). */
  patient: string;
  prescriber: string;
  therapist: string;
  practice: string;
  office: string;
  diagnoses: { code: string; display: string }[];
  signer?: string | undefined;
}

const titles: Record<Report['kind'], string> = {
  evaluation: 'Evaluation and plan of care',
  progress: 'Progress report',
  discharge: 'Discharge summary',
};
const goalStatus: Record<Report['goals'][number]['status'], string> = { met: 'Met', progressing: 'Progressing', not_met: 'Not met', new: 'New' };
const human = (code: string) => code.replaceAll('_', ' ');

// The standard PDF fonts write Windows-1252 only: the few signs clinicians type that it lacks get
// their plain spelling, and anything else outside it a visible '?', never a wrong character.
const plainSpellings: Record<string, string> = { '≤': '<=', '≥': '>=', '→': '->', '←': '<-', '≠': '!=', '±': '+/-', '−': '-' };
const windows1252Extras = new Set('€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ');
export function printable(text: string): string {
  return [...text]
    .map((char) => plainSpellings[char] ?? (char.charCodeAt(0) <= 0xff || windows1252Extras.has(char) ? char : '?'))
    .join('');
}

type Doc = PDFKit.PDFDocument;

/** A line chart of one or more series over visit numbers, with labelled axes; returns nothing, draws at the cursor. */
function lineChart(doc: Doc, options: { title: string; yMax: number; series: { label: string; color: string; dash?: boolean; points: { x: number; y: number }[] }[]; xMax: number }) {
  const width = 460;
  const height = 140;
  if (doc.y + height + 60 > doc.page.height - doc.page.margins.bottom) doc.addPage();
  const left = doc.page.margins.left + 30;
  doc.font('Helvetica-Bold').fontSize(10).fillColor('black').text(options.title, doc.page.margins.left, doc.y);
  const top = doc.y + 6;
  const xOf = (x: number) => left + (options.xMax <= 1 ? width / 2 : ((x - 1) / (options.xMax - 1)) * width);
  const yOf = (y: number) => top + height - (y / options.yMax) * height;

  doc.save().lineWidth(0.5).strokeColor('#999999');
  doc.moveTo(left, top).lineTo(left, top + height).lineTo(left + width, top + height).stroke();
  doc.font('Helvetica').fontSize(7).fillColor('#555555');
  for (const tick of [0, options.yMax / 2, options.yMax]) {
    doc.text(String(Math.round(tick * 10) / 10), left - 28, yOf(tick) - 3, { width: 24, align: 'right' });
    doc.moveTo(left - 2, yOf(tick)).lineTo(left, yOf(tick)).stroke();
  }
  const step = Math.max(1, Math.ceil(options.xMax / 12));
  for (let visit = 1; visit <= options.xMax; visit += step) doc.text(String(visit), xOf(visit) - 10, top + height + 3, { width: 20, align: 'center' });
  doc.text('visit', left + width - 20, top + height + 12, { width: 40 });
  doc.restore();

  let legendX = left;
  for (const series of options.series) {
    doc.save().lineWidth(1.5).strokeColor(series.color).fillColor(series.color);
    if (series.dash) doc.dash(4, { space: 3 });
    series.points.forEach((point, index) => (index === 0 ? doc.moveTo(xOf(point.x), yOf(point.y)) : doc.lineTo(xOf(point.x), yOf(point.y))));
    if (series.points.length > 1) doc.stroke();
    doc.undash();
    for (const point of series.points) doc.circle(xOf(point.x), yOf(point.y), 2).fill();
    doc.rect(legendX, top + height + 24, 8, 8).fill();
    doc.fillColor('black').font('Helvetica').fontSize(8).text(series.label, legendX + 11, top + height + 24);
    legendX += 20 + doc.widthOfString(series.label);
    doc.restore();
  }
  doc.x = doc.page.margins.left;
  doc.y = top + height + 44;
}

function heading(doc: Doc, text: string) {
  doc.moveDown(0.6).font('Helvetica-Bold').fontSize(12).fillColor('#1a3d6d').text(text, doc.page.margins.left).fillColor('black').moveDown(0.2);
}

function field(doc: Doc, label: string, value: string) {
  doc.font('Helvetica-Bold').fontSize(9).text(`${label}: `, { continued: true }).font('Helvetica').text(value);
}

/** Every string of a value, made printable. */
function printableAll<T>(value: T): T {
  if (typeof value === 'string') return printable(value) as T;
  if (Array.isArray(value)) return value.map(printableAll) as T;
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, printableAll(item)])) as T;
  return value;
}

export async function renderReportPdf(written: Report, writtenParties: ReportDocumentParties): Promise<Buffer> {
  const report = printableAll(written);
  const parties = printableAll(writtenParties);
  const { default: PDFDocument } = await import('pdfkit');
  const doc = new PDFDocument({
    size: 'LETTER',
    margin: 54,
    bufferPages: true,
    info: { Title: `${titles[report.kind]} ${report.id}`, Author: parties.therapist, Subject: 'Medical massage report', CreationDate: new Date(report.createdAt) },
  });
  const chunks: Buffer[] = [];
  doc.on('data', (chunk: Buffer) => chunks.push(chunk));
  const finished = new Promise<Buffer>((resolve, reject) => {
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
  });

  doc.font('Helvetica-Bold').fontSize(16).text(`Medical massage: ${titles[report.kind]}`);
  doc.font('Helvetica').fontSize(8).fillColor('#666666').text(`Report ${report.id} · referral ${report.referralId}`).fillColor('black').moveDown(0.5);
  field(doc, 'Patient', parties.patient);
  field(doc, 'Prescriber', `${parties.prescriber} (${parties.office})`);
  field(doc, 'Therapist', `${parties.therapist} (${parties.practice})`);
  field(doc, 'Diagnoses', parties.diagnoses.map((diagnosis) => `${diagnosis.code} ${diagnosis.display}`).join('; '));
  field(doc, 'Report date', report.createdAt.slice(0, 10));
  const covered = report.visitsCovered ? `visits ${report.visitsCovered.from}–${report.visitsCovered.to}` : 'no new visits';
  field(doc, 'Visits', `${covered}; ${report.visitsUsed} of ${report.visitsAuthorized} authorized used`);
  if (report.dischargeReason) field(doc, 'Discharge reason', human(report.dischargeReason));
  field(doc, 'Recommendation', human(report.recommendation));

  heading(doc, 'Summary');
  doc.font('Helvetica').fontSize(10).text(report.summary);

  heading(doc, 'Goals');
  for (const goal of report.goals) {
    const measured = [goal.measure, goal.target && `target ${goal.target}`].filter(Boolean).join(', ');
    doc.font('Helvetica-Bold').fontSize(10).text(`[${goalStatus[goal.status]}] `, { continued: true }).font('Helvetica').text(`${goal.description}${measured ? ` (${measured})` : ''}`);
  }

  if (report.planOfCare) {
    heading(doc, 'Plan of care');
    field(doc, 'Frequency', `${report.planOfCare.plannedFrequencyPerWeek} per week for ${report.planOfCare.plannedDurationWeeks} weeks`);
    field(doc, 'Techniques', report.planOfCare.techniques.map(human).join(', '));
  }
  if (report.findings) {
    heading(doc, 'Findings');
    for (const [name, text] of Object.entries(report.findings)) field(doc, human(name), text);
  }
  if (report.baseline) {
    heading(doc, 'Baseline');
    field(doc, 'Pain', `${report.baseline.pain}/10`);
    for (const motion of report.baseline.rangeOfMotion ?? []) field(doc, `${human(motion.joint)} ${motion.movement}`, `${motion.degrees}°`);
    for (const measure of report.baseline.outcomeMeasures ?? []) field(doc, measure.name ?? measure.instrument, String(measure.score));
  }

  heading(doc, 'Progress');
  const xMax = Math.max(report.visitsUsed, 1);
  if (report.painTrend.length === 0) {
    doc.font('Helvetica').fontSize(10).text('No visits recorded yet.');
  } else {
    lineChart(doc, {
      title: 'Pain (0–10) before and after each visit',
      yMax: 10,
      xMax,
      series: [
        { label: 'before', color: '#c0392b', points: report.painTrend.map((point) => ({ x: point.visitNumber, y: point.before })) },
        { label: 'after', color: '#2471a3', points: report.painTrend.map((point) => ({ x: point.visitNumber, y: point.after })) },
      ],
    });
  }
  for (const outcome of report.outcomes) {
    const label = outcome.name ?? outcome.instrument;
    const change = outcome.change === null ? '' : `, change ${outcome.change > 0 ? '+' : ''}${outcome.change}`;
    const scores = outcome.series.map((point) => point.score);
    lineChart(doc, {
      title: `${label}: baseline ${outcome.baseline ?? 'none'}, latest ${outcome.latest ?? 'none'}${change}`,
      yMax: Math.max(10, ...scores, outcome.baseline ?? 0),
      xMax,
      series: [
        { label, color: '#1e8449', points: outcome.series.map((point) => ({ x: point.visitNumber, y: point.score })) },
        ...(outcome.baseline === null ? [] : [{ label: 'baseline', color: '#7f8c8d', dash: true, points: [{ x: 1, y: outcome.baseline }, { x: xMax, y: outcome.baseline }] }]),
      ],
    });
  }

  heading(doc, 'Signature');
  if (report.signature) {
    field(doc, 'Signed by', `${parties.signer ?? parties.prescriber} on ${report.signature.signedAt.slice(0, 10)} (${report.signature.method === 'physician' ? 'signed by the prescriber' : "attested by the office's EHR"})`);
    doc.font('Helvetica-Oblique').fontSize(9).text(report.signature.attestation);
    if (report.signature.comment) field(doc, 'Comment', report.signature.comment);
  } else {
    doc.font('Helvetica').fontSize(10).text('Not signed yet. Prescriber signature: ______________________   Date: ____________');
  }
  // The footer sits in the bottom margin of every page, where text would otherwise start a new page.
  const range = doc.bufferedPageRange();
  for (let index = range.start; index < range.start + range.count; index++) {
    doc.switchToPage(index);
    const bottom = doc.page.margins.bottom;
    doc.page.margins.bottom = 0;
    doc
      .font('Helvetica')
      .fontSize(7)
      .fillColor('#666666')
      .text(`Confidential: protected health information. Page ${index + 1} of ${range.count}.`, doc.page.margins.left, doc.page.height - 36, { lineBreak: false });
    doc.page.margins.bottom = bottom;
  }
  doc.end();
  return finished;
}
