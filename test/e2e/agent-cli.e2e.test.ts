/**
 * The agent-area verbs of the real `patchops` CLI process — `enroll-secret add|list|revoke`, `agents list|revoke`,
 * `repo-add`, `agent --defer-reboot` — checked through their own output, the database, and an agent gateway
 * (the real routes, in process) that the enrolments, polls, manifest and file downloads go through.
 */
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StateStore } from '../../src/agent/state';
import { verifyManifest } from '../../src/agent/verify';
import { addEnrollSecret, endpointForKey, latestManifest } from '../../src/db/agents';
import { agentEnrollSecrets } from '../../src/db/schema/index';
import { createLogger } from '../../src/logging';
import { createAgentGateway, type AgentGateway } from '../../src/server/agent-gateway';
import { buildServer } from '../../src/server/app';
import type { EnrollResponse, ManifestBody, SignedManifest } from '../../src/shared/agent-protocol';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { secretBoxFor } from '../../src/db/secret-box';

const root = path.resolve(import.meta.dirname, '..', '..');
/** A stack frame of ours in the output: a user's mistake must not print one. */
const STACK = /\bat .*\.(ts|mjs):\d+/;

let db: TestDatabase;
let dataDir: string;
let env: NodeJS.ProcessEnv;
let gateway: AgentGateway;
let app: FastifyInstance;

function cli(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'bin', 'patchops.mjs'), ...args], { cwd: root, env: { ...env, ...extraEnv }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Runs a verb that must succeed; its stderr is in the failure message. */
async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  expect(r.code, `patchops ${args.join(' ')}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

function enroll(secret: string, host = { hostname: `cli-host-${randomUUID().slice(0, 8)}`, osVersion: '12' }) {
  return app.inject({
    method: 'POST',
    url: '/agent/v1/enroll',
    payload: { enrollSecret: secret, machineId: `cli-machine-${randomUUID()}`, osFamily: 'linux', osName: 'Debian GNU/Linux', arch: 'x64', ...host },
  });
}

async function enrolled(secret: string, host?: { hostname: string; osVersion: string }): Promise<EnrollResponse> {
  const res = await enroll(secret, host);
  expect(res.statusCode, res.body).toBe(200);
  return res.json<EnrollResponse>();
}

const pollStatus = async (nodeKey: string) => (await app.inject({ method: 'GET', url: '/agent/v1/jobs?wait=0', headers: { authorization: `Bearer ${nodeKey}` } })).statusCode;

beforeAll(async () => {
  db = await createTestDatabase();
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-agent-cli-'));
  env = { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: db.url, PATCHOPS_DATA_DIR: dataDir, LOG_LEVEL: 'silent' };
  const logger = createLogger(process.env.TEST_LOG ?? 'silent');
  gateway = createAgentGateway({ database: db, secretBox: await secretBoxFor({ dataDir }), logger, refreshMs: 100, repositoryDir: path.join(dataDir, 'repository') });
  app = await buildServer({ logger, health: [], routes: [gateway.routes] });
});
afterAll(async () => {
  await app?.close();
  await db?.close();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

describe('patchops enroll-secret', () => {
  it('add shows the secret once, list shows it active, revoke refuses it for new enrolments while a second one keeps working', async () => {
    const added = await ok(['enroll-secret', 'add', '--name', 'a']);
    const secretA = /It is shown only now:\n\n {2}(\S+)\n/.exec(added)?.[1];
    expect(secretA, added).toMatch(/^[\w-]{40,}$/);
    expect(added).toContain(`--enroll-secret ${secretA}`);
    const [stored] = await db.db.select().from(agentEnrollSecrets).where(eq(agentEnrollSecrets.name, 'a'));
    expect(stored!.secretHash).toBe(sha256(secretA!)); // only the hash is kept
    const early = await enrolled(secretA!);

    // Rotation: a second secret is added before the first is revoked.
    const secretB = /It is shown only now:\n\n {2}(\S+)\n/.exec(await ok(['enroll-secret', 'add', '--name', 'b']))?.[1];
    expect(secretB).toBeTruthy();
    expect(secretB).not.toBe(secretA);
    const listed = await ok(['enroll-secret', 'list']);
    expect(listed).toMatch(/^a\s+active\s+\(added \d{4}-/m);
    expect(listed).toMatch(/^b\s+active\s+\(added \d{4}-/m);
    expect(listed).not.toContain(secretA);
    expect(listed).not.toContain(secretB);

    expect(await ok(['enroll-secret', 'revoke', 'a'])).toBe('enrol secret "a" revoked; enrolled agents keep working\n');
    const after = await ok(['enroll-secret', 'list']);
    expect(after).toMatch(/^a\s+revoked \d{4}-\d\d-\d\dT/m);
    expect(after).toMatch(/^b\s+active/m);

    const refused = await enroll(secretA!);
    expect(refused.statusCode, refused.body).toBe(401);
    expect(refused.body).toContain('unknown or revoked');
    await enrolled(secretB!);
    expect(await pollStatus(early.nodeKey)).toBe(200); // enrolled with "a" before it was revoked: keeps working

    const nosuch = await cli(['enroll-secret', 'revoke', 'nosuch']);
    expect(nosuch.code).toBe(1);
    expect(nosuch.stderr).toContain('no active enrol secret named "nosuch"; see `patchops enroll-secret list`');
    expect(nosuch.stderr).not.toMatch(STACK);
    expect(nosuch.stdout).toBe('');
  }, 120_000);
});

describe('patchops agents', () => {
  it('list shows an enrolled agent with hostname and OS; revoke makes the gateway refuse its node key', async () => {
    const { secret } = await addEnrollSecret(db.db, { name: 'for-agents' });
    const agent = await enrolled(secret, { hostname: 'cli-web-01', osVersion: '12.7' });
    expect(await pollStatus(agent.nodeKey)).toBe(200);

    const listed = await ok(['agents', 'list']);
    const row = listed.split('\n').find((l) => l.startsWith(agent.endpointId));
    expect(row, listed).toMatch(new RegExp(`^${agent.endpointId}\\s+cli-web-01\\s+linux 12\\.7\\s+active\\s+last seen \\d{4}-`));
    expect(row).not.toContain('(revoked)');

    expect(await ok(['agents', 'revoke', agent.endpointId])).toBe(`1 key(s) of ${agent.endpointId} revoked\n`);
    expect(await endpointForKey(db.db, agent.nodeKey)).toBeNull();
    // The gateway drops revoked keys from its cache at its next refresh (every 100 ms here).
    let status = 0;
    for (let i = 0; i < 50 && status !== 401; i++) {
      status = await pollStatus(agent.nodeKey);
      if (status !== 401) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(401);
    expect((await ok(['agents', 'list'])).split('\n').find((l) => l.startsWith(agent.endpointId))).toMatch(/\(revoked\)$/);

    const nosuch = await cli(['agents', 'revoke', 'ep-nosuch']);
    expect(nosuch.code).toBe(1);
    expect(nosuch.stderr).toContain('no endpoint "ep-nosuch"; see `patchops agents list`');
    expect(nosuch.stderr).not.toMatch(STACK);
  }, 120_000);
});

describe('patchops repo-add', () => {
  it('stores files by sha256, publishes a signed manifest that grows with each add, and adds nothing when a file is missing', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-repo-files-'));
    const files = { 'tool_1.0_amd64.deb': Buffer.from(`deb ${randomUUID()}`), 'Tool-1.0.msi': Buffer.from(`msi ${randomUUID()}`), 'tool-1.0.pkg': Buffer.from(`pkg ${randomUUID()}`) };
    for (const [name, bytes] of Object.entries(files)) await fs.writeFile(path.join(dir, name), bytes);
    const [deb, msi, pkg] = Object.keys(files).map((n) => path.join(dir, n)) as [string, string, string];

    const first = await ok(['repo-add', deb, msi]);
    expect(first).toContain(`${sha256(files['tool_1.0_amd64.deb'])}  tool_1.0_amd64.deb\n`);
    expect(first).toContain(`${sha256(files['Tool-1.0.msi'])}  Tool-1.0.msi\n`);
    const v1 = Number(/manifest version (\d+) published and signed/.exec(first)?.[1]);
    expect(v1).toBeGreaterThanOrEqual(1);

    const second = await ok(['repo-add', pkg]);
    expect(second).toContain(`${sha256(files['tool-1.0.pkg'])}  tool-1.0.pkg\n`);
    expect(second).toContain(`manifest version ${v1 + 1} published and signed`);

    // What an agent sees: the manifest from the gateway, verified with the key pinned at enrolment.
    const { secret } = await addEnrollSecret(db.db, { name: 'for-repo' });
    const agent = await enrolled(secret);
    const res = await app.inject({ method: 'GET', url: '/agent/v1/manifest', headers: { authorization: `Bearer ${agent.nodeKey}` } });
    expect(res.statusCode, res.body).toBe(200);
    const signed = res.json<SignedManifest>();
    const body: ManifestBody = verifyManifest(signed, agent.manifestSigningKey, { now: new Date(), lastSeenVersion: v1 });
    expect(body.version).toBe(v1 + 1);
    expect(body.files).toEqual(
      expect.arrayContaining(Object.entries(files).map(([name, bytes]) => ({ name, sha256: sha256(bytes), size: bytes.length }))),
    );
    expect(() => verifyManifest({ ...signed, body: signed.body.replace('tool-1.0.pkg', 'evil-1.0.pkg') }, agent.manifestSigningKey, { now: new Date(), lastSeenVersion: 0 })).toThrow(/signature/);
    for (const bytes of Object.values(files)) {
      expect(await fs.readFile(path.join(dataDir, 'repository', sha256(bytes)))).toEqual(bytes);
      const file = await app.inject({ method: 'GET', url: `/agent/v1/files/${sha256(bytes)}`, headers: { authorization: `Bearer ${agent.nodeKey}` } });
      expect(file.statusCode).toBe(200);
      expect(file.rawPayload).toEqual(bytes);
    }

    // A missing file among good ones: non-zero exit, the file named, nothing stored, no new manifest.
    const fresh = Buffer.from(`fresh ${randomUUID()}`);
    await fs.writeFile(path.join(dir, 'fresh.deb'), fresh);
    const missing = await cli(['repo-add', path.join(dir, 'fresh.deb'), path.join(dir, 'missing.file')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`cannot read ${path.join(dir, 'missing.file')}: no such file`);
    expect(missing.stderr).not.toMatch(STACK);
    expect(missing.stdout).toBe('');
    await expect(fs.access(path.join(dataDir, 'repository', sha256(fresh)))).rejects.toThrow(/ENOENT/);
    expect(JSON.parse((await latestManifest(db.db))!.body)).toMatchObject({ version: v1 + 1 });
    await fs.rm(dir, { recursive: true, force: true });
  }, 120_000);
});

describe('patchops agent', () => {
  it('--defer-reboot writes the request the agent reads; without --server it says what is missing', async () => {
    const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-agent-state-'));
    const store = new StateStore(stateDir);
    // The folder the running agent has made for requests (the state directory itself, or a folder inside it).
    await fs.mkdir(path.dirname(store.deferFile), { recursive: true });
    const before = Date.now();
    const [defer, noServer] = await Promise.all([
      cli(['agent', '--defer-reboot', '--state-dir', stateDir]),
      cli(['agent', '--state-dir', path.join(stateDir, 'unused')]),
    ]);
    expect(defer.code, defer.stderr).toBe(0);
    expect(defer.stdout).toMatch(/^restart deferral requested/);
    const stat = await fs.stat(store.deferFile);
    expect(stat.isFile()).toBe(true);
    expect(stat.mtimeMs).toBeGreaterThanOrEqual(before - 1000);
    expect((await fs.readFile(store.deferFile, 'utf8')).trim()).not.toBe('');

    expect(noServer.code).toBe(1);
    expect(noServer.stderr).toContain('--server is required (or set PATCHOPS_SERVER)');
    expect(noServer.stderr).not.toMatch(STACK);
    await fs.rm(stateDir, { recursive: true, force: true });
  }, 120_000);
});
