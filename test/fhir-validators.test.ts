// The FHIR validation tooling (issue 18): the run-time inbound validator refuses what partners may
// send wrong, and the two test validators pass valid R4 and each catch what the fixture's table
// says. No database, no app.
import t from 'tap';
import { validateInbound } from '../src/modules/fhir/inbound/validator.js';
import { fhirProblems } from './fixtures/fhir-validators.js';
import { assertValidFhir } from './fixtures/fhir-validators.js';

type Resource = Record<string, unknown>;
const id = (n: number) => `0b6c2a4e-5d1f-4c3b-9a7e-${String(n).padStart(12, '0')}`;
const base = 'https://api.example.test/fhir/R4';
const ucum = 'http://unitsofmeasure.org';
const meta = { versionId: '3', lastUpdated: '2026-12-01T10:00:00.000Z' };
const withChanges = (resource: Resource, changes: Resource): Resource => ({ ...structuredClone(resource), ...changes });
const without = (resource: Resource, ...keys: string[]): Resource => Object.fromEntries(Object.entries(structuredClone(resource)).filter(([key]) => !keys.includes(key)));

const patient: Resource = {
  resourceType: 'Patient',
  id: id(1),
  meta,
  identifier: [{ system: 'urn:massage-referral:patient', value: id(1) }, { type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] }, value: 'MRN-0042' }],
  name: [{ family: 'Rivera', given: ['Ana'] }],
  gender: 'female',
  birthDate: '1971-04-09',
  telecom: [{ system: 'phone', value: '+1 503 555 0100', use: 'mobile' }],
};

// As a prescriber's EHR would post it: the patient contained, the course as a Timing.
const serviceRequest: Resource = {
  resourceType: 'ServiceRequest',
  id: id(2),
  meta,
  contained: [
    { resourceType: 'Patient', id: 'patient', gender: 'female', extension: [{ url: 'urn:massage-referral:extension:age', valueAge: { value: 55, unit: 'a', system: ucum, code: 'a' } }] },
    {
      resourceType: 'Coverage',
      id: 'coverage',
      status: 'active',
      beneficiary: { reference: '#patient' },
      payor: [{ display: 'Cascade Health Plan' }],
      subscriberId: 'M-99812',
      class: [{ type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/coverage-class', code: 'group' }] }, value: 'G-17' }],
    },
  ],
  extension: [{ url: 'urn:massage-referral:extension:authorization-period', valuePeriod: { start: '2026-12-01', end: '2027-03-01' } }],
  status: 'active',
  intent: 'order',
  priority: 'routine',
  code: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '97124', display: 'Massage therapy' }] },
  orderDetail: [{ coding: [{ system: 'urn:massage-referral:technique', code: 'trigger_point' }] }],
  quantityQuantity: { value: 12, unit: 'visits' },
  subject: { reference: '#patient' },
  occurrenceTiming: { repeat: { boundsDuration: { value: 6, unit: 'wk', system: ucum, code: 'wk' }, frequency: 2, period: 1, periodUnit: 'wk', duration: 60, durationUnit: 'min' } },
  authoredOn: '2026-12-01T09:30:00Z',
  requester: { reference: `Practitioner/${id(3)}` },
  performer: [{ reference: `Organization/${id(4)}` }],
  reasonCode: [{ coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'M54.50', display: 'Low back pain, unspecified' }], text: 'Chronic low back pain' }],
  insurance: [{ reference: '#coverage' }],
  bodySite: [{ coding: [{ system: 'urn:massage-referral:body-region', code: 'lumbar' }] }],
  note: [{ text: 'Goal: sit through a work day' }, { text: 'Precaution: anticoagulants, light pressure' }],
  supportingInfo: [{ reference: `ServiceRequest/${id(5)}` }],
};

const task: Resource = {
  resourceType: 'Task',
  id: id(6),
  meta,
  status: 'accepted',
  businessStatus: { coding: [{ system: 'http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS', code: '3.0', display: 'Service Request Accepted' }] },
  intent: 'order',
  code: { coding: [{ system: 'http://hl7.org/fhir/CodeSystem/task-code', code: 'fulfill' }] },
  focus: { reference: `ServiceRequest/${id(2)}` },
  for: { reference: `Patient/${id(1)}` },
  authoredOn: '2026-12-01T09:30:00Z',
  lastModified: '2026-12-02T14:00:00Z',
  requester: { reference: `Practitioner/${id(3)}` },
  owner: { reference: `Practitioner/${id(7)}` },
  restriction: { repetitions: 12, period: { start: '2026-12-01', end: '2027-03-01' } },
  output: [{ type: { text: 'report to prescriber' }, valueReference: { reference: `DocumentReference/${id(8)}` } }],
};

const searchset: Resource = {
  resourceType: 'Bundle',
  type: 'searchset',
  link: [
    { relation: 'self', url: `${base}/Task?owner=Practitioner/${id(7)}&_include=Task:focus&_count=50` },
    { relation: 'next', url: `${base}/Task?owner=Practitioner/${id(7)}&_include=Task:focus&_count=50&_cursor=abc` },
  ],
  entry: [
    { fullUrl: `${base}/Task/${id(6)}`, resource: task, search: { mode: 'match' } },
    { fullUrl: `${base}/ServiceRequest/${id(2)}`, resource: serviceRequest, search: { mode: 'include' } },
  ],
};

const operationOutcome: Resource = {
  resourceType: 'OperationOutcome',
  issue: [
    {
      severity: 'error',
      code: 'required',
      details: { coding: [{ system: 'urn:massage-referral:problem', code: 'validation-failed' }], text: 'is required' },
      expression: ['ServiceRequest.subject'],
    },
  ],
};

const capabilityStatement: Resource = {
  resourceType: 'CapabilityStatement',
  status: 'active',
  date: '2026-12-07',
  kind: 'instance',
  implementation: { description: 'Massage referral network FHIR façade', url: base },
  fhirVersion: '4.0.1',
  format: ['json', 'application/fhir+json'],
  rest: [
    {
      mode: 'server',
      security: {
        extension: [
          {
            url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
            extension: [{ url: 'token', valueUri: 'https://api.example.test/v1/auth/token' }],
          },
        ],
        service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
      },
      resource: [
        {
          type: 'Task',
          interaction: [{ code: 'read' }, { code: 'search-type' }, { code: 'update' }],
          searchInclude: ['Task:focus'],
          searchParam: [
            { name: 'owner', type: 'reference' },
            { name: 'status', type: 'token' },
            { name: '_lastUpdated', type: 'date' },
          ],
        },
      ],
    },
  ],
};

// A FHIR webhook's body (plan §5): the changed Task, and a link for what is not a Task.
const webhookBundle: Resource = {
  resourceType: 'Bundle',
  id: id(13),
  identifier: { system: 'urn:massage-referral:webhook-event', value: id(13) },
  meta: { tag: [{ system: 'urn:massage-referral:event-type', code: 'referral.accepted' }] },
  type: 'collection',
  timestamp: '2026-12-02T14:00:00.000Z',
  link: [{ relation: 'related', url: `${base}/Communication/${id(9)}` }],
  entry: [{ fullUrl: `${base}/Task/${id(6)}`, resource: without(task, 'for', 'output', 'restriction') }],
};

// A partner's Task update (plan §3): declined, with the reason, or accepted with the precautions acknowledged.
const declinedTask: Resource = { ...task, status: 'rejected', statusReason: { text: 'Caseload full until March' } };
const acceptedTask: Resource = {
  ...task,
  input: [{ type: { coding: [{ system: 'urn:massage-referral:task-input', code: 'acknowledged-precautions' }] }, valueBoolean: true }],
};

// The other types the façade emits (plan §2.3), so a false error of either validator shows here first.
const others: Resource[] = [
  {
    resourceType: 'Practitioner',
    id: id(7),
    identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: '1234567893' }],
    name: [{ text: 'Sam Okafor' }],
    qualification: [{ identifier: [{ system: 'urn:massage-referral:license-state', value: 'MT-1' }], code: { text: 'Massage therapist license' }, period: { end: '2028-12-31' } }],
  },
  {
    resourceType: 'PractitionerRole',
    id: id(7),
    practitioner: { reference: `Practitioner/${id(7)}` },
    organization: { reference: `Organization/${id(4)}` },
    code: [{ coding: [{ system: 'urn:massage-referral:role', code: 'therapist' }] }],
    specialty: [{ coding: [{ system: 'urn:massage-referral:technique', code: 'trigger_point' }] }],
  },
  {
    resourceType: 'Organization',
    id: id(4),
    active: true,
    type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/organization-type', code: 'prov' }] }],
    name: 'Willamette Massage Therapy',
    address: [{ line: ['2 Test Ave'], city: 'Portland', state: 'OR', postalCode: '97204' }],
  },
  {
    resourceType: 'Communication',
    id: id(9),
    status: 'completed',
    partOf: [{ reference: `Task/${id(6)}` }],
    basedOn: [{ reference: `ServiceRequest/${id(2)}` }],
    subject: { reference: `Patient/${id(1)}` },
    sent: '2026-12-02T15:00:00Z',
    sender: { reference: `Practitioner/${id(7)}` },
    recipient: [{ reference: `Organization/${id(10)}` }],
    priority: 'urgent',
    payload: [{ contentString: 'First visit booked for Thursday.' }],
  },
  {
    resourceType: 'Encounter',
    id: id(11),
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
    type: [{ coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: '97124' }] }],
    subject: { reference: `Patient/${id(1)}` },
    basedOn: [{ reference: `ServiceRequest/${id(2)}` }],
    participant: [{ individual: { reference: `Practitioner/${id(7)}` } }],
    period: { start: '2026-12-04', end: '2026-12-04' },
    length: { value: 60, unit: 'min', system: ucum, code: 'min' },
    serviceProvider: { reference: `Organization/${id(4)}` },
  },
  {
    resourceType: 'Observation',
    id: `${id(11)}-pain-before`,
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'survey' }] }],
    code: { coding: [{ system: 'http://loinc.org', code: '72514-3', display: 'Pain severity - 0-10 verbal numeric rating [Score] - Reported' }] },
    subject: { reference: `Patient/${id(1)}` },
    encounter: { reference: `Encounter/${id(11)}` },
    basedOn: [{ reference: `ServiceRequest/${id(2)}` }],
    effectiveDateTime: '2026-12-04',
    valueInteger: 6,
    method: { coding: [{ system: 'urn:massage-referral:pain-timing', code: 'before' }] },
  },
  {
    resourceType: 'DocumentReference',
    id: id(8),
    status: 'current',
    type: { coding: [{ system: 'http://loinc.org', code: '18842-5', display: 'Discharge summary' }] },
    subject: { reference: `Patient/${id(1)}` },
    date: '2027-01-20T10:00:00Z',
    author: [{ reference: `Practitioner/${id(7)}` }],
    content: [{ attachment: { contentType: 'application/pdf', url: `Binary/${id(8)}`, title: 'Discharge summary', size: 48213 } }],
    context: { related: [{ reference: `ServiceRequest/${id(2)}` }] },
  },
  { resourceType: 'Binary', id: id(8), contentType: 'application/pdf', data: 'JVBERi0xLjcK' },
  {
    resourceType: 'AuditEvent',
    id: id(12),
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest' },
    subtype: [{ system: 'urn:massage-referral:audit-action', code: 'referral.read' }],
    action: 'R',
    recorded: '2026-12-02T15:00:00.123Z',
    outcome: '0',
    agent: [{ who: { reference: `Practitioner/${id(7)}` }, requestor: true, network: { address: '203.0.113.9', type: '2' } }],
    source: { observer: { display: 'massage-referral-network' } },
    entity: [{ what: { reference: `ServiceRequest/${id(2)}` } }, { what: { reference: `Patient/${id(1)}` }, role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1' } }],
  },
];


// First, while only the run-time extract is loaded (the fixture loads the test one on first use):
// what a route refuses, with what path.
t.test('validateInbound refuses what a partner may send wrong, naming the FHIR path', async (t) => {
  t.strictSame(validateInbound(serviceRequest, 'ServiceRequest'), [], 'a valid ServiceRequest with contained Patient and Coverage');
  t.strictSame(validateInbound(task, 'Task'), [], 'a valid Task');
  t.strictSame(validateInbound(declinedTask, 'Task'), [], 'a valid declined Task');
  t.strictSame(validateInbound(acceptedTask, 'Task'), [], 'a valid accepted Task with its input');
  t.strictSame(validateInbound(others.find(({ resourceType }) => resourceType === 'Communication'), 'Communication'), [], 'a valid Communication');
  t.strictSame(validateInbound(patient, 'Patient'), [], 'a valid Patient');

  t.strictSame(
    validateInbound(without(serviceRequest, 'status', 'intent', 'subject'), 'ServiceRequest').map(({ path }) => path),
    ['ServiceRequest.status', 'ServiceRequest.intent', 'ServiceRequest.subject'],
    'required elements missing',
  );
  t.match(validateInbound(withChanges(patient, { birthDate: 12 }), 'Patient'), [{ path: 'Patient.birthDate', message: /expected string/ }], 'wrong datatype');
  t.match(validateInbound(withChanges(patient, { birthDate: '1971-13-09' }), 'Patient'), [{ path: 'Patient.birthDate', message: /Invalid date format/ }], 'malformed date');
  t.match(validateInbound(withChanges(patient, { gender: ['female', 'male'] }), 'Patient'), [{ path: 'Patient.gender', message: /single value/ }], 'an array where one value is due');
  t.match(validateInbound(withChanges(patient, { favouriteColour: 'teal' }), 'Patient'), [{ path: 'Patient.favouriteColour', message: /additional property/ }], 'unknown element');
  t.match(
    validateInbound(withChanges(serviceRequest, { occurrenceTiming: { repeat: { frequency: 2, period: 1 } } }), 'ServiceRequest'),
    [{ path: 'ServiceRequest.occurrence[x].repeat', message: /tim-2/ }],
    'an R4 invariant (a period needs its unit)',
  );
  t.match(
    validateInbound(withChanges(serviceRequest, { occurrenceDateTime: '2026-12-01' }), 'ServiceRequest'),
    [{ path: 'occurrenceDateTime', message: /Conflicting choice/ }],
    'two values for one choice element (a medplum warning, refused)',
  );
  t.match(
    validateInbound(withChanges(task, { owner: { reference: `ServiceRequest/${id(2)}` } }), 'Task'),
    [{ path: 'Task.owner', message: /Invalid reference: got "ServiceRequest"/ }],
    'a Reference to a type the element does not allow (a medplum warning, refused)',
  );
  t.match(validateInbound(withChanges(patient, { name: [{ family: null }] }), 'Patient'), [{ path: 'Patient.name[0].family', message: /null/ }], 'null');
  t.match(
    validateInbound(withChanges(patient, { name: [{ family: 'Rivera', constructor: 'x' }] }), 'Patient'),
    [{ path: 'Patient.name[0].constructor', message: /additional property "constructor"/ }],
    'an element named like an Object.prototype member, which medplum takes as known',
  );
  t.strictSame(validateInbound(withChanges(task, { status: 'bogus' }), 'Task'), [], 'codes are left to the mappers\' value lists (medplum checks none)');
  t.match(
    validateInbound(withChanges(serviceRequest, { contained: [{ resourceType: 'Observation', id: 'o', status: 'final', code: { text: 'x' } }] }), 'ServiceRequest'),
    [{ path: 'ServiceRequest', message: /Unknown data type: Observation/ }],
    'a contained resource of a type the run-time extract does not hold is refused, not thrown',
  );
});

t.test('validateInbound never throws on garbage', async (t) => {
  let deep: Resource = { url: 'urn:x', valueString: 'x' };
  for (let level = 0; level < 20_000; level++) deep = { url: 'urn:x', extension: [deep] };
  const cases: [string, unknown, string?][] = [
    ['null', null],
    ['undefined', undefined],
    ['a string', 'Patient'],
    ['a number', 12],
    ['an array', [patient]],
    ['an object without resourceType', { gender: 'female' }],
    ['another resourceType', task],
    ['a resourceType that is not a string', { resourceType: ['Patient'] }],
    ['a __proto__ member', JSON.parse('{"resourceType":"Patient","__proto__":{"x":1}}')],
    ['a valueOf member, which breaks medplum', { resourceType: 'Patient', birthDate: { valueOf: 1 } }],
    ['deep nesting', { resourceType: 'Patient', extension: [deep] }],
    ['a contained resource without resourceType', withChanges(serviceRequest, { contained: [{ id: 'p' }] }), 'ServiceRequest'],
    ['a contained resource of an unknown type', withChanges(serviceRequest, { contained: [{ resourceType: 'Bogus', id: 'p' }] }), 'ServiceRequest'],
    ['a string where a resource is due', withChanges(serviceRequest, { contained: ['Patient'] }), 'ServiceRequest'],
  ];
  for (const [what, resource, type = 'Patient'] of cases) {
    const problems = validateInbound(resource, type);
    t.ok(problems.length > 0 && problems.every((problem) => typeof problem.path === 'string' && typeof problem.message === 'string' && problem.message.length > 0), `${what}: ${JSON.stringify(problems).slice(0, 200)}`);
  }
  t.throws(() => validateInbound(patient, 'Observation'), TypeError, 'a type outside the extract is a programming error');
});

t.test('valid resources of every type the façade emits pass both validators', async (t) => {
  for (const resource of [serviceRequest, task, declinedTask, acceptedTask, patient, searchset, webhookBundle, operationOutcome, capabilityStatement, ...others]) {
    await assertValidFhir(t, resource);
  }
});

interface Case {
  what: string;
  resource: unknown;
  /** Which validator reports it, matched on "validator location: message"; `false`: this one does not (the fixture's table). */
  medplum: RegExp | false;
  fhirJs: RegExp | false;
}

const cases: Case[] = [
  {
    what: 'required elements missing (ServiceRequest without status, intent, subject)',
    resource: without(serviceRequest, 'status', 'intent', 'subject'),
    medplum: /ServiceRequest\.status: Missing required property/,
    fhirJs: /ServiceRequest\.status: Missing property/,
  },
  { what: 'a code outside a required value set (Task.status "bogus")', resource: withChanges(task, { status: 'bogus' }), medplum: false, fhirJs: /Task\.status: Code "bogus" not found/ },
  {
    what: 'a bad code inside a Bundle entry',
    resource: withChanges(searchset, { entry: [{ fullUrl: `${base}/Task/${id(6)}`, resource: withChanges(task, { status: 'bogus' }), search: { mode: 'match' } }] }),
    medplum: false,
    fhirJs: /Task\.status \(in .*\): Code "bogus"/,
  },
  { what: 'a wrong datatype (birthDate 12)', resource: withChanges(patient, { birthDate: 12 }), medplum: /Patient\.birthDate: Invalid JSON type/, fhirJs: /Patient\.birthDate: Invalid date format/ },
  { what: 'a malformed date (month 13)', resource: withChanges(patient, { birthDate: '1971-13-09' }), medplum: /Patient\.birthDate: Invalid date format/, fhirJs: false },
  { what: 'cardinality: two genders', resource: withChanges(patient, { gender: ['female', 'male'] }), medplum: /Patient\.gender: Expected single value/, fhirJs: /Patient\.gender: Code "female,male"/ },
  { what: 'cardinality: an array where one value is due', resource: withChanges(patient, { birthDate: ['1971-04-09'] }), medplum: /Patient\.birthDate: Expected single value/, fhirJs: false },
  { what: 'cardinality: one value where an array is due', resource: withChanges(patient, { name: { family: 'Rivera' } }), medplum: /Patient\.name: Expected array/, fhirJs: /Patient\.name: Property is not an array/ },
  {
    what: 'an R4 invariant: a Bundle entry with neither resource nor request (bdl-5)',
    resource: withChanges(searchset, { entry: [{ fullUrl: `${base}/Task/${id(6)}`, search: { mode: 'match' } }] }),
    medplum: /Bundle\.entry\[0\]: Constraint bdl-5/,
    fhirJs: false,
  },
  { what: 'an R4 invariant: total in a collection Bundle (bdl-1)', resource: { resourceType: 'Bundle', type: 'collection', total: 1 }, medplum: /Constraint bdl-1/, fhirJs: false },
  {
    what: 'an R4 invariant: an extension with both a value and extensions (ext-1)',
    resource: withChanges(patient, { extension: [{ url: 'urn:x', valueString: 'a', extension: [{ url: 'urn:y', valueString: 'b' }] }] }),
    medplum: /Patient\.extension\[0\]: Constraint ext-1/,
    fhirJs: false,
  },
  { what: 'an unknown element', resource: withChanges(patient, { favouriteColour: 'teal' }), medplum: /Patient\.favouriteColour: Invalid additional property/, fhirJs: /Patient\.favouriteColour: Unexpected property/ },
  {
    what: 'a Reference to a type the element does not allow',
    resource: withChanges(task, { owner: { reference: `ServiceRequest/${id(2)}` } }),
    medplum: /Task\.owner: Invalid reference: got "ServiceRequest"/,
    fhirJs: /Task\.owner: Invalid type for reference/,
  },
  {
    what: 'two values for one choice element',
    resource: withChanges(serviceRequest, { occurrenceDateTime: '2026-12-01' }),
    medplum: /Conflicting choice of type properties/,
    fhirJs: false,
  },
  {
    what: 'an element named like an Object.prototype member',
    resource: withChanges(patient, { name: [{ family: 'Rivera', constructor: 'x' }] }),
    medplum: false,
    fhirJs: /Patient\.name\[0\]\.constructor: Unexpected property/,
  },
  { what: 'an empty object', resource: withChanges(patient, { name: [{}] }), medplum: /Patient\.name\[0\]: Invalid empty/, fhirJs: false },
  { what: 'not a resource', resource: null, medplum: /not a resource/, fhirJs: /not a resource/ },
  { what: 'an unknown resourceType', resource: { resourceType: 'Referral' }, medplum: /Unknown data type: Referral/, fhirJs: /not a valid resource type/ },
  // What neither catches, kept here so the table stays true when either library changes.
  { what: 'ref-1: a local reference with no contained resource', resource: withChanges(task, { owner: { reference: '#nobody' } }), medplum: false, fhirJs: false },
  { what: 'per-1: a Period ending before it starts', resource: withChanges(task, { restriction: { period: { start: '2027-03-01', end: '2026-12-01' } } }), medplum: false, fhirJs: false },
  { what: 'a Reference that is no reference', resource: withChanges(task, { focus: { reference: 'not a reference' } }), medplum: false, fhirJs: false },
  { what: 'an id with a character R4 ids do not allow', resource: withChanges(patient, { id: 'a_b' }), medplum: false, fhirJs: false },
];

t.test('invalid resources: each validator catches what the fixture table says', async (t) => {
  for (const { what, resource, medplum, fhirJs } of cases) {
    const problems = await fhirProblems(resource);
    for (const [validator, expected] of [['medplum', medplum], ['fhir.js', fhirJs]] as const) {
      const own = problems.filter((problem) => problem.startsWith(`${validator} `));
      if (expected) t.ok(own.some((problem) => expected.test(problem)), `${what}: ${validator} reports ${expected}`, { found: own });
      else t.strictSame(own, [], `${what}: ${validator} does not`);
    }
  }
});
