// The mass-assignment test's FHIR cases (mass-assignment.test.ts): a referral created from a
// ServiceRequest and a message posted as a Communication under /fhir/R4. The planted fields are FHIR
// elements the server owns (id, meta, when the order was authored or the message sent, who sent it
// to whom, about which patient) or does not keep (identifier, requisition, received): an element the
// server does not keep is refused by name in an OperationOutcome, a server-owned one it always
// ignores (id, meta) is ignored, and either way the stored referral or message, read back from the
// database, through /v1 and through /fhir/R4, takes none of them. (PUT Task is not a POST or PATCH:
// the coverage check lists neither PUT nor its case.)
import { randomUUID } from 'node:crypto';
import { inArray } from 'drizzle-orm';
import { messages, patients, referralEvents, referrals } from '../../src/db/schema.js';
import type { Json } from '../helper.js';
import type { Op } from './mass-assignment-operations.js';
import { byId, type MassAssignmentWorld, type Rec } from './mass-assignment-world.js';

const idIn = (reference: unknown, type: string): string | undefined =>
  typeof reference === 'string' ? new RegExp(`(?:^|/)${type}/([^/]+)$`).exec(reference)?.[1] : undefined;

export async function fhirOperations(world: MassAssignmentWorld): Promise<Op[]> {
  const { test, db, planted, mark, office, otherOffice, practice, newReferral, foreign, signatureParts, referralApi } = world;

  const fhirGet = async (url: string, token: string): Promise<Json | undefined> => {
    const response = await test.request({ method: 'GET', url, token, headers: { accept: 'application/fhir+json' } });
    return response.statusCode === 200 ? response.json() : undefined;
  };
  const taskOf = async (referralId: string, token: string): Promise<string> => {
    const bundle = await fhirGet(`/fhir/R4/Task?focus=ServiceRequest/${referralId}`, token);
    const id = bundle?.entry?.[0]?.resource?.id;
    if (typeof id !== 'string') throw new Error(`no Task for referral ${referralId}: ${JSON.stringify(bundle)}`);
    return id;
  };
  /** The meta a client might send: a version and a time of its choosing. */
  const plantedMeta = { versionId: '42', lastUpdated: planted };
  const metaColumns = { version: 42, versionId: '42', lastUpdated: planted, updatedAt: planted };
  const foreignTask = await taskOf(foreign.referral, otherOffice.physician.token);

  /** A ServiceRequest as the office's FHIR views show it, its references as the ids they name. */
  const serviceRequestView = (resource: Json): Rec => ({
    ...resource,
    versionId: resource.meta?.versionId,
    lastUpdated: resource.meta?.lastUpdated,
    patientId: idIn(resource.subject?.reference, 'Patient'),
    prescriberId: idIn(resource.requester?.reference, 'Practitioner'),
    continuesReferralId: idIn(resource.replaces?.[0]?.reference, 'ServiceRequest'),
  });
  const communicationView = (resource: Json): Rec => ({
    ...resource,
    versionId: resource.meta?.versionId,
    lastUpdated: resource.meta?.lastUpdated,
    authorId: idIn(resource.sender?.reference, 'Practitioner'),
    authorOrganizationId: idIn(resource.sender?.reference, 'Organization'),
    patientId: idIn(resource.subject?.reference, 'Patient'),
    referralId: idIn(resource.basedOn?.[0]?.reference, 'ServiceRequest'),
  });

  return [
    {
      method: 'POST',
      path: '/fhir/R4/ServiceRequest',
      fhir: { resourceType: 'ServiceRequest' },
      creates: true,
      owned: [
        // Server-owned and ignored when sent: the referral's id and version are the server's.
        { field: 'id', value: randomUUID(), legit: true },
        { field: 'meta', value: plantedMeta, legit: true, also: metaColumns },
        // Read for nothing: the referral is created (and signed) now, not when the client says.
        { field: 'authoredOn', value: planted, legit: true, also: { createdAt: planted, sentAt: planted, signedAt: planted } },
        // Not kept: refused by name.
        { field: 'identifier', value: [{ system: 'urn:attacker:placer', value: 'planted-identifier' }] },
        { field: 'requisition', value: { system: 'urn:attacker:group', value: 'planted-requisition' } },
        // Taken, within limits: a referral starts active (sent) or draft, for a patient and prescriber of the office.
        { field: 'status', value: 'completed', legit: true },
        { field: 'subject', value: { reference: `Patient/${foreign.patient}` }, legit: true, also: { patientId: foreign.patient } },
        { field: 'requester', value: { reference: `Practitioner/${foreign.user}` }, legit: true, also: { prescriberId: foreign.user } },
        { field: 'replaces', value: [{ reference: `ServiceRequest/${foreign.referral}` }], legit: true, also: { continuesReferralId: foreign.referral } },
      ],
      async setup() {
        const patient = await test.create('/v1/patients', office.physician.token, { givenName: mark('fhir-patient'), familyName: 'Mass-assignment', birthDate: '1979-07-08', sex: 'female' });
        return {
          url: '/fhir/R4/ServiceRequest',
          // The office admin drafts in the physician's name, so the referral is unsigned: a planted
          // authoredOn is all that could give it a time of signing.
          token: office.admin.token,
          valid: () => ({
            resourceType: 'ServiceRequest',
            contained: [{ resourceType: 'Coverage', id: 'c1', status: 'active', beneficiary: { reference: `Patient/${patient.id}` }, payor: [{ display: 'Acme Health' }], subscriberId: 'AH123' }],
            status: 'draft',
            intent: 'order',
            priority: 'routine',
            code: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '97140' }] },
            orderDetail: [{ coding: [{ system: 'urn:massage-referral:technique', code: 'trigger_point' }] }],
            quantityQuantity: { value: 8, unit: 'visits' },
            subject: { reference: `Patient/${patient.id}` },
            occurrenceTiming: { repeat: { boundsDuration: { value: 6, unit: 'wk', system: 'http://unitsofmeasure.org', code: 'wk' }, frequency: 2, period: 1, periodUnit: 'wk', duration: 60, durationUnit: 'min' } },
            requester: { reference: `Practitioner/${office.physician.id}` },
            performer: [{ reference: `Organization/${practice.id}` }],
            reasonCode: [{ coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'M54.50', display: 'Low back pain' }], text: mark('fhir-referral') }],
            insurance: [{ reference: '#c1' }],
            bodySite: [{ coding: [{ system: 'urn:massage-referral:body-region', code: 'lower_back' }] }],
          }),
          rows: async () => [
            ...byId('referrals')((await db.select().from(referrals)).map((row) => ({ ...row, ...signatureParts(row.signature) }))),
            ...byId('patients')(await db.select().from(patients)),
            ...byId('referral_events')(await db.select().from(referralEvents)),
          ],
          async api(response, injected) {
            const ids = [response.statusCode === 201 ? response.json().id : undefined, injected.id].filter((id): id is string => typeof id === 'string');
            const records: Rec[] = [];
            for (const id of ids) {
              const resource = await fhirGet(`/fhir/R4/ServiceRequest/${id}`, office.physician.token);
              if (resource) records.push(serviceRequestView(resource));
              records.push(...(await referralApi(id, office.physician.token)));
            }
            return records;
          },
        };
      },
    },
    {
      method: 'POST',
      path: '/fhir/R4/Communication',
      fhir: { resourceType: 'Communication' },
      creates: true,
      owned: [
        { field: 'id', value: randomUUID(), legit: true },
        { field: 'meta', value: plantedMeta, legit: true, also: { ...metaColumns, createdAt: planted } },
        // The server's (SPEC: sender, recipient, subject and sent are refused by name).
        { field: 'sender', value: { reference: `Practitioner/${foreign.user}` }, also: { authorId: foreign.user } },
        { field: 'recipient', value: [{ reference: `Organization/${foreign.org}` }] },
        { field: 'subject', value: { reference: `Patient/${foreign.patient}` }, also: { patientId: foreign.patient } },
        { field: 'sent', value: planted, also: { createdAt: planted } },
        // Not kept: refused by name.
        { field: 'identifier', value: [{ system: 'urn:attacker:message', value: 'planted-identifier' }] },
        { field: 'received', value: planted, also: { acknowledgedAt: planted } },
        // Another office's referral: its thread is not the caller's (404), and nothing lands in it.
        { field: 'partOf', value: [{ reference: `Task/${foreignTask}` }], legit: true, statuses: [404], also: { referralId: foreign.referral } },
      ],
      async setup() {
        const referral = await newReferral(true);
        const taskId = await taskOf(referral.id, office.physician.token);
        return {
          url: '/fhir/R4/Communication',
          token: office.physician.token,
          valid: () => ({ resourceType: 'Communication', status: 'completed', partOf: [{ reference: `Task/${taskId}` }], priority: 'routine', payload: [{ contentString: mark('fhir-message') }] }),
          rows: async () => byId('messages')(await db.select().from(messages).where(inArray(messages.referralId, [referral.id, foreign.referral]))),
          async api(response, injected) {
            const thread: Json[] = (await world.getJson(`/v1/referrals/${referral.id}/messages?limit=200`, office.physician.token))?.data ?? [];
            const records: Rec[] = thread.map((message) => ({ ...message, authorId: message.author.id, authorType: message.author.type, authorOrganizationId: message.author.organizationId }));
            const ids = [response.statusCode === 201 ? response.json().id : undefined, injected.id].filter((id): id is string => typeof id === 'string');
            for (const id of ids) {
              const resource = await fhirGet(`/fhir/R4/Communication/${id}`, office.physician.token);
              if (resource) records.push(communicationView(resource));
            }
            return records;
          },
        };
      },
    },
  ];
}
