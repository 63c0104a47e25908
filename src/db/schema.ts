// The relational model, shared by the embedded (PGlite) and server (PostgreSQL) databases.
import { sql } from 'drizzle-orm';
import {
  type AnyPgColumn,
  bigint,
  boolean,
  check,
  customType,
  date,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import type { Static } from 'typebox';
import type { Technique } from '../lib/catalog.js';
import type { Address } from '../lib/schemas.js';
import {
  apiClientAuthMethods,
  auditActorTypes,
  auditOutcomes,
  deliveryStatuses,
  expirableStatuses,
  organizationKinds,
  principalKinds,
  referralActorTypes,
  referralPriorities,
  referralStatuses,
  referralTargetKinds,
  sexes,
  userRoles,
  webhookEndpointStatuses,
  webhookEventTypes,
  webhookFormats,
  reportKinds,
  reportRecommendations,
  dischargeReasons,
  signatureMethods,
  renewalStatuses,
  appointmentStatuses,
  documentCategories,
  documentContentTypes,
  messagePriorities,
  adverseEventSeverities,
} from '../lib/vocabulary.js';
import type { JwkSet } from '../modules/auth/schemas.js';
import type { Identifier } from '../modules/patients/schemas.js';
import type { BillingLine, OutcomeMeasure, RangeOfMotion } from '../modules/progress-reports/schemas.js';
import type { Diagnosis, Insurance, NetworkOffer, OutcomeScore, PainScores, Signature } from '../modules/referrals/schemas.js';
import type { Baseline, Findings, Goal, ReportFacts } from '../modules/clinical-reports/schemas.js';

// Defined in lib/vocabulary.ts; re-exported because tests and tools import them from the schema.
export { referralStatuses, userRoles, webhookEventTypes, type ReferralStatus, type UserRole, type WebhookEventType } from '../lib/vocabulary.js';

/** A fixed vocabulary list as SQL literals ('a', 'b'), for checks and partial indexes; never for input. */
const sqlValues = (values: readonly string[]) => sql.raw(values.map((value) => `'${value}'`).join(', '));

const createdAt = () => timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();
const updatedAt = () => timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();
/** Raw bytes (PostgreSQL bytea): both drivers hand them over as a Buffer / Uint8Array. */
const bytea = customType<{ data: Buffer; driverData: Buffer | Uint8Array }>({
  dataType: () => 'bytea',
  fromDriver: (value) => (Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength)),
});
/** The writing transaction's id: an insert-only row's position in a feed ordered by commit (see sync_horizon). */
const writerXid = () => bigint('sync_xid', { mode: 'bigint' }).notNull().default(sql`(pg_current_xact_id()::text::bigint)`);

export const organizations = pgTable(
  'organizations',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    kind: text('kind', { enum: organizationKinds }).notNull(),
    name: text('name').notNull(),
    npi: text('npi'),
    address: jsonb('address').$type<Static<typeof Address>>().notNull(),
    latitude: doublePrecision('latitude').notNull(),
    longitude: doublePrecision('longitude').notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    uniqueIndex('organizations_npi_key').on(table.npi),
    index('organizations_created_at_id_idx').on(table.createdAt, table.id),
    check('organizations_kind_check', sql`${table.kind} in (${sqlValues(organizationKinds)})`),
  ],
);

export const users = pgTable(
  'users',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    // Network admins belong to no care organization.
    organizationId: uuid('organization_id').references(() => organizations.id),
    role: text('role', { enum: userRoles }).notNull(),
    email: text('email').notNull(),
    name: text('name').notNull(),
    passwordHash: text('password_hash').notNull(),
    npi: text('npi'),
    active: boolean('active').notNull().default(true),
    // Access tokens issued before this are refused, even after a reactivation (stamped by a
    // trigger, migration 0009, when the account is deactivated or its password changes).
    tokensValidAfter: timestamp('tokens_valid_after', { withTimezone: true, mode: 'date' }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    // Emails are stored lower-cased so sign-in is case-insensitive.
    uniqueIndex('users_email_key').on(table.email),
    index('users_organization_id_created_at_idx').on(table.organizationId, table.createdAt, table.id),
    check(
      'users_role_org_check',
      sql`(${table.role} = 'network_admin') = (${table.organizationId} is null)`,
    ),
  ],
);

/**
 * Failed sign-ins counted per key (an account, or an account from one client address) within a
 * window: counted before the password is checked, so concurrent guesses cannot slip past the limit.
 * Keyed on what was typed, not on a user row, so unknown accounts are throttled exactly like known ones.
 */
export const signInThrottle = pgTable(
  'sign_in_throttle',
  {
    key: text('key').primaryKey(),
    failures: integer('failures').notNull(),
    windowStartedAt: timestamp('window_started_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (table) => [index('sign_in_throttle_window_idx').on(table.windowStartedAt)],
);

export const therapistProfiles = pgTable(
  'therapist_profiles',
  {
    userId: uuid('user_id')
      .primaryKey()
      .references(() => users.id, { onDelete: 'cascade' }),
    licenseNumber: text('license_number').notNull(),
    licenseState: text('license_state').notNull(),
    licenseExpiresOn: date('license_expires_on', { mode: 'string' }).notNull(),
    licenseVerifiedAt: timestamp('license_verified_at', { withTimezone: true, mode: 'date' }),
    /** The expiry date the practice was last told of (license.expiring), so each expiry is told once. */
    licenseExpiryNoticeFor: date('license_expiry_notice_for', { mode: 'string' }),
    techniques: text('techniques').array().notNull(),
    certifications: text('certifications').array().notNull().default(sql`'{}'::text[]`),
    acceptingReferrals: boolean('accepting_referrals').notNull().default(true),
    serviceRadiusKm: integer('service_radius_km').notNull(),
  },
  (table) => [index('therapist_profiles_techniques_idx').using('gin', table.techniques)],
);

export const apiClients = pgTable(
  'api_clients',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id),
    name: text('name').notNull(),
    clientId: text('client_id').notNull(),
    authMethod: text('auth_method', { enum: apiClientAuthMethods }).notNull().default('client_secret'),
    // client_secret only: a private_key_jwt client proves itself with its keys and has no secret.
    secretHash: text('secret_hash'),
    // private_key_jwt only, one of the two: public keys registered here, or a URL serving them.
    jwks: jsonb('jwks').$type<JwkSet>(),
    jwksUrl: text('jwks_url'),
    scopes: text('scopes').array().notNull(),
    active: boolean('active').notNull().default(true),
    createdBy: uuid('created_by'),
    createdAt: createdAt(),
    revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }),
  },
  (table) => [
    uniqueIndex('api_clients_client_id_key').on(table.clientId),
    index('api_clients_organization_id_created_at_idx').on(table.organizationId, table.createdAt, table.id),
    check('api_clients_auth_method_check', sql`${table.authMethod} in (${sqlValues(apiClientAuthMethods)})`),
    check(
      'api_clients_credentials_check',
      sql`case ${table.authMethod}
        when 'client_secret' then ${table.secretHash} is not null and ${table.jwks} is null and ${table.jwksUrl} is null
        else ${table.secretHash} is null and (${table.jwks} is null) <> (${table.jwksUrl} is null) end`,
    ),
  ],
);

/**
 * The jti of every client assertion taken, kept until the assertion expires: an assertion is
 * single-use (RFC 7523 §3, SMART Backend Services), so a second use of a jti is refused. Rows past
 * expires_at are swept away, as an expired assertion is refused anyway.
 */
export const clientAssertionJtis = pgTable(
  'client_assertion_jtis',
  {
    apiClientId: uuid('api_client_id')
      .notNull()
      .references(() => apiClients.id),
    jti: text('jti').notNull(),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
  },
  (table) => [primaryKey({ columns: [table.apiClientId, table.jti] }), index('client_assertion_jtis_expires_at_idx').on(table.expiresAt)],
);

export const refreshTokens = pgTable(
  'refresh_tokens',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    // All tokens rotated from one sign-in share a family, so reuse of any of them revokes the lot.
    familyId: uuid('family_id').notNull(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    tokenHash: text('token_hash').notNull(),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
    rotatedAt: timestamp('rotated_at', { withTimezone: true, mode: 'date' }),
    revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }),
    createdAt: createdAt(),
  },
  (table) => [
    uniqueIndex('refresh_tokens_token_hash_key').on(table.tokenHash),
    index('refresh_tokens_family_id_idx').on(table.familyId),
  ],
);

export const patients = pgTable(
  'patients',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id),
    givenName: text('given_name').notNull(),
    familyName: text('family_name').notNull(),
    birthDate: date('birth_date', { mode: 'string' }).notNull(),
    sex: text('sex', { enum: sexes }).notNull(),
    phone: text('phone'),
    email: text('email'),
    identifiers: jsonb('identifiers').$type<Static<typeof Identifier>[]>().notNull().default([]),
    createdBy: uuid('created_by'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [index('patients_organization_id_created_at_idx').on(table.organizationId, table.createdAt, table.id)],
);

export const auditEvents = pgTable(
  'audit_events',
  {
    // From a sequence: unique and rising in the order events were written, not committed, with
    // gaps where a change rolled back. Commit order is the log's: leaf indexes (audit_log_leaves).
    id: bigint('id', { mode: 'number' }).primaryKey().generatedByDefaultAsIdentity(),
    occurredAt: timestamp('occurred_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    actorType: text('actor_type', { enum: auditActorTypes }).notNull(),
    actorId: uuid('actor_id'),
    actorOrganizationId: uuid('actor_organization_id'),
    actorRole: text('actor_role'),
    action: text('action').notNull(),
    resourceType: text('resource_type'),
    resourceId: text('resource_id'),
    patientId: uuid('patient_id'),
    outcome: text('outcome', { enum: auditOutcomes }).notNull(),
    httpStatus: integer('http_status'),
    requestId: text('request_id'),
    clientAddress: text('client_address'),
    userAgent: text('user_agent'),
    // How many identical refusals this event stands for (null: one). Repeats of one denial within
    // a window are counted, not written one by one, so a flood of refusals cannot grow the log
    // without bound (modules/audit/denial-aggregator.ts).
    repeatCount: integer('repeat_count'),
  },
  (table) => [
    index('audit_events_patient_id_idx').on(table.patientId, table.id),
    index('audit_events_actor_id_idx').on(table.actorId, table.id),
    index('audit_events_resource_idx').on(table.resourceType, table.resourceId, table.id),
    index('audit_events_occurred_at_idx').on(table.occurredAt),
    index('audit_events_request_id_idx').on(table.requestId),
  ],
);

/**
 * Events written but not yet in the Merkle tree: filled by a trigger on audit_events (migration
 * 0019) in the writing transaction, emptied by the sequencer. No row is shared between writers,
 * so audited changes commit side by side.
 */
export const auditUnsequenced = pgTable('audit_unsequenced', {
  eventId: bigint('event_id', { mode: 'number' }).primaryKey(),
});

/** The log's order: the event at each leaf of the Merkle tree. */
export const auditLogLeaves = pgTable('audit_log_leaves', {
  leafIndex: bigint('leaf_index', { mode: 'number' }).primaryKey(),
  eventId: bigint('event_id', { mode: 'number' }).notNull().unique(),
});

/** The Merkle tree's perfect subtrees: the hash of the 2^level leaves from index × 2^level (level 0: leaf hashes). */
export const auditLogNodes = pgTable(
  'audit_log_nodes',
  {
    level: smallint('level').notNull(),
    index: bigint('index', { mode: 'number' }).notNull(),
    hash: bytea('hash').notNull(),
  },
  (table) => [primaryKey({ columns: [table.level, table.index] })],
);

/** One row: the tree's size and root. Its row lock is the sequencer's: one at a time, any worker. */
export const auditLogState = pgTable('audit_log_state', {
  singleton: boolean('singleton').primaryKey().default(true),
  treeSize: bigint('tree_size', { mode: 'number' }).notNull(),
  rootHash: bytea('root_hash').notNull(),
});

/** Signed checkpoints (C2SP tlog-checkpoint) of the tree, as the sequencer made them. */
export const auditCheckpoints = pgTable('audit_checkpoints', {
  treeSize: bigint('tree_size', { mode: 'number' }).primaryKey(),
  rootHash: bytea('root_hash').notNull(),
  origin: text('origin').notNull(),
  keyId: text('key_id').notNull(),
  signature: bytea('signature').notNull(),
  signedAt: timestamp('signed_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});


type ReferralColumns = Record<'status' | 'targetKind' | 'targetTherapistId' | 'targetPracticeId' | 'acceptedTherapistId' | 'acceptedPracticeId', AnyPgColumn>;

/** A network referral still waiting for one of the therapists it was offered to. */
export const openNetworkOffer = (r: ReferralColumns) => sql`${r.targetKind} = 'network' and ${r.status} = 'sent'`;
/** Accepted by a therapist it was not aimed at, by name or by practice (a network offer, say). */
export const acceptedBeyondTarget = (r: ReferralColumns) =>
  sql`${r.targetTherapistId} is distinct from ${r.acceptedTherapistId} and (${r.targetKind} <> 'practice' or ${r.targetPracticeId} is distinct from ${r.acceptedPracticeId})`;
/** Accepted by a practice it was not aimed at. */
export const acceptedBeyondTargetPractice = (r: ReferralColumns) => sql`${r.targetPracticeId} is distinct from ${r.acceptedPracticeId}`;

export const referrals = pgTable(
  'referrals',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    // The id of the referral's FHIR Task (SPEC §16): the workflow is a resource of its own there,
    // with an id partners keep, distinct from the ServiceRequest's (the referral's id).
    taskId: uuid('task_id').notNull().defaultRandom(),
    // The prescribing physician office: owner of the referral and of its patient.
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id),
    patientId: uuid('patient_id')
      .notNull()
      .references(() => patients.id),
    prescriberId: uuid('prescriber_id')
      .notNull()
      .references(() => users.id),
    createdBy: uuid('created_by').notNull(),
    status: text('status', { enum: referralStatuses }).notNull(),
    version: integer('version').notNull().default(1),
    diagnoses: jsonb('diagnoses').$type<Static<typeof Diagnosis>[]>().notNull(),
    reason: text('reason').notNull(),
    goals: text('goals').array().notNull(),
    precautions: text('precautions').array().notNull(),
    contraindications: text('contraindications').notNull(),
    techniques: text('techniques').array().$type<Technique[]>().notNull(),
    bodyRegions: text('body_regions').array().notNull(),
    frequencyPerWeek: integer('frequency_per_week').notNull(),
    durationWeeks: integer('duration_weeks').notNull(),
    sessionMinutes: integer('session_minutes').notNull(),
    visitsAuthorized: integer('visits_authorized').notNull(),
    startDate: date('start_date', { mode: 'string' }).notNull(),
    expiresOn: date('expires_on', { mode: 'string' }).notNull(),
    priority: text('priority', { enum: referralPriorities }).notNull(),
    insurance: jsonb('insurance').$type<Static<typeof Insurance>>(),
    targetKind: text('target_kind', { enum: referralTargetKinds }).notNull(),
    targetTherapistId: uuid('target_therapist_id').references(() => users.id),
    // For a therapist target, the therapist's practice, so its admin sees the referral too.
    targetPracticeId: uuid('target_practice_id').references(() => organizations.id),
    networkOffer: jsonb('network_offer').$type<Static<typeof NetworkOffer>>(),
    // When it was first sent (stamped by a trigger, migration 0008): until then it is the office's
    // alone, also after a draft is cancelled unsent.
    sentAt: timestamp('sent_at', { withTimezone: true, mode: 'date' }),
    acceptedTherapistId: uuid('accepted_therapist_id').references(() => users.id),
    acceptedPracticeId: uuid('accepted_practice_id').references(() => organizations.id),
    acceptedAt: timestamp('accepted_at', { withTimezone: true, mode: 'date' }),
    // The signed order (SPEC §14.1); null until signed. Referrals sent before signing existed stay null.
    signature: jsonb('signature').$type<Signature>(),
    visitsUsed: integer('visits_used').notNull().default(0),
    firstPain: jsonb('first_pain').$type<Static<typeof PainScores>>(),
    latestPain: jsonb('latest_pain').$type<Static<typeof PainScores>>(),
    latestOutcomes: jsonb('latest_outcomes').$type<Static<typeof OutcomeScore>[]>().notNull().default([]),
    // Report cadence (SPEC §14.3): a report is due every reportEveryVisits visits after the last
    // visit a report covered.
    // A new course of care continuing a completed one (SPEC §14.4), and the course that continued this one.
    continuesReferralId: uuid('continues_referral_id').references((): AnyPgColumn => referrals.id),
    continuedByReferralId: uuid('continued_by_referral_id').references((): AnyPgColumn => referrals.id),
    reportEveryVisits: integer('report_every_visits').notNull().default(10),
    lastReportedVisit: integer('last_reported_visit').notNull().default(0),
    // When something last happened in the referral's thread (message, visit note, addendum, report,
    // document, appointment): stamped by triggers of those tables (migration 0017), which also move
    // updated_at and so the sync position.
    activityAt: timestamp('activity_at', { withTimezone: true, mode: 'date' }),
    // On hold after a severe adverse event with treatment paused (SPEC §14.10): visit notes are
    // refused until the prescriber resumes the referral or cancels it. Null when not on hold.
    holdSince: timestamp('hold_since', { withTimezone: true, mode: 'date' }),
    holdAdverseEventId: uuid('hold_adverse_event_id'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    // The id of the transaction that last wrote the row (stamped by a trigger): the sync feed
    // orders by it and shows a row only once every older transaction has finished.
    syncXid: bigint('sync_xid', { mode: 'bigint' }).notNull().default(sql`0`),
  },
  (table) => [
    index('referrals_organization_sync_idx').on(table.organizationId, table.syncXid, table.id),
    index('referrals_target_therapist_sync_idx').on(table.targetTherapistId, table.syncXid, table.id),
    index('referrals_target_practice_sync_idx').on(table.targetPracticeId, table.syncXid, table.id),
    index('referrals_accepted_therapist_sync_idx').on(table.acceptedTherapistId, table.syncXid, table.id),
    index('referrals_accepted_practice_sync_idx').on(table.acceptedPracticeId, table.syncXid, table.id),
    // The parts of a therapist's or practice's sync feed (referrals/access.ts visibleParts) that are
    // not one plain column: each is read in sync order off its own partial index.
    index('referrals_open_network_sync_idx').on(table.syncXid, table.id).where(openNetworkOffer(table)),
    index('referrals_practice_target_sync_idx').on(table.targetPracticeId, table.syncXid, table.id).where(sql`${table.targetKind} = 'practice'`),
    index('referrals_therapist_beyond_target_sync_idx').on(table.acceptedTherapistId, table.syncXid, table.id).where(acceptedBeyondTarget(table)),
    index('referrals_practice_beyond_target_sync_idx').on(table.acceptedPracticeId, table.syncXid, table.id).where(acceptedBeyondTargetPractice(table)),
    index('referrals_patient_idx').on(table.patientId),
    uniqueIndex('referrals_task_id_idx').on(table.taskId),
    index('referrals_open_expiry_idx').on(table.expiresOn).where(sql`${table.status} in (${sqlValues(expirableStatuses)})`),
    check('referrals_version_check', sql`${table.version} >= 1`),
    check('referrals_visits_check', sql`${table.visitsUsed} between 0 and ${table.visitsAuthorized}`),
    check('referrals_dates_check', sql`${table.expiresOn} > ${table.startDate}`),
  ],
);

/** The therapists an open network offer was made to, matched when it was sent. */
export const referralOffers = pgTable(
  'referral_offers',
  {
    referralId: uuid('referral_id')
      .notNull()
      .references(() => referrals.id, { onDelete: 'cascade' }),
    therapistId: uuid('therapist_id')
      .notNull()
      .references(() => users.id),
    declinedAt: timestamp('declined_at', { withTimezone: true, mode: 'date' }),
  },
  (table) => [
    uniqueIndex('referral_offers_pkey_idx').on(table.referralId, table.therapistId),
    index('referral_offers_therapist_idx').on(table.therapistId, table.referralId),
  ],
);

/** Every transition and amendment of a referral, with who, when and why. Never changes. */
export const referralEvents = pgTable(
  'referral_events',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    referralId: uuid('referral_id')
      .notNull()
      .references(() => referrals.id),
    action: text('action').notNull(),
    fromStatus: text('from_status'),
    toStatus: text('to_status').notNull(),
    version: integer('version').notNull(),
    actorType: text('actor_type', { enum: referralActorTypes }).notNull(),
    actorId: uuid('actor_id'),
    actorOrganizationId: uuid('actor_organization_id'),
    reason: text('reason'),
    changes: jsonb('changes').$type<Record<string, unknown>>(),
    occurredAt: timestamp('occurred_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (table) => [index('referral_events_referral_idx').on(table.referralId, table.id)],
);

export const progressReports = pgTable(
  'progress_reports',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    referralId: uuid('referral_id')
      .notNull()
      .references(() => referrals.id),
    visitNumber: integer('visit_number').notNull(),
    authorId: uuid('author_id')
      .notNull()
      .references(() => users.id),
    visitDate: date('visit_date', { mode: 'string' }).notNull(),
    subjective: text('subjective').notNull(),
    objective: text('objective').notNull(),
    assessment: text('assessment').notNull(),
    plan: text('plan').notNull(),
    painBefore: integer('pain_before').notNull(),
    painAfter: integer('pain_after').notNull(),
    rangeOfMotion: jsonb('range_of_motion').$type<Static<typeof RangeOfMotion>[]>().notNull(),
    outcomeMeasures: jsonb('outcome_measures').$type<Static<typeof OutcomeMeasure>[]>().notNull(),
    techniquesApplied: text('techniques_applied').array().notNull(),
    minutes: integer('minutes').notNull(),
    billing: jsonb('billing').$type<Static<typeof BillingLine>[]>().notNull(),
    final: boolean('final').notNull(),
    // Signed when posted: the note never changes afterwards (a trigger refuses updates).
    signedAt: timestamp('signed_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (table) => [uniqueIndex('progress_reports_visit_key').on(table.referralId, table.visitNumber)],
);

// Reports to the prescriber (SPEC §14.3): written once, never changed (a trigger refuses it);
// corrections are new reports. The server's facts (visits, pain and outcome series) are kept as
// they were when the report was submitted.
export const clinicalReports = pgTable(
  'clinical_reports',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    referralId: uuid('referral_id')
      .notNull()
      .references(() => referrals.id),
    kind: text('kind', { enum: reportKinds }).notNull(),
    authorId: uuid('author_id')
      .notNull()
      .references(() => users.id),
    summary: text('summary').notNull(),
    goals: jsonb('goals').$type<Goal[]>().notNull(),
    recommendation: text('recommendation', { enum: reportRecommendations }).notNull(),
    findings: jsonb('findings').$type<Findings>(),
    baseline: jsonb('baseline').$type<Baseline>(),
    plannedFrequencyPerWeek: integer('planned_frequency_per_week'),
    plannedDurationWeeks: integer('planned_duration_weeks'),
    techniques: text('techniques').array(),
    dischargeReason: text('discharge_reason', { enum: dischargeReasons }),
    facts: jsonb('facts').$type<ReportFacts>().notNull(),
    createdAt: createdAt(),
  },
  (table) => [index('clinical_reports_referral_idx').on(table.referralId, table.createdAt, table.id)],
);

// Renewal requests (SPEC §14.4): a therapist asks for more visits or time; the prescriber approves
// (raising visitsAuthorized and moving expiresOn) or denies. One pending per referral.
export const renewalRequests = pgTable(
  'renewal_requests',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    referralId: uuid('referral_id')
      .notNull()
      .references(() => referrals.id),
    requestedBy: uuid('requested_by')
      .notNull()
      .references(() => users.id),
    additionalVisits: integer('additional_visits').notNull(),
    extendWeeks: integer('extend_weeks').notNull(),
    justification: text('justification').notNull(),
    reportId: uuid('report_id').references(() => clinicalReports.id),
    status: text('status', { enum: renewalStatuses }).notNull().default('pending'),
    decidedBy: uuid('decided_by').references(() => users.id),
    decidedAt: timestamp('decided_at', { withTimezone: true, mode: 'date' }),
    approvedVisits: integer('approved_visits'),
    approvedWeeks: integer('approved_weeks'),
    decisionReason: text('decision_reason'),
    attestation: text('attestation'),
    createdAt: createdAt(),
  },
  (table) => [
    uniqueIndex('renewal_requests_one_pending').on(table.referralId).where(sql`${table.status} = 'pending'`),
    index('renewal_requests_referral_idx').on(table.referralId, table.createdAt, table.id),
  ],
);

// The prescriber's signature of a report: one row per report (its key), never changed.
export const clinicalReportSignatures = pgTable('clinical_report_signatures', {
  reportId: uuid('report_id')
    .primaryKey()
    .references(() => clinicalReports.id),
  signedBy: uuid('signed_by')
    .notNull()
    .references(() => users.id),
  method: text('method', { enum: signatureMethods }).notNull(),
  attestation: text('attestation').notNull(),
  comment: text('comment'),
  signedAt: timestamp('signed_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});

export const progressReportAddenda = pgTable(
  'progress_report_addenda',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    reportId: uuid('report_id')
      .notNull()
      .references(() => progressReports.id),
    authorId: uuid('author_id')
      .notNull()
      .references(() => users.id),
    text: text('text').notNull(),
    createdAt: createdAt(),
  },
  (table) => [index('progress_report_addenda_report_idx').on(table.reportId, table.createdAt)],
);

export const messages = pgTable(
  'messages',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    // Orders the thread; also what read markers point at.
    seq: bigint('seq', { mode: 'number' }).notNull().generatedAlwaysAsIdentity(),
    referralId: uuid('referral_id')
      .notNull()
      .references(() => referrals.id),
    authorType: text('author_type', { enum: principalKinds }).notNull(),
    authorId: uuid('author_id').notNull(),
    authorOrganizationId: uuid('author_organization_id').notNull(),
    body: text('body').notNull(),
    // Urgent messages (SPEC §14.10) stay flagged until someone of the other side acknowledges them;
    // unacknowledged too long, urgent.unacknowledged is sent once (escalated_at).
    priority: text('priority', { enum: messagePriorities }).notNull().default('routine'),
    acknowledgedAt: timestamp('acknowledged_at', { withTimezone: true, mode: 'date' }),
    acknowledgedBy: uuid('acknowledged_by'),
    escalatedAt: timestamp('escalated_at', { withTimezone: true, mode: 'date' }),
    createdAt: createdAt(),
  },
  (table) => [
    uniqueIndex('messages_referral_seq_idx').on(table.referralId, table.seq),
    index('messages_urgent_unacknowledged_idx').on(table.createdAt).where(sql`${table.priority} = 'urgent' and ${table.acknowledgedAt} is null and ${table.escalatedAt} is null`),
  ],
);

/** How far each reader has read a referral's thread. */
export const messageReadMarkers = pgTable(
  'message_read_markers',
  {
    referralId: uuid('referral_id')
      .notNull()
      .references(() => referrals.id),
    readerId: uuid('reader_id').notNull(),
    lastReadSeq: bigint('last_read_seq', { mode: 'number' }).notNull(),
    updatedAt: updatedAt(),
  },
  (table) => [uniqueIndex('message_read_markers_key').on(table.referralId, table.readerId)],
);

/** The first response to a POST with an Idempotency-Key, per caller, replayed on a repeat. */
export const idempotencyRecords = pgTable(
  'idempotency_records',
  {
    callerKey: text('caller_key').notNull(),
    key: text('key').notNull(),
    requestHash: text('request_hash').notNull(),
    // The request that ran: its audit events name what a replay shows again.
    requestId: text('request_id'),
    state: text('state', { enum: ['in_progress', 'completed'] }).notNull(),
    statusCode: integer('status_code'),
    responseHeaders: jsonb('response_headers').$type<Record<string, string>>(),
    responseBody: text('response_body'),
    createdAt: createdAt(),
  },
  (table) => [
    uniqueIndex('idempotency_records_key').on(table.callerKey, table.key),
    index('idempotency_records_created_at_idx').on(table.createdAt),
  ],
);

/** A partner's receiver. The secrets sign deliveries, so they are kept (never shown after creation). */
export const webhookEndpoints = pgTable(
  'webhook_endpoints',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id),
    url: text('url').notNull(),
    description: text('description').notNull().default(''),
    eventTypes: text('event_types').array().notNull(),
    status: text('status', { enum: webhookEndpointStatuses }).notNull().default('active'),
    format: text('format', { enum: webhookFormats }).notNull().default('standard'),
    disabledReason: text('disabled_reason'),
    secret: text('secret').notNull(),
    // During a rotation the old secret signs too, until it expires.
    previousSecret: text('previous_secret'),
    previousSecretExpiresAt: timestamp('previous_secret_expires_at', { withTimezone: true, mode: 'date' }),
    // Since when every attempt has failed (null after any success): drives disabling.
    failingSince: timestamp('failing_since', { withTimezone: true, mode: 'date' }),
    lastSuccessAt: timestamp('last_success_at', { withTimezone: true, mode: 'date' }),
    createdBy: uuid('created_by'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    deletedAt: timestamp('deleted_at', { withTimezone: true, mode: 'date' }),
  },
  (table) => [
    index('webhook_endpoints_organization_idx').on(table.organizationId, table.createdAt, table.id),
    check('webhook_endpoints_format_check', sql`${table.format} in (${sqlValues(webhookFormats)})`),
  ],
);

/** The outbox: one row per event, written in the transaction of the change that caused it. */
export const webhookEvents = pgTable(
  'webhook_events',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    type: text('type', { enum: webhookEventTypes }).notNull(),
    referralId: uuid('referral_id'),
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    // The FHIR Bundle as the exact bytes signed and sent, written only when an endpoint of format
    // fhir was among the targets: text, not jsonb, which would reorder its keys on every read.
    fhirBody: text('fhir_body'),
    occurredAt: timestamp('occurred_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (table) => [index('webhook_events_referral_idx').on(table.referralId, table.occurredAt)],
);

/** One event on its way to one endpoint. */
export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    // Orders deliveries of one referral to one endpoint.
    seq: bigint('seq', { mode: 'number' }).notNull().generatedAlwaysAsIdentity(),
    eventId: uuid('event_id')
      .notNull()
      .references(() => webhookEvents.id),
    endpointId: uuid('endpoint_id')
      .notNull()
      .references(() => webhookEndpoints.id),
    referralId: uuid('referral_id'),
    status: text('status', { enum: deliveryStatuses }).notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    // A worker's claim: past it, another worker may take the delivery (the first one died).
    leaseExpiresAt: timestamp('lease_expires_at', { withTimezone: true, mode: 'date' }),
    lastStatusCode: integer('last_status_code'),
    lastError: text('last_error'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    index('webhook_deliveries_due_idx').on(table.nextAttemptAt, table.seq).where(sql`${table.status} = 'pending'`),
    index('webhook_deliveries_lease_idx').on(table.leaseExpiresAt).where(sql`${table.status} = 'delivering'`),
    index('webhook_deliveries_endpoint_idx').on(table.endpointId, table.createdAt, table.id),
    index('webhook_deliveries_order_idx').on(table.endpointId, table.referralId, table.seq),
  ],
);

/** Every try of a delivery, for partners to see what happened. */
export const webhookAttempts = pgTable(
  'webhook_attempts',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    deliveryId: uuid('delivery_id')
      .notNull()
      .references(() => webhookDeliveries.id),
    attemptedAt: timestamp('attempted_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    statusCode: integer('status_code'),
    latencyMs: integer('latency_ms').notNull(),
    error: text('error'),
    responseExcerpt: text('response_excerpt'),
  },
  (table) => [index('webhook_attempts_delivery_idx').on(table.deliveryId, table.id)],
);

// Files shared on a referral (SPEC §14.6). The row is written once the whole file has been read and
// checked; its bytes are in document_chunks under the same id. Documents never change: a retraction
// only hides one (retracted_at), and a trigger refuses any other update.
export const documents = pgTable(
  'documents',
  {
    id: uuid('id').primaryKey(),
    referralId: uuid('referral_id')
      .notNull()
      .references(() => referrals.id),
    category: text('category', { enum: documentCategories }).notNull(),
    title: text('title').notNull(),
    contentType: text('content_type', { enum: documentContentTypes }).notNull(),
    sizeBytes: integer('size_bytes').notNull(),
    sha256: text('sha256').notNull(),
    uploaderType: text('uploader_type', { enum: principalKinds }).notNull(),
    uploadedBy: uuid('uploaded_by').notNull(),
    uploaderOrganizationId: uuid('uploader_organization_id')
      .notNull()
      .references(() => organizations.id),
    createdAt: createdAt(),
    retractedAt: timestamp('retracted_at', { withTimezone: true, mode: 'date' }),
    retractedBy: uuid('retracted_by'),
    retractionReason: text('retraction_reason'),
  },
  (table) => [
    index('documents_referral_idx').on(table.referralId, table.createdAt, table.id),
    check('documents_size_check', sql`${table.sizeBytes} >= 0`),
  ],
);

// A document's bytes in parts, written while the upload streams in, so that no process ever holds a
// whole file. Parts of an upload that never became a document (interrupted, refused) are deleted by
// the upload, or by the worker's sweep after a crash.
export const documentChunks = pgTable(
  'document_chunks',
  {
    uploadId: uuid('upload_id').notNull(),
    part: integer('part').notNull(),
    bytes: bytea('bytes').notNull(),
    createdAt: createdAt(),
  },
  (table) => [uniqueIndex('document_chunks_key').on(table.uploadId, table.part), index('document_chunks_created_idx').on(table.createdAt)],
);

// Visits booked for a referral (SPEC §14.5) and what became of them.
export const appointments = pgTable(
  'appointments',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    referralId: uuid('referral_id')
      .notNull()
      .references(() => referrals.id),
    startsAt: timestamp('starts_at', { withTimezone: true, mode: 'date' }).notNull(),
    minutes: integer('minutes').notNull(),
    status: text('status', { enum: appointmentStatuses }).notNull().default('scheduled'),
    createdBy: uuid('created_by').notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    index('appointments_referral_idx').on(table.referralId, table.startsAt, table.id),
    check('appointments_minutes_check', sql`${table.minutes} between 5 and 480`),
  ],
);

// referral.not_scheduled was sent for the referral: the key makes it once, with any number of workers.
export const schedulingAlerts = pgTable('scheduling_alerts', {
  referralId: uuid('referral_id')
    .primaryKey()
    .references(() => referrals.id),
  sentAt: timestamp('sent_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});

// The events feed (SPEC §14.7): one row per event and organization taking part, in commit order
// (sync_xid, as the referral sync feed), read per organization off its key.
export const eventFeed = pgTable(
  'event_feed',
  {
    organizationId: uuid('organization_id').notNull(),
    syncXid: writerXid(),
    eventId: uuid('event_id')
      .notNull()
      .references(() => webhookEvents.id),
    referralId: uuid('referral_id'),
    type: text('type', { enum: webhookEventTypes }).notNull(),
    occurredAt: timestamp('occurred_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (table) => [uniqueIndex('event_feed_key').on(table.organizationId, table.syncXid, table.eventId), index('event_feed_occurred_idx').on(table.occurredAt)],
);

// Adverse events a therapist reports (SPEC §14.10): flagged until someone at the office acknowledges
// them, escalated once (escalated_at) when not acknowledged in time. Never deleted.
export const adverseEvents = pgTable(
  'adverse_events',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    referralId: uuid('referral_id')
      .notNull()
      .references(() => referrals.id),
    occurredOn: date('occurred_on', { mode: 'string' }).notNull(),
    description: text('description').notNull(),
    severity: text('severity', { enum: adverseEventSeverities }).notNull(),
    actionTaken: text('action_taken').notNull(),
    treatmentPaused: boolean('treatment_paused').notNull(),
    reporterType: text('reporter_type', { enum: principalKinds }).notNull(),
    reportedBy: uuid('reported_by').notNull(),
    reporterOrganizationId: uuid('reporter_organization_id').notNull(),
    createdAt: createdAt(),
    acknowledgedAt: timestamp('acknowledged_at', { withTimezone: true, mode: 'date' }),
    acknowledgedBy: uuid('acknowledged_by'),
    escalatedAt: timestamp('escalated_at', { withTimezone: true, mode: 'date' }),
  },
  (table) => [
    index('adverse_events_referral_idx').on(table.referralId, table.createdAt, table.id),
    index('adverse_events_unacknowledged_idx').on(table.createdAt).where(sql`${table.acknowledgedAt} is null and ${table.escalatedAt} is null`),
  ],
);
