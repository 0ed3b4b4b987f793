/**
 * POST /api/v1/repository/files over real HTTP on a real database: a file streamed as the raw body is stored under
 * its sha256 and listed by a new signed manifest; a wrong sha256 (400), a file past the limit (413) and a token
 * without the admin role (403) keep nothing and publish nothing.
 */
import { createHash, verify } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenOnLoopback } from '../../test/helpers/listen';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { createApiToken } from '../db/api-tokens';
import { grantRole } from '../db/identities';
import { activeSigningKey, latestManifest } from '../db/repository';
import { auditLog } from '../db/schema/index';
import { SecretBox } from '../db/secret-box';
import { createLogger } from '../logging';
import { buildServer } from '../server/app';
import type { CycleService } from '../services/cycle-service';
import type { ManifestBody } from '../shared/agent-protocol';
import { apiRoutes } from './index';

const MAX_BYTES = 1024 * 1024;

let db: TestDatabase;
let app: FastifyInstance;
let base: string;
let dir: string;
let box: SecretBox;
let admin: string;
let approveScope: string;
let readScope: string;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-upload-'));
  box = SecretBox.ephemeral();
  await grantRole(db.db, { identity: 'web:ada', role: 'admin', by: 'test' });
  admin = (await createApiToken(db.db, { owner: 'web:ada', name: 'admin', scope: 'admin' })).token;
  // The same admin, with tokens lowered to the approve and read scopes.
  approveScope = (await createApiToken(db.db, { owner: 'web:ada', name: 'approve', scope: 'approve' })).token;
  readScope = (await createApiToken(db.db, { owner: 'web:ada', name: 'read', scope: 'read' })).token;
  const logger = createLogger('silent');
  app = await buildServer({
    logger,
    health: [],
    routes: [
      apiRoutes({
        db: db.db,
        service: {} as CycleService,
        logger,
        repository: { box, dir, maxUploadBytes: MAX_BYTES },
      }),
    ],
  });
  base = await listenOnLoopback(app);
});
afterAll(async () => {
  await app?.close();
  await db?.close();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

/** Uploads `bytes` as a stream (chunked: no Content-Length), as the CLI does. */
function upload(token: string, bytes: Buffer, query: Record<string, string>): Promise<Response> {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += 64 * 1024) chunks.push(bytes.subarray(at, at + 64 * 1024));
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = chunks.shift();
      if (next) controller.enqueue(next);
      else controller.close();
    },
  });
  return fetch(`${base}/api/v1/repository/files?${new URLSearchParams(query)}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
    body,
    duplex: 'half',
  } as RequestInit);
}

async function manifestFiles(): Promise<ManifestBody['files']> {
  const m = await latestManifest(db.db);
  return m ? (JSON.parse(m.body) as ManifestBody).files : [];
}

/** Every file in the repository folder, temporary ones included. */
const folder = () => fs.readdir(dir);

describe('POST /api/v1/repository/files', () => {
  it("stores a streamed binary file under its sha256 and publishes a signed manifest listing it, audited as the token's person", async () => {
    const bytes = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0, 0]), Buffer.alloc(300_000, 7)]); // NUL bytes: a binary
    const res = await upload(admin, bytes, { name: 'tool_1.0_amd64.deb', sha256: sha256(bytes).toUpperCase() });
    expect(res.status, await res.clone().text()).toBe(200);
    const reply = (await res.json()) as {
      file: unknown;
      version: number;
      previousVersion: number | null;
      files: unknown[];
    };
    const entry = { name: 'tool_1.0_amd64.deb', sha256: sha256(bytes), size: bytes.length };
    expect(reply).toEqual({ file: entry, version: 1, previousVersion: null, files: [entry] });
    expect(await fs.readFile(path.join(dir, sha256(bytes)))).toEqual(bytes);
    expect(await folder()).toEqual([sha256(bytes)]);

    const signed = (await latestManifest(db.db))!;
    const key = await activeSigningKey(db.db, box);
    expect(signed.keyId).toBe(key.id);
    expect(verify(null, Buffer.from(signed.body), key.publicKey, Buffer.from(signed.signature, 'base64'))).toBe(true);
    expect(await manifestFiles()).toEqual([entry]);
    const [audited] = await db.db.select().from(auditLog).where(eq(auditLog.action, 'repository.files_added'));
    expect(audited).toMatchObject({ actor: 'web:ada', subjectId: '1', details: { previous: null, added: [entry] } });

    // A second file is added to the list; the same bytes under a new name replace their entry.
    const other = Buffer.from('second file');
    const second = (await (
      await upload(admin, other, { name: 'Tool-1.0.msi', sha256: sha256(other), ttlHours: '2' })
    ).json()) as { version: number; previousVersion: number };
    expect(second).toMatchObject({ version: 2, previousVersion: 1 });
    const expiresAt = (JSON.parse((await latestManifest(db.db))!.body) as ManifestBody).expiresAt;
    expect(Math.abs(new Date(expiresAt).getTime() - Date.now() - 2 * 3600_000)).toBeLessThan(60_000);
    const renamed = await upload(admin, other, { name: 'Tool-1.0-renamed.msi', sha256: sha256(other) });
    expect(renamed.status).toBe(200);
    expect(await manifestFiles()).toEqual([
      entry,
      { name: 'Tool-1.0-renamed.msi', sha256: sha256(other), size: other.length },
    ]);
  });

  it('refuses bytes that do not match the sha256 given with 400: nothing on disk, nothing in the manifest', async () => {
    const before = await latestManifest(db.db);
    const onDisk = await folder();
    const bytes = Buffer.from('the real bytes');
    const res = await upload(admin, bytes, { name: 'tampered.deb', sha256: sha256(Buffer.from('other bytes')) });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      error: 'INVALID_INPUT',
      message: expect.stringContaining(`hash to sha256 ${sha256(bytes)}`),
    });
    expect(await folder()).toEqual(onDisk);
    expect(await latestManifest(db.db)).toEqual(before);
    expect((await manifestFiles()).map((f) => f.name)).not.toContain('tampered.deb');
  });

  it('refuses a file past PATCHOPS_REPO_MAX_UPLOAD_MB with 413, streamed or declared: nothing kept', async () => {
    const before = await latestManifest(db.db);
    const onDisk = await folder();
    const big = Buffer.alloc(MAX_BYTES + 1, 1);
    const streamed = await upload(admin, big, { name: 'big.iso', sha256: sha256(big) });
    expect(streamed.status).toBe(413);
    expect(await streamed.json()).toMatchObject({
      error: 'PAYLOAD_TOO_LARGE',
      message: expect.stringContaining('PATCHOPS_REPO_MAX_UPLOAD_MB'),
    });
    // With a Content-Length (a Buffer body): refused before the body is read.
    const declared = await fetch(
      `${base}/api/v1/repository/files?${new URLSearchParams({ name: 'big.iso', sha256: sha256(big) })}`,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/octet-stream' },
        body: big,
      },
    );
    expect(declared.status).toBe(413);
    expect(await folder()).toEqual(onDisk);
    expect(await latestManifest(db.db)).toEqual(before);
    // Exactly at the limit is accepted.
    const fits = Buffer.alloc(MAX_BYTES, 2);
    expect((await upload(admin, fits, { name: 'fits.iso', sha256: sha256(fits) })).status).toBe(200);
  });

  it.each([
    ['an approve-scope token', () => approveScope],
    ['a read-scope token', () => readScope],
  ])('refuses %s with 403: nothing on disk, nothing published', async (_what, token) => {
    const before = await latestManifest(db.db);
    const onDisk = await folder();
    const bytes = Buffer.from(`not from an admin token ${_what}`);
    const res = await upload(token(), bytes, { name: 'sneaky.deb', sha256: sha256(bytes) });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: 'FORBIDDEN' });
    expect(await folder()).toEqual(onDisk);
    expect(await latestManifest(db.db)).toEqual(before);
  });

  it('is in the OpenAPI document with its query, its octet-stream body and its replies', async () => {
    const doc = (await (await fetch(`${base}/api/v1/openapi.json`)).json()) as {
      paths: Record<
        string,
        Record<
          string,
          {
            parameters: Array<{ name: string; in: string; required?: boolean }>;
            requestBody: { content: Record<string, { schema: unknown }> };
            responses: Record<string, unknown>;
          }
        >
      >;
    };
    const op = doc.paths['/api/v1/repository/files']!.post!;
    expect(op.parameters.map((p) => [p.name, p.in, p.required ?? false])).toEqual([
      ['name', 'query', true],
      ['sha256', 'query', true],
      ['ttlHours', 'query', false],
    ]);
    expect(op.requestBody.content['application/octet-stream']!.schema).toMatchObject({
      type: 'string',
      format: 'binary',
    });
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '403', '413']));
  });

  it('refuses a bad name, a bad sha256 and no token before storing anything', async () => {
    const onDisk = await folder();
    const bytes = Buffer.from('x');
    expect((await upload(admin, bytes, { name: '../etc/passwd', sha256: sha256(bytes) })).status).toBe(400);
    expect((await upload(admin, bytes, { name: 'x.deb', sha256: 'abc' })).status).toBe(400);
    expect((await upload(admin, bytes, { name: 'x.deb' })).status).toBe(400);
    expect((await upload('pat_nope_nope', bytes, { name: 'x.deb', sha256: sha256(bytes) })).status).toBe(401);
    expect(await folder()).toEqual(onDisk);
  });
});
