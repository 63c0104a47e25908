// The billing summary of a referral (SPEC §14.9): the fields of a CMS-1500 (02/12) claim, each
// named after the box it fills.
import { Type, type Static } from 'typebox';
import { component } from '../../lib/components.js';
import { Address, IsoDate, Uuid } from '../../lib/schemas.js';
import { enumOf, sexes } from '../../lib/vocabulary.js';

/** Box 24B. The practice's own premises: the only place of service the network models (no home visits yet). */
export const officePlaceOfService = '11';
/** Box 17's qualifier for the referring provider. */
export const referringProviderQualifier = 'DN';
/** Box 21's ICD indicator: 0 is ICD-10-CM. */
export const icd10Indicator = '0';
/** Box 21 A–L and the pointers of box 24E. */
export const diagnosisLetters = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L'] as const;

const Npi = Type.Union([Type.String({ pattern: '^\\d{10}$' }), Type.Null()], { description: 'NPI, or null when none is on file' });
const DiagnosisLetter = enumOf(diagnosisLetters);

export const ClaimPatient = component('ClaimPatient', Type.Object(
  { familyName: Type.String(), givenName: Type.String(), birthDate: IsoDate, sex: enumOf(sexes) },
  { description: 'Boxes 2 and 3' },
));

export const ClaimInsured = component('ClaimInsured', Type.Object(
  {
    payer: Type.String(),
    memberId: Type.String({ description: "Box 1a, the insured's ID number" }),
    groupNumber: Type.Union([Type.String(), Type.Null()], { description: 'Box 11, the group number, if any' }),
  },
  { description: "The referral's insurance. The patient is taken as the insured (boxes 4, 7): the referral names no other" },
));

export const ReferringProvider = component('ReferringProvider', Type.Object(
  {
    qualifier: Type.Literal(referringProviderQualifier, { description: 'DN: referring provider' }),
    id: Uuid,
    name: Type.String(),
    npi: Npi,
  },
  { description: 'Box 17 and 17b: the prescribing physician' },
));

export const ClaimProvider = component('ClaimProvider', Type.Object({ id: Uuid, name: Type.String(), npi: Npi }));

export const BillingProvider = component('BillingProvider', Type.Object(
  { id: Uuid, name: Type.String(), npi: Npi, address: Address },
  { description: 'Box 33 and 33a: the accepting practice, which is also the service facility (box 32)' },
));

export const ClaimDiagnosis = component('ClaimDiagnosis', Type.Object({
  letter: DiagnosisLetter,
  code: Type.String({ description: 'ICD-10-CM code as the referral holds it, e.g. M54.50' }),
  formCode: Type.String({ description: 'The code as written on the form, without the dot, e.g. M5450' }),
  display: Type.String(),
}));

export const ServiceLine = component('ClaimServiceLine', Type.Object({
  lineNumber: Type.Integer({ minimum: 1 }),
  visitNumber: Type.Integer({ minimum: 1 }),
  progressReportId: Uuid,
  dateOfService: { ...IsoDate, description: 'Box 24A (from and to): the visit date' },
  placeOfService: Type.String({ description: 'Box 24B: 11, office (the practice)' }),
  cpt: Type.String({ description: 'Box 24D' }),
  modifiers: Type.Array(Type.String(), { maxItems: 4, description: 'Box 24D, in order' }),
  diagnosisPointers: Type.Array(DiagnosisLetter, {
    maxItems: 4,
    description: 'Box 24E, letters of box 21, main one first; empty when the note named none (notes from before pointers existed), which a biller must fill before filing',
  }),
  units: Type.Integer({ description: 'Box 24G' }),
  renderingProviderNpi: { ...Npi, description: "Box 24J: the NPI of the therapist who wrote the visit note, or null when none is on file" },
}));
export type ServiceLine = Static<typeof ServiceLine>;

export const Claim = component('Claim', Type.Object(
  {
    referralId: Uuid,
    patient: ClaimPatient,
    insured: Type.Union([ClaimInsured, Type.Null()], { description: 'null when the referral carries no insurance' }),
    referringProvider: ReferringProvider,
    priorAuthorizationNumber: Type.Union([Type.String(), Type.Null()], { description: "Box 23: the referral insurance's authorizationNumber, if any" }),
    icdIndicator: Type.Literal(icd10Indicator, { description: 'Box 21: 0, ICD-10-CM' }),
    diagnoses: Type.Array(ClaimDiagnosis, { maxItems: 12, description: "Box 21 A–L: the referral's diagnoses in order" }),
    renderingProvider: Type.Union([ClaimProvider, Type.Null()], { description: 'The accepting therapist; null until the referral is accepted' }),
    billingProvider: Type.Union([BillingProvider, Type.Null()], { description: 'The accepting practice; null until the referral is accepted' }),
    serviceLines: Type.Array(ServiceLine, { description: "Box 24: every billing line of the referral's visit notes so far, by visit number then as listed on the note" }),
    totals: Type.Object({ lines: Type.Integer(), units: Type.Integer() }),
  },
  {
    description:
      'No charges (box 24F, 28) or tax id (box 25): the network keeps neither. Names, NPIs and addresses are the ones on file when it is read.',
  },
));
export type Claim = Static<typeof Claim>;
