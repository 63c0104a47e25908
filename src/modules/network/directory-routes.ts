// GET /v1/therapists: the directory physicians search to find a therapist near a patient.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Technique } from '../../lib/catalog.js';
import { validationFailed } from '../../lib/errors.js';
import { decodeCursor, toPage } from '../../lib/pagination.js';
import { Page } from '../../lib/schemas.js';
import { everyone } from '../auth/policy.js';
import { DirectoryRepository } from './directory-repository.js';
import { DirectoryTherapist, TherapistSearchQuery } from './schemas.js';

const directoryRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const directory = new DirectoryRepository(app.db);

  app.get('/therapists', {
    config: { policy: { roles: everyone, clientScope: 'directory:read' }, auditAction: 'directory.search' },
    schema: {
      tags: ['network'],
      operationId: 'searchTherapists',
      summary: 'Search the therapist directory by technique, acceptance and distance',
      description:
        'Only active therapists whose license is verified by the network and not expired are listed. ' +
        'With near, results are ordered by distance (nearest first) and carry distanceKm; otherwise by name.',
      querystring: TherapistSearchQuery,
      response: { 200: Page(DirectoryTherapist) },
    },
  }, async (request) => {
    const { technique, near, radiusKm, accepting, limit, cursor } = request.query;
    if (radiusKm !== undefined && near === undefined) {
      throw validationFailed([{ field: 'query.radiusKm', message: 'needs near=lat,lng' }]);
    }
    const point = near ? parsePoint(near) : undefined;
    const rows = await directory.search({
      technique,
      accepting,
      near: point,
      radiusKm,
      after: decodeCursor(cursor, [point ? 'number' : 'string', 'uuid']),
      limit,
    });
    return toPage(
      rows,
      limit,
      (row) => [point ? row.distanceKm! : row.user.name, row.user.id],
      (row) => ({
        id: row.user.id,
        name: row.user.name,
        practice: {
          id: row.practice.id,
          name: row.practice.name,
          address: row.practice.address,
          location: { lat: row.practice.latitude, lng: row.practice.longitude },
        },
        techniques: row.profile.techniques as Technique[],
        certifications: row.profile.certifications,
        acceptingReferrals: row.profile.acceptingReferrals,
        serviceRadiusKm: row.profile.serviceRadiusKm,
        license: {
          state: row.profile.licenseState,
          expiresOn: row.profile.licenseExpiresOn,
          verified: row.profile.licenseVerifiedAt !== null,
        },
        distanceKm: row.distanceKm === null ? null : Math.round(row.distanceKm * 100) / 100,
      }),
    );
  });
};

function parsePoint(near: string) {
  const [lat, lng] = near.split(',').map(Number) as [number, number];
  const problems = [
    ...(Math.abs(lat) > 90 ? [{ field: 'query.near', message: 'latitude must be between -90 and 90' }] : []),
    ...(Math.abs(lng) > 180 ? [{ field: 'query.near', message: 'longitude must be between -180 and 180' }] : []),
  ];
  if (problems.length > 0) throw validationFailed(problems);
  return { lat, lng };
}

export default directoryRoutes;
