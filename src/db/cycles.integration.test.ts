import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { seedFleet } from '../../test/helpers/cycle-fixtures';
import { verifyAuditChain } from './audit';
import {
  addException,
  createCycleRow,
  getCycleRow,
  listCycleRows,
  listExceptions,
  recordStageChange,
  recordVoteRow,
  removeException,
  resolveScope,
  stageEvents,
} from './cycles';
import { DEFAULT_POLICY } from '../domain/policy';
import { getPolicy, listPolicies, savePolicy, seedPolicies } from './policies';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.close();
});

describe('policies', () => {
  it('seeding is idempotent and makes default and emergency exist', async () => {
    await seedPolicies(db.db);
    await seedPolicies(db.db);
    const list = await listPolicies(db.db);
    expect(list.map((p) => [p.name, p.version])).toEqual([
      ['default', 1],
      ['emergency', 1],
    ]);
    expect((await getPolicy(db.db, 'default')).policy).toEqual(DEFAULT_POLICY);
  });

  it('saving makes a new version; an old version stays readable; unknown names and invalid documents are refused', async () => {
    const v2 = await savePolicy(db.db, { name: 'default', description: 'changed' }, 'cli:admin');
    expect(v2.version).toBe(2);
    expect((await getPolicy(db.db, 'default')).policy.description).toBe('changed');
    expect((await getPolicy(db.db, 'default', 1)).policy.description).toBe(DEFAULT_POLICY.description);
    await expect(getPolicy(db.db, 'nope')).rejects.toThrow(
      /no policy named "nope"; known policies: default, emergency/,
    );
    await expect(getPolicy(db.db, 'default', 99)).rejects.toThrow(/has no version 99/);
    await expect(savePolicy(db.db, { name: 'bad', waves: [] }, 'cli:admin')).rejects.toMatchObject({
      code: 'POLICY_INVALID',
    });
  });
});

describe('cycles', () => {
  it('creates a row once, records stages, votes once per identity, all audited', async () => {
    const c = {
      cycleId: 'C-1',
      workflowId: 'patch-cycle:C-1',
      policyName: 'default',
      policyVersion: 1,
      scope: { groups: ['web'] },
      emergency: false,
      requestedBy: 'cli:a',
    };
    expect(await createCycleRow(db.db, c)).toEqual({ created: true });
    expect(await createCycleRow(db.db, c)).toEqual({ created: false });
    await recordStageChange(db.db, { cycleId: 'C-1', stage: 'ASSESS', actor: 'system:workflow', detail: { n: 1 } });
    await recordStageChange(db.db, {
      cycleId: 'C-1',
      stage: 'COMPLETED',
      actor: 'system:workflow',
      summary: { stage: 'COMPLETED' },
      reason: 'done',
    });
    const row = await getCycleRow(db.db, 'C-1');
    expect(row).toMatchObject({ stage: 'COMPLETED', reason: 'done', summary: { stage: 'COMPLETED' } });
    expect(row?.completedAt).not.toBeNull();
    expect((await stageEvents(db.db, 'C-1')).map((e) => e.stage)).toEqual(['ASSESS', 'COMPLETED']);
    const vote = { cycleId: 'C-1', identity: 'cli:b', channel: 'cli', decision: 'approve' as const, at: new Date() };
    expect(await recordVoteRow(db.db, vote)).toEqual({ created: true });
    expect(await recordVoteRow(db.db, vote)).toEqual({ created: false });
    expect(await getCycleRow(db.db, 'C-missing')).toBeNull();
    expect((await listCycleRows(db.db, { activeOnly: true })).map((r) => r.cycleId)).not.toContain('C-1');
    expect((await verifyAuditChain(db.db)).ok).toBe(true);
  });

  it('resolves a scope by group, endpoint ids and OS', async () => {
    const f = await seedFleet(db.db, { prefix: 'sc', testEndpoints: 1, endpoints: 3 });
    expect((await resolveScope(db.db, { groups: [f.prodGroup] })).map((e) => e.id)).toHaveLength(3);
    expect((await resolveScope(db.db, { groups: [f.testGroup] }))[0]?.groups).toEqual([f.testGroup]);
    expect(await resolveScope(db.db, { endpointIds: [f.endpointIds[0]!], osFamilies: ['linux'] })).toEqual([]);
    expect(await resolveScope(db.db, { groups: ['no-such-group'] })).toEqual([]);
  });

  it('exceptions: add with a code, list active ones, remove; bad input and unknown codes are refused', async () => {
    const x = await addException(db.db, {
      patchId: 'KB1',
      groupName: 'web',
      reason: 'vendor hotfix pending',
      expiresAt: new Date(Date.now() + 86_400_000),
      by: 'cli:a',
    });
    expect(x.code).toMatch(/^EXC-\d+$/);
    await addException(db.db, {
      endpointId: 'ep-old',
      reason: 'expired',
      expiresAt: new Date(Date.now() - 1000),
      by: 'cli:a',
    });
    expect((await listExceptions(db.db)).map((e) => e.code)).toEqual([x.code]);
    await expect(addException(db.db, { reason: 'x', expiresAt: new Date(), by: 'cli:a' })).rejects.toThrow(
      /needs a patch, an endpoint or a group/,
    );
    await expect(
      addException(db.db, { patchId: 'KB1', reason: ' ', expiresAt: new Date(), by: 'cli:a' }),
    ).rejects.toThrow(/needs a reason/);
    await expect(
      addException(db.db, { patchId: 'KB1', reason: 'r', expiresAt: new Date('nope'), by: 'cli:a' }),
    ).rejects.toThrow(/not a date/);
    await removeException(db.db, x.code.toLowerCase(), 'cli:a');
    expect(await listExceptions(db.db)).toEqual([]);
    await expect(removeException(db.db, x.code, 'cli:a')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
