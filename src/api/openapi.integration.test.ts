/**
 * The OpenAPI document of /api/v1, fetched over real HTTP: it validates with @readme/openapi-parser (OpenAPI 3.1),
 * and every route the server registers under /api/v1 (collected with the server's onRoute hook) is in it. The
 * reference page's own routes (/api/v1/docs…) serve the page, not the API, and are left out on purpose.
 */
import { validate } from '@readme/openapi-parser';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { createLogger } from '../logging';
import { buildServer } from '../server/app';
import type { CycleService } from '../services/cycle-service';
import { SecretBox } from '../db/secret-box';
import { apiRoutes } from './index';
import { webhooksMount } from './webhooks-mount';

let db: TestDatabase;
let app: FastifyInstance;
let base: string;
const registered: Array<{ method: string; url: string }> = [];

beforeAll(async () => {
  db = await createTestDatabase();
  // No route is called here: the cycle service is never reached.
  const service = {} as CycleService;
  app = await buildServer({
    logger: createLogger('silent'),
    health: [],
    routes: [
      apiRoutes({ db: db.db, service, logger: createLogger('silent') }, [
        // Other parts' modules mounted under /api/v1 (the webhooks, as patchops up mounts them): in the document too.
        webhooksMount({ db: db.db, box: SecretBox.ephemeral() }),
        {
          prefix: '/mounted',
          routes: (a) =>
            void a
              .withTypeProvider<ZodTypeProvider>()
              .get('/things/:id', { schema: { params: z.object({ id: z.string() }) } }, async () => ({})),
        },
      ]),
    ],
    onRoute: (r) => {
      for (const method of [r.method].flat()) registered.push({ method, url: r.url });
    },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});
afterAll(async () => {
  await app?.close();
  await db?.close();
});

/** `/api/v1/cycles/:id/approve` → `/api/v1/cycles/{id}/approve`, as the document writes paths. */
const toOpenApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

describe('/api/v1/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const res = await fetch(`${base}/api/v1/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string };
    expect(doc.openapi).toBe('3.1.0');
    const result = await validate(structuredClone(doc) as never);
    expect(result.valid ? [] : result.errors).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('lists every route registered under /api/v1', async () => {
    const doc = (await (await fetch(`${base}/api/v1/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const api = registered.filter(
      (r) => r.url.startsWith('/api/v1/') && !r.url.startsWith('/api/v1/docs') && r.method !== 'HEAD',
    );
    expect(api.length).toBeGreaterThan(20);
    expect(api).toContainEqual({ method: 'GET', url: '/api/v1/mounted/things/:id' });
    expect(api).toContainEqual({ method: 'POST', url: '/api/v1/webhooks/deliveries/:id/replay' });
    const missing = api
      .filter((r) => !doc.paths[toOpenApiPath(r.url)]?.[r.method.toLowerCase()])
      .map((r) => `${r.method} ${r.url}`);
    expect(missing).toEqual([]);
  });

  it('the mounted webhooks answer only to an API token (401 without one)', async () => {
    const res = await fetch(`${base}/api/v1/webhooks`);
    expect(res.status).toBe(401);
    const post = await fetch(`${base}/api/v1/webhooks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer pat_0000000000000000_nope' },
      body: JSON.stringify({ url: 'https://x.example/' }),
    });
    expect(post.status).toBe(401);
  });

  it('serves the reference page at /api/v1/docs', async () => {
    const res = await fetch(`${base}/api/v1/docs`, { redirect: 'follow' });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('swagger');
  });
});
