/**
 * The agent-area verbs of the real `patchops` CLI process — `enroll-secret add|list|revoke`, `agents list|revoke`,
 * `repo-add`, `repo add|list|remove`, `distribution-points list|remove`, `agent --defer-reboot` — checked through their own output, the database, and an agent gateway
 * (the real routes, in process) that the enrolments, polls, manifest and file downloads go through.
 */
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { and, eq } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StateStore } from '../../src/agent/state';
import { verifyManifest } from '../../src/agent/verify';
import { addEnrollSecret } from '../../src/db/agent-enroll-secrets';
import { endpointForKey } from '../../src/db/agent-keys';
import { latestManifest, publishManifest } from '../../src/db/repository';
import { agentEnrollSecrets, auditLog } from '../../src/db/schema/index';
import { apiRoutes } from '../../src/api/index';
import { createLogger } from '../../src/logging';
import type { CycleService } from '../../src/services/cycle-service';
import { createAgentGateway, type AgentGateway } from '../../src/server/agent-gateway';
import { buildServer } from '../../src/server/app';
import type { EnrollResponse, ManifestBody, PollResponse, SignedManifest } from '../../src/shared/agent-protocol';
import { loginCli } from '../helpers/cli-session';
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

function cli(
  args: string[],
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(root, 'bin', 'patchops.mjs'), ...args],
      { cwd: root, env: { ...env, ...extraEnv }, timeout: 60_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
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
    payload: {
      enrollSecret: secret,
      machineId: `cli-machine-${randomUUID()}`,
      osFamily: 'linux',
      osName: 'Debian GNU/Linux',
      arch: 'x64',
      ...host,
    },
  });
}

async function enrolled(secret: string, host?: { hostname: string; osVersion: string }): Promise<EnrollResponse> {
  const res = await enroll(secret, host);
  expect(res.statusCode, res.body).toBe(200);
  return res.json<EnrollResponse>();
}

const pollStatus = async (nodeKey: string) =>
  (await app.inject({ method: 'GET', url: '/agent/v1/jobs?wait=0', headers: { authorization: `Bearer ${nodeKey}` } }))
    .statusCode;

beforeAll(async () => {
  db = await createTestDatabase();
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-agent-cli-'));
  env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: db.url,
    PATCHOPS_DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
  };
  const logger = createLogger(process.env.TEST_LOG ?? 'silent');
  const box = await secretBoxFor({ dataDir });
  const repositoryDir = path.join(dataDir, 'repository');
  gateway = createAgentGateway({ database: db, secretBox: box, logger, refreshMs: 100, repositoryDir });
  // The agent-management verbs and repo add|list|remove go through the API, logged in as web:ops (an admin).
  app = await buildServer({
    logger,
    health: [],
    routes: [
      gateway.routes,
      apiRoutes({ db: db.db, service: {} as CycleService, logger, repository: { box, dir: repositoryDir } }),
    ],
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  env.XDG_CONFIG_HOME = (await loginCli(url, db.db, { username: 'ops', role: 'admin' })).configHome;
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
    expect(row, listed).toMatch(
      new RegExp(`^${agent.endpointId}\\s+cli-web-01\\s+linux 12\\.7\\s+active\\s+site -\\s+last seen \\d{4}-`),
    );
    expect(row).not.toContain('(revoked)');
    // The site, set by host name, shows in the list.
    expect(await ok(['agents', 'site', 'cli-web-01', 'web-dc1'])).toBe(
      `${agent.endpointId} (cli-web-01): site (none) → web-dc1\n`,
    );
    expect((await ok(['agents', 'list'])).split('\n').find((l) => l.startsWith(agent.endpointId))).toMatch(
      /\s+active\s+site web-dc1\s+last seen/,
    );

    expect(await ok(['agents', 'revoke', agent.endpointId])).toBe(`1 key(s) of ${agent.endpointId} revoked\n`);
    expect(await endpointForKey(db.db, agent.nodeKey)).toBeNull();
    // The gateway drops revoked keys from its cache at its next refresh (every 100 ms here).
    let status = 0;
    for (let i = 0; i < 50 && status !== 401; i++) {
      status = await pollStatus(agent.nodeKey);
      if (status !== 401) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(401);
    expect((await ok(['agents', 'list'])).split('\n').find((l) => l.startsWith(agent.endpointId))).toMatch(
      /\(revoked\)$/,
    );

    const nosuch = await cli(['agents', 'revoke', 'ep-nosuch']);
    expect(nosuch.code).toBe(1);
    expect(nosuch.stderr).toContain('no endpoint "ep-nosuch"; see `patchops agents list`');
    expect(nosuch.stderr).not.toMatch(STACK);
  }, 120_000);
});

describe('patchops repo-add', () => {
  it('stores files by sha256, publishes a signed manifest that grows with each add, and adds nothing when a file is missing', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-repo-files-'));
    const files = {
      'tool_1.0_amd64.deb': Buffer.from(`deb ${randomUUID()}`),
      'Tool-1.0.msi': Buffer.from(`msi ${randomUUID()}`),
      'tool-1.0.pkg': Buffer.from(`pkg ${randomUUID()}`),
    };
    for (const [name, bytes] of Object.entries(files)) await fs.writeFile(path.join(dir, name), bytes);
    const [deb, msi, pkg] = Object.keys(files).map((n) => path.join(dir, n)) as [string, string, string];

    // One upload per file, each a new manifest version: name, size, sha256 and the version are printed.
    const added = (name: keyof typeof files, version: number) =>
      new RegExp(
        `^${sha256(files[name])}\\s+${files[name].length}  ${name.replace(/\./g, '\\.')}  manifest version ${version}$`,
        'm',
      );
    const first = await ok(['repo-add', deb, msi]);
    const v1 = Number(/manifest version (\d+) published and signed, 2 file\(s\) added/.exec(first)?.[1]);
    expect(v1).toBeGreaterThanOrEqual(2);
    expect(first).toMatch(added('tool_1.0_amd64.deb', v1 - 1));
    expect(first).toMatch(added('Tool-1.0.msi', v1));

    const second = await ok(['repo-add', pkg]);
    expect(second).toMatch(added('tool-1.0.pkg', v1 + 1));
    expect(second).toContain(`manifest version ${v1 + 1} published and signed`);

    // What an agent sees: the manifest from the gateway, verified with the key pinned at enrolment.
    const { secret } = await addEnrollSecret(db.db, { name: 'for-repo' });
    const agent = await enrolled(secret);
    const res = await app.inject({
      method: 'GET',
      url: '/agent/v1/manifest',
      headers: { authorization: `Bearer ${agent.nodeKey}` },
    });
    expect(res.statusCode, res.body).toBe(200);
    const signed = res.json<SignedManifest>();
    const body: ManifestBody = verifyManifest(signed, agent.manifestSigningKey, {
      now: new Date(),
      lastSeenVersion: v1,
    });
    expect(body.version).toBe(v1 + 1);
    expect(body.files).toEqual(
      expect.arrayContaining(
        Object.entries(files).map(([name, bytes]) => ({ name, sha256: sha256(bytes), size: bytes.length })),
      ),
    );
    expect(() =>
      verifyManifest(
        { ...signed, body: signed.body.replace('tool-1.0.pkg', 'evil-1.0.pkg') },
        agent.manifestSigningKey,
        { now: new Date(), lastSeenVersion: 0 },
      ),
    ).toThrow(/signature/);
    for (const bytes of Object.values(files)) {
      expect(await fs.readFile(path.join(dataDir, 'repository', sha256(bytes)))).toEqual(bytes);
      const file = await app.inject({
        method: 'GET',
        url: `/agent/v1/files/${sha256(bytes)}`,
        headers: { authorization: `Bearer ${agent.nodeKey}` },
      });
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

    // Three admins add at once: each publish builds on the version it read or reads again, so no add is lost.
    const parallel = ['a', 'b', 'c'].map((x) => ({
      file: path.join(dir, `parallel-${x}.msi`),
      bytes: Buffer.from(`${x} ${randomUUID()}`),
    }));
    for (const p of parallel) await fs.writeFile(p.file, p.bytes);
    await Promise.all(parallel.map((p) => ok(['repo-add', p.file])));
    const after = JSON.parse((await latestManifest(db.db))!.body) as ManifestBody;
    expect(after.version).toBe(v1 + 4);
    expect(after.files.map((f) => f.sha256)).toEqual(
      expect.arrayContaining([...Object.values(files), ...parallel.map((p) => p.bytes)].map((b) => sha256(b))),
    );
    await fs.rm(dir, { recursive: true, force: true });
  }, 120_000);
});

describe('patchops repo add, not logged in', () => {
  it('says to log in first, exits 1 and sends nothing', async () => {
    const configHome = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-no-login-'));
    const file = path.join(configHome, 'tool-2.0.deb');
    await fs.writeFile(file, `never sent ${randomUUID()}`);
    const before = await latestManifest(db.db);
    for (const verb of [['repo', 'add'], ['repo-add']]) {
      const r = await cli([...verb, file], { XDG_CONFIG_HOME: configHome });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('error [UNAUTHORIZED]: not logged in');
      expect(r.stderr).toContain('run patchops login --server http://<host>:<port>');
      expect(r.stderr).not.toMatch(STACK);
      expect(r.stdout).toBe('');
    }
    expect(await latestManifest(db.db)).toEqual(before);
    await fs.rm(configHome, { recursive: true, force: true });
  }, 60_000);
});

describe('patchops distribution-points', () => {
  it('list shows registered points; remove audits it, a fresh gateway refuses its token and stops offering it to its site, unknown names fail', async () => {
    const register = async (name: string, site: string) => {
      const out = await ok([
        'distribution-point-register',
        '--name',
        name,
        '--url',
        `http://${name}.cli.example:8081`,
        '--site',
        site,
      ]);
      const token = /shown only now[^\n]*:\n\n {2}(\S+)\n/.exec(out)?.[1];
      expect(token, out).toMatch(/^[\w-]{40,}$/);
      return token!;
    };
    const [tokenA, tokenB] = await Promise.all([register('dp-cli-a', 'cli-a'), register('dp-cli-b', 'cli-b')]);
    const user = 'web:ops';
    const row = (out: string, name: string) => out.split('\n').find((l) => l.startsWith(`${name} `));
    const listed = await ok(['distribution-points', 'list']);
    expect(row(listed, 'dp-cli-a'), listed).toMatch(
      new RegExp(
        `^dp-cli-a\\s+site cli-a\\s+http://dp-cli-a\\.cli\\.example:8081\\s+registered \\d{4}-\\d\\d-\\d\\dT\\S+ by ${user}$`,
      ),
    );
    expect(row(listed, 'dp-cli-b'), listed).toMatch(
      /^dp-cli-b\s+site cli-b\s+http:\/\/dp-cli-b\.cli\.example:8081\s+registered \S+ by web:ops$/,
    );
    expect(listed).not.toContain(tokenA);

    // The shared gateway checks A's token now and trusts it from its cache afterwards; a fresh gateway (quick to
    // reload the list of points) offers A to an agent of site cli-a.
    const whoami = (server: FastifyInstance, token: string) =>
      server.inject({ method: 'GET', url: '/agent/v1/whoami', headers: { authorization: `Bearer ${token}` } });
    expect((await whoami(app, tokenA)).json()).toMatchObject({
      kind: 'distribution-point',
      name: 'dp-cli-a',
      site: 'cli-a',
    });
    const fresh = createAgentGateway({
      database: db,
      secretBox: await secretBoxFor({ dataDir }),
      logger: createLogger('silent'),
      refreshMs: 100,
      distributionPointsRefreshMs: 100,
    });
    const freshApp = await buildServer({ logger: createLogger('silent'), health: [], routes: [fresh.routes] });
    try {
      const { secret } = await addEnrollSecret(db.db, { name: 'for-dp' });
      const res = await freshApp.inject({
        method: 'POST',
        url: '/agent/v1/enroll',
        payload: {
          enrollSecret: secret,
          machineId: `cli-machine-${randomUUID()}`,
          hostname: 'cli-branch-01',
          osFamily: 'linux',
          site: 'cli-a',
        },
      });
      expect(res.statusCode, res.body).toBe(200);
      const { nodeKey } = res.json<EnrollResponse>();
      const offered = async (want: number) => {
        let points: string[] = [];
        for (let i = 0; i < 50; i++) {
          const poll = await freshApp.inject({
            method: 'GET',
            url: '/agent/v1/jobs?wait=0',
            headers: { authorization: `Bearer ${nodeKey}` },
          });
          points = poll.json<PollResponse>().distributionPoints ?? [];
          if (points.length === want) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        return points;
      };
      expect(await offered(1)).toEqual(['http://dp-cli-a.cli.example:8081']);

      const removed = await ok(['distribution-points', 'remove', 'dp-cli-a']);
      expect(removed).toMatch(
        /^distribution point dp-cli-a \(site cli-a, http:\/\/dp-cli-a\.cli\.example:8081\) removed\. Servers refuse its token within 30 s .* agents of site cli-a stop being offered it within 30 s /,
      );
      const after = await ok(['distribution-points', 'list']);
      expect(row(after, 'dp-cli-a'), after).toBeUndefined();
      expect(row(after, 'dp-cli-b'), after).toBeTruthy();

      expect((await whoami(app, tokenA)).statusCode).toBe(200); // the shared gateway's cache: the delay the output names
      expect((await whoami(freshApp, tokenA)).statusCode).toBe(401);
      expect((await whoami(freshApp, tokenB)).statusCode).toBe(200);
      expect(await offered(0)).toEqual([]);
    } finally {
      await freshApp.close();
    }

    const audit = await db.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.subjectType, 'distribution_point'), eq(auditLog.subjectId, 'dp-cli-a')))
      .orderBy(auditLog.id);
    expect(audit.map((e) => [e.action, e.actor])).toEqual([
      ['distribution_point.registered', user],
      ['distribution_point.removed', user],
    ]);
    expect(audit[1]!.details).toEqual({ url: 'http://dp-cli-a.cli.example:8081', site: 'cli-a' });

    const nosuch = await cli(['distribution-points', 'remove', 'dp-cli-a']);
    expect(nosuch.code).toBe(1);
    expect(nosuch.stderr).toContain('no distribution point named "dp-cli-a"; see `patchops distribution-points list`');
    expect(nosuch.stderr).not.toMatch(STACK);
    expect(nosuch.stdout).toBe('');
  }, 120_000);
});

describe('patchops repo', () => {
  it('list shows the latest manifest; remove publishes the next version without the files, deletes their bytes, and refuses unknown or ambiguous names whole', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-repo-rm-'));
    await fs.mkdir(path.join(dir, 'other'));
    const files = {
      'x-1.0.deb': Buffer.from(`x ${randomUUID()}`),
      'y-1.0.msi': Buffer.from(`y ${randomUUID()}`),
      'z-1.0.pkg': Buffer.from(`z ${randomUUID()}`),
      'other/x-1.0.deb': Buffer.from(`x2 ${randomUUID()}`),
    };
    for (const [name, bytes] of Object.entries(files)) await fs.writeFile(path.join(dir, name), bytes);
    const stored = (bytes: Buffer) => path.join(dataDir, 'repository', sha256(bytes));
    const at = (name: keyof typeof files) => path.join(dir, name);

    // Both spellings of add, one implementation.
    const first = await ok(['repo', 'add', at('x-1.0.deb'), at('y-1.0.msi')]);
    const v1 = Number(/manifest version (\d+) published and signed/.exec(first)?.[1]);
    // Each upload is audited as the logged-in person.
    const addedAt = async (version: number) =>
      (
        await db.db
          .select()
          .from(auditLog)
          .where(and(eq(auditLog.action, 'repository.files_added'), eq(auditLog.subjectId, String(version))))
      )[0];
    expect(await addedAt(v1 - 1)).toMatchObject({
      actor: 'web:ops',
      details: { added: [{ name: 'x-1.0.deb', sha256: sha256(files['x-1.0.deb']) }] },
    });
    expect(await addedAt(v1)).toMatchObject({
      actor: 'web:ops',
      details: { previous: v1 - 1, added: [{ name: 'y-1.0.msi' }] },
    });
    expect(await ok(['repo-add', at('z-1.0.pkg')])).toContain(`manifest version ${v1 + 1} published and signed`);
    const line = (name: string, bytes: Buffer) =>
      new RegExp(`^${sha256(bytes)}\\s+${bytes.length}\\s+${name.replace(/\./g, '\\.')}$`, 'm');
    const listed = await ok(['repo', 'list']);
    const keyId = (await latestManifest(db.db))!.keyId;
    expect(listed).toMatch(
      new RegExp(`^manifest version ${v1 + 1}, expires \\d{4}-\\S+Z, signed with key ${keyId}, \\d+ file\\(s\\)\n`),
    );
    expect(listed).not.toContain('EXPIRED');
    for (const n of ['x-1.0.deb', 'y-1.0.msi', 'z-1.0.pkg'] as const) expect(listed).toMatch(line(n, files[n]));

    // The pinned key, from an enrolment before the removal.
    const { secret } = await addEnrollSecret(db.db, { name: 'for-repo-remove' });
    const agent = await enrolled(secret);

    // Unknown among known: nothing removed, nothing published.
    const unknown = await cli(['repo', 'remove', 'x-1.0.deb', 'nosuch.deb']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(
      `not in manifest version ${v1 + 1}: "nosuch.deb"; see \`patchops repo list\`. Nothing was removed and no manifest published.`,
    );
    expect(unknown.stderr).not.toMatch(STACK);
    expect(unknown.stdout).toBe('');
    expect(JSON.parse((await latestManifest(db.db))!.body)).toMatchObject({ version: v1 + 1 });
    await fs.access(stored(files['x-1.0.deb']));

    // One by name, one by sha256.
    const removed = await ok(['repo', 'remove', 'x-1.0.deb', sha256(files['y-1.0.msi']), '--ttl-hours', '2']);
    expect(removed).toContain(`${sha256(files['x-1.0.deb'])}  x-1.0.deb  removed\n`);
    expect(removed).toContain(`${sha256(files['y-1.0.msi'])}  y-1.0.msi  removed\n`);
    expect(removed).toMatch(new RegExp(`manifest version ${v1 + 2} published and signed \\(was ${v1 + 1}\\)`));
    const res = await app.inject({
      method: 'GET',
      url: '/agent/v1/manifest',
      headers: { authorization: `Bearer ${agent.nodeKey}` },
    });
    const body = verifyManifest(res.json<SignedManifest>(), agent.manifestSigningKey, {
      now: new Date(),
      lastSeenVersion: v1 + 1,
    });
    expect(body.version).toBe(v1 + 2);
    expect(Math.abs(new Date(body.expiresAt).getTime() - Date.now() - 2 * 3600_000)).toBeLessThan(60_000);
    expect(body.files.map((f) => f.name)).toContain('z-1.0.pkg');
    expect(body.files.map((f) => f.name)).not.toEqual(expect.arrayContaining(['x-1.0.deb']));
    expect(body.files.map((f) => f.name)).not.toEqual(expect.arrayContaining(['y-1.0.msi']));
    await expect(fs.access(stored(files['x-1.0.deb']))).rejects.toThrow(/ENOENT/);
    await expect(fs.access(stored(files['y-1.0.msi']))).rejects.toThrow(/ENOENT/);
    expect(await fs.readFile(stored(files['z-1.0.pkg']))).toEqual(files['z-1.0.pkg']);
    const [audited] = await db.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.action, 'repository.files_removed'), eq(auditLog.subjectId, String(v1 + 2))));
    expect(audited?.details).toMatchObject({
      previous: v1 + 1,
      removed: [{ name: 'x-1.0.deb' }, { name: 'y-1.0.msi' }],
    });

    // Two files named alike: the name is refused, the sha256 picks one.
    await ok(['repo', 'add', at('x-1.0.deb'), at('other/x-1.0.deb')]); // two versions: v1 + 3 and v1 + 4
    const ambiguous = await cli(['repo', 'remove', 'x-1.0.deb']);
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toContain(
      `2 files are named "x-1.0.deb" (${sha256(files['x-1.0.deb'])}, ${sha256(files['other/x-1.0.deb'])}): give the sha256`,
    );
    expect(JSON.parse((await latestManifest(db.db))!.body)).toMatchObject({ version: v1 + 4 });

    // An expired manifest says so.
    await publishManifest(db.db, await secretBoxFor({ dataDir }), body.files, {
      now: new Date(Date.now() - 3 * 3600_000),
      ttlHours: 1,
    });
    expect(await ok(['repo', 'list'])).toMatch(new RegExp(`^manifest version ${v1 + 5}, expires \\S+ EXPIRED`));
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
