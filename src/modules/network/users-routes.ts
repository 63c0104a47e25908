// /v1/organizations/{id}/users: organization admins manage their own users; network admins manage all.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ConflictError, notFound, validationFailed, type FieldProblem } from '../../lib/errors.js';
import { decodeTimeCursor, toPage } from '../../lib/pagination.js';
import { IdParams, Page } from '../../lib/schemas.js';
import { auditContextOf } from '../audit/audit-log.js';
import { everyone, organizationAdmins, type Principal } from '../auth/policy.js';
import { managedOrganization, visibleOrganization } from './organization-access.js';
import { OrganizationsRepository } from './organizations-repository.js';
import { CreateUser, npiRuleOfRole, npiRuleProblem, UpdateUser, User, UserListQuery, UserParams, type Organization } from './schemas.js';
import { UsersRepository, type UserChanges } from './users-repository.js';
import { apiPrefix } from '../../lib/api-prefix.js';
import { staffRolesOf } from '../../lib/vocabulary.js';

/** Checks the rules that depend on the role and organization, naming each offending field. */
function creationProblems(input: CreateUser, organization: Organization, principal: Principal): FieldProblem[] {
  const problems: FieldProblem[] = [];
  if (!staffRolesOf[organization.kind].includes(input.role)) {
    problems.push({ field: 'role', message: `must be one of ${staffRolesOf[organization.kind].join(', ')} in a ${organization.kind}` });
  }
  const npi = npiRuleProblem(input.npi, npiRuleOfRole[input.role], `a ${input.role}`);
  if (npi) problems.push(npi);
  const therapistFields = ['license', 'techniques', 'certifications', 'acceptingReferrals', 'serviceRadiusKm', 'licenseVerified'] as const;
  if (input.role === 'therapist') {
    for (const field of ['license', 'techniques', 'serviceRadiusKm'] as const) {
      if (input[field] === undefined) problems.push({ field, message: 'is required for a therapist' });
    }
  } else {
    for (const field of therapistFields) {
      if (input[field] !== undefined) problems.push({ field, message: 'is only taken for a therapist' });
    }
  }
  if (input.licenseVerified !== undefined && principal.role !== 'network_admin') {
    problems.push({ field: 'licenseVerified', message: 'is set by network admins only' });
  }
  return problems;
}

const userRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const organizationsRepository = new OrganizationsRepository(app.db);
  const usersRepository = new UsersRepository(app.db);


  app.post('/organizations/:id/users', {
    config: { policy: { roles: organizationAdmins }, auditAction: 'user.create', auditResource: { type: 'organization', param: 'id' } },
    schema: {
      tags: ['network'],
      operationId: 'createUser',
      summary: 'Add a user to an organization',
      params: IdParams,
      body: CreateUser,
      response: { 201: User },
    },
  }, async (request, reply) => {
    const input = request.body;
    const organization = await managedOrganization(organizationsRepository, request.principal!, request.params.id);
    const problems = creationProblems(input, organization, request.principal!);
    if (problems.length > 0) throw validationFailed(problems);
    const passwordHash = await app.passwords.hash(input.password);

    const user = await app.unitOfWork.change(
      auditContextOf(request),
      async (tx) => {
        if (await usersRepository.emailTaken({ email: input.email }, tx)) {
          throw new ConflictError('A user with this email already exists');
        }
        return usersRepository.create(
          {
            organizationId: organization.id,
            role: input.role,
            email: input.email,
            name: input.name,
            passwordHash,
            npi: input.npi,
            therapist:
              input.role === 'therapist'
                ? {
                    licenseNumber: input.license!.number,
                    licenseState: input.license!.state,
                    licenseExpiresOn: input.license!.expiresOn,
                    techniques: input.techniques!,
                    certifications: input.certifications ?? [],
                    acceptingReferrals: input.acceptingReferrals ?? true,
                    serviceRadiusKm: input.serviceRadiusKm!,
                    licenseVerifiedAt: input.licenseVerified ? new Date() : null,
                  }
                : undefined,
          },
          tx,
        );
      },
      (created) => ({ action: 'user.create', httpStatus: 201, resourceType: 'user', resourceId: created.id }),
    );
    return reply.code(201).header('location', `${apiPrefix}/organizations/${organization.id}/users/${user.id}`).send(user);
  });

  app.get('/organizations/:id/users', {
    config: { policy: { roles: everyone }, auditAction: 'user.list', auditResource: { type: 'organization', param: 'id' } },
    schema: {
      tags: ['network'],
      operationId: 'listUsers',
      summary: "List an organization's users (its members and network admins)",
      params: IdParams,
      querystring: UserListQuery,
      response: { 200: Page(User) },
    },
  }, async (request) => {
    const organization = await visibleOrganization(organizationsRepository, request.principal!, request.params.id);
    const { role, limit, cursor } = request.query;
    const rows = await usersRepository.list({
      organizationId: organization.id,
      role,
      after: decodeTimeCursor(cursor),
      limit,
    });
    return toPage(rows, limit, (row) => [row.cursorTime, row.user.id], (row) => row.user);
  });

  app.get('/organizations/:id/users/:userId', {
    config: { policy: { roles: everyone }, auditAction: 'user.read', auditResource: { type: 'organization', param: 'id' } },
    schema: {
      tags: ['network'],
      operationId: 'getUser',
      summary: 'Read a user of an organization',
      params: UserParams,
      response: { 200: User },
    },
  }, async (request) => {
    const { id, userId } = request.params;
    await visibleOrganization(organizationsRepository, request.principal!, id);
    const user = await usersRepository.findInOrganization({ organizationId: id, userId });
    if (!user) throw notFound('user', userId, 'User');
    return user;
  });

  app.patch('/organizations/:id/users/:userId', {
    config: { policy: { roles: organizationAdmins }, auditAction: 'user.update', auditResource: { type: 'organization', param: 'id' } },
    schema: {
      tags: ['network'],
      operationId: 'updateUser',
      summary: "Change a user: deactivate, rename, set a physician's or therapist's NPI, or update a therapist profile; network admins verify licenses",
      params: UserParams,
      body: UpdateUser,
      response: { 200: User },
    },
  }, async (request) => {
    const principal = request.principal!;
    const { id, userId } = request.params;
    const input = request.body;
    await managedOrganization(organizationsRepository, principal, id);
    const existing = await usersRepository.findInOrganization({ organizationId: id, userId });
    if (!existing) throw notFound('user', userId, 'User');

    const problems: FieldProblem[] = [];
    const profileFields = ['techniques', 'certifications', 'acceptingReferrals', 'serviceRadiusKm', 'license', 'licenseVerified'] as const;
    if (!existing.therapist) {
      for (const field of profileFields) {
        if (input[field] !== undefined) problems.push({ field, message: 'is only taken for a therapist' });
      }
    }
    if (input.licenseVerified !== undefined && principal.role !== 'network_admin') {
      problems.push({ field: 'licenseVerified', message: 'is set by network admins only' });
    }
    if (input.npi !== undefined) {
      const npi = npiRuleProblem(input.npi, npiRuleOfRole[existing.role], `a ${existing.role}`);
      if (npi) problems.push(npi);
    }
    if (input.active === false && userId === principal.id) {
      problems.push({ field: 'active', message: 'you cannot deactivate yourself' });
    }
    if (problems.length > 0) throw validationFailed(problems);

    const therapist: UserChanges['therapist'] = {
      ...(input.techniques && { techniques: input.techniques }),
      ...(input.certifications && { certifications: input.certifications }),
      ...(input.acceptingReferrals !== undefined && { acceptingReferrals: input.acceptingReferrals }),
      ...(input.serviceRadiusKm !== undefined && { serviceRadiusKm: input.serviceRadiusKm }),
      // A changed license needs verifying again.
      ...(input.license && {
        licenseNumber: input.license.number,
        licenseState: input.license.state,
        licenseExpiresOn: input.license.expiresOn,
        licenseVerifiedAt: null,
      }),
      ...(input.licenseVerified !== undefined && { licenseVerifiedAt: input.licenseVerified ? new Date() : null }),
    };
    return app.unitOfWork.change(
      auditContextOf(request),
      async (tx) => {
        await usersRepository.update({ userId, changes: { name: input.name, npi: input.npi, active: input.active, therapist } }, tx);
        return (await usersRepository.findInOrganization({ organizationId: id, userId }, tx))!;
      },
      () => ({ action: 'user.update', httpStatus: 200, resourceType: 'user', resourceId: userId }),
    );
  });
};

export default userRoutes;
