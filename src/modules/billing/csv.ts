// The claim as CSV for a biller's spreadsheet or clearinghouse import: one row per service line
// (box 24), the claim's own fields repeated on each, a header row, quoted by RFC 4180 (csv-stringify).
import { stringify } from 'csv-stringify/sync';
import { diagnosisLetters, type Claim, type ServiceLine } from './schemas.js';

type Column = [header: string, value: (claim: Claim, line: ServiceLine) => string | number | null];

/** Fields the form has one box for each (modifiers, box 21's letters) get a column each, as on the form. */
const columns: Column[] = [
  ['referralId', (claim) => claim.referralId],
  ['patientFamilyName', (claim) => claim.patient.familyName],
  ['patientGivenName', (claim) => claim.patient.givenName],
  ['patientBirthDate', (claim) => claim.patient.birthDate],
  ['patientSex', (claim) => claim.patient.sex],
  ['insuredPayer', (claim) => claim.insured?.payer ?? null],
  ['insuredMemberId', (claim) => claim.insured?.memberId ?? null],
  ['insuredGroupNumber', (claim) => claim.insured?.groupNumber ?? null],
  ['priorAuthorizationNumber', (claim) => claim.priorAuthorizationNumber],
  ['referringProviderQualifier', (claim) => claim.referringProvider.qualifier],
  ['referringProviderName', (claim) => claim.referringProvider.name],
  ['referringProviderNpi', (claim) => claim.referringProvider.npi],
  ['renderingProviderName', (claim) => claim.renderingProvider?.name ?? null],
  ['renderingProviderNpi', (claim) => claim.renderingProvider?.npi ?? null],
  ['billingProviderName', (claim) => claim.billingProvider?.name ?? null],
  ['billingProviderNpi', (claim) => claim.billingProvider?.npi ?? null],
  ['icdIndicator', (claim) => claim.icdIndicator],
  ...diagnosisLetters.map((letter, index): Column => [`diagnosis${letter}`, (claim) => claim.diagnoses[index]?.formCode ?? null]),
  ['lineNumber', (_claim, line) => line.lineNumber],
  ['visitNumber', (_claim, line) => line.visitNumber],
  ['dateOfService', (_claim, line) => line.dateOfService],
  ['placeOfService', (_claim, line) => line.placeOfService],
  ['cpt', (_claim, line) => line.cpt],
  ...[0, 1, 2, 3].map((index): Column => [`modifier${index + 1}`, (_claim, line) => line.modifiers[index] ?? null]),
  // Box 24E takes the letters together, without separators (NUCC instructions).
  ['diagnosisPointers', (_claim, line) => line.diagnosisPointers.join('')],
  ['units', (_claim, line) => line.units],
  ['lineRenderingProviderNpi', (_claim, line) => line.renderingProviderNpi],
];

export const claimCsvHeader = columns.map(([header]) => header);

/** A claim with no service lines yet is the header row alone. */
export function claimCsv(claim: Claim): string {
  const rows = claim.serviceLines.map((line) => columns.map(([, value]) => value(claim, line) ?? ''));
  return stringify([claimCsvHeader, ...rows], {
    record_delimiter: 'windows',
    // Names come from another organization's staff; a cell starting with = + - @ must not run as a
    // formula in the spreadsheet of whoever opens the file (OWASP CSV injection).
    escape_formulas: true,
  });
}
