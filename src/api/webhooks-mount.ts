/**
 * The outbound webhooks' routes (src/webhooks/routes.ts) mounted at /api/v1/webhooks inside the API's scope: the
 * API's Bearer tokens authorize them (reading needs the viewer role, changing needs admin, each capped by the token's
 * scope), and they are in the OpenAPI document and the API's audit of calls.
 */
import type { Db } from '../db/client';
import type { SecretBox } from '../db/secret-box';
import { webhookRoutes } from '../webhooks/routes';
import { authorizeRequest } from './auth';
import type { ApiMount } from './index';

export function webhooksMount(o: { db: Db; box: SecretBox; allowPrivate?: boolean }): ApiMount {
  return {
    prefix: '/webhooks',
    routes: webhookRoutes({
      db: o.db,
      box: o.box,
      allowPrivate: o.allowPrivate,
      base: '',
      authorize: async (req, scope) =>
        (await authorizeRequest(o.db, req, scope === 'admin' ? 'admin' : 'viewer')).identity,
    }),
  };
}
