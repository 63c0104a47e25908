// FHIR references to the records a resource points at: a resource's FHIR id is its /v1 id (SPEC §16).
export interface Reference {
  reference: string;
  display?: string;
}

export const practitioner = (userId: string): Reference => ({ reference: `Practitioner/${userId}` });
export const organization = (organizationId: string): Reference => ({ reference: `Organization/${organizationId}` });
export const patient = (patientId: string): Reference => ({ reference: `Patient/${patientId}` });
export const serviceRequest = (referralId: string): Reference => ({ reference: `ServiceRequest/${referralId}` });
export const task = (taskId: string): Reference => ({ reference: `Task/${taskId}` });

export type ResourceMeta = { versionId?: string; lastUpdated: string };

export function metaOf(record: { version?: number; updatedAt: string }): ResourceMeta {
  return record.version === undefined ? { lastUpdated: record.updatedAt } : { versionId: String(record.version), lastUpdated: record.updatedAt };
}
