// The relational model, shared by the embedded (PGlite) and server (PostgreSQL) databases.
import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  date,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

const createdAt = () => timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();
const updatedAt = () => timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow();

export interface PostalAddress {
  line1: string;
  line2?: string;
  city: string;
  state: string;
  postalCode: string;
  country?: string;
}

export interface ExternalIdentifier {
  system: string;
  value: string;
}

export const organizations = pgTable(
  'organizations',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    kind: text('kind', { enum: ['physician_office', 'therapy_practice'] }).notNull(),
    name: text('name').notNull(),
    npi: text('npi'),
    address: jsonb('address').$type<PostalAddress>().notNull(),
    latitude: doublePrecision('latitude').notNull(),
    longitude: doublePrecision('longitude').notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [
    uniqueIndex('organizations_npi_key').on(table.npi),
    index('organizations_created_at_id_idx').on(table.createdAt, table.id),
    check('organizations_kind_check', sql`${table.kind} in ('physician_office', 'therapy_practice')`),
    check('organizations_npi_office_check', sql`${table.kind} = 'physician_office' or ${table.npi} is null`),
  ],
);

export const userRoles = [
  'physician',
  'office_staff',
  'office_admin',
  'therapist',
  'practice_admin',
  'network_admin',
] as const;
export type UserRole = (typeof userRoles)[number];

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
    failedLoginCount: integer('failed_login_count').notNull().default(0),
    lockedUntil: timestamp('locked_until', { withTimezone: true, mode: 'date' }),
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
    secretHash: text('secret_hash').notNull(),
    scopes: text('scopes').array().notNull(),
    active: boolean('active').notNull().default(true),
    createdBy: uuid('created_by'),
    createdAt: createdAt(),
    revokedAt: timestamp('revoked_at', { withTimezone: true, mode: 'date' }),
  },
  (table) => [
    uniqueIndex('api_clients_client_id_key').on(table.clientId),
    index('api_clients_organization_id_created_at_idx').on(table.organizationId, table.createdAt, table.id),
  ],
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
    sex: text('sex', { enum: ['female', 'male', 'other', 'unknown'] }).notNull(),
    phone: text('phone'),
    email: text('email'),
    identifiers: jsonb('identifiers').$type<ExternalIdentifier[]>().notNull().default([]),
    createdBy: uuid('created_by'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (table) => [index('patients_organization_id_created_at_idx').on(table.organizationId, table.createdAt, table.id)],
);

export const auditEvents = pgTable(
  'audit_events',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    occurredAt: timestamp('occurred_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    actorType: text('actor_type', { enum: ['user', 'api_client', 'anonymous', 'system'] }).notNull(),
    actorId: uuid('actor_id'),
    actorOrganizationId: uuid('actor_organization_id'),
    actorRole: text('actor_role'),
    action: text('action').notNull(),
    resourceType: text('resource_type'),
    resourceId: text('resource_id'),
    patientId: uuid('patient_id'),
    outcome: text('outcome', { enum: ['success', 'denied', 'error'] }).notNull(),
    httpStatus: integer('http_status'),
    requestId: text('request_id'),
    clientAddress: text('client_address'),
    userAgent: text('user_agent'),
  },
  (table) => [
    index('audit_events_patient_id_idx').on(table.patientId, table.id),
    index('audit_events_actor_id_idx').on(table.actorId, table.id),
    index('audit_events_resource_idx').on(table.resourceType, table.resourceId, table.id),
  ],
);
