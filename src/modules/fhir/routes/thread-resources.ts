// A referral's thread in FHIR: its messages (Communication), visits (Encounter, Observation), and
// reports and documents (DocumentReference, Binary), each read through the module that owns it.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import communicationRoutes from './communications.js';
import documentRoutes from './document-references.js';
import visitRoutes from './visits.js';

const threadRoutes: FastifyPluginAsyncTypebox<{ base: string }> = async (app, options) => {
  await app.register(communicationRoutes, options);
  await app.register(visitRoutes, options);
  await app.register(documentRoutes, options);
};

export default threadRoutes;
