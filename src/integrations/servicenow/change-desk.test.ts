import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceNowFake } from '../../../test/fakes/servicenow';
import type { ChangeRequestInput } from '../../domain/ports';
import { ServiceNowClient } from './client';
import { mapServiceNowApproval, mapServiceNowState, ServiceNowChangeDesk } from './change-desk';

const fake = new ServiceNowFake();
let desk: ServiceNowChangeDesk;
let n = 0;

beforeAll(async () => {
  const url = await fake.start();
  desk = new ServiceNowChangeDesk({
    client: new ServiceNowClient({
      instanceUrl: url,
      auth: { kind: 'basic', username: 'admin', password: 'admin' },
      sleep: async () => undefined,
    }),
    assignmentGroup: 'Patch Ops',
  });
  fake.seedGroup('Patch Ops');
});
afterAll(() => fake.stop());

function input(over: Partial<ChangeRequestInput> = {}): ChangeRequestInput {
  n += 1;
  return {
    cycleId: `cycle-${n}-${Date.now()}`,
    type: 'normal',
    shortDescription: 'Patch cycle: 3 critical patches on 2 endpoints',
    description: 'Patches: KB5034441 (CVE-2024-20666, critical)\nEndpoints: web-01, web-02\nTest ring: 2/2 succeeded',
    risk: 'moderate',
    impact: 2,
    plannedStart: '2026-12-01T22:00:00.000Z',
    plannedEnd: '2026-12-02T02:00:00.000Z',
    implementationPlan: 'Waves: test ring, then 50%, then 100%',
    backoutPlan: 'Agents roll back the installed patches',
    testPlan: 'Verify installed versions and service health',
    configurationItems: [],
    ...over,
  };
}

describe('ServiceNowChangeDesk.open', () => {
  it('creates a normal change with the plan, window, risk, group and correlation id', async () => {
    const i = input();
    const ref = await desk.open(i);
    expect(ref.number).toMatch(/^CHG\d{7}$/);
    expect(ref.state).toBe('new');
    expect(ref.url).toContain(ref.sysId);
    const c = fake.change(ref.number)!;
    expect(c).toMatchObject({
      type: 'normal',
      correlation_id: i.cycleId,
      short_description: i.shortDescription,
      description: i.description,
      risk: '3',
      impact: '2',
      start_date: '2026-12-01 22:00:00',
      end_date: '2026-12-02 02:00:00',
      implementation_plan: i.implementationPlan,
      backout_plan: i.backoutPlan,
      test_plan: i.testPlan,
      assignment_group: fake.table('sys_user_group').find((g) => g.name === 'Patch Ops')!.sys_id,
    });
  });

  it('returns the existing change on a retried open instead of creating a second', async () => {
    const i = input();
    const first = await desk.open(i);
    const before = fake.changes().length;
    const again = await desk.open(i);
    expect(again).toEqual(first);
    expect(fake.changes().length).toBe(before);
    expect(fake.changes().filter((c) => c.correlation_id === i.cycleId)).toHaveLength(1);
  });

  it('creates emergency changes and standard changes from a template by name', async () => {
    const tpl = fake.seedStandardTemplate('Monthly OS patching');
    const em = await desk.open(input({ type: 'emergency', risk: 'high', impact: 1 }));
    expect(fake.change(em.number)).toMatchObject({ type: 'emergency', risk: '2', impact: '1' });
    const std = await desk.open(input({ type: 'standard', standardTemplate: 'Monthly OS patching', risk: 'low' }));
    expect(fake.change(std.number)).toMatchObject({
      type: 'standard',
      std_change_producer_version: tpl.sys_id,
      risk: '4',
    });
    await expect(desk.open(input({ type: 'standard' }))).rejects.toThrow(/names no standard change template/);
    await expect(desk.open(input({ type: 'standard', standardTemplate: 'Nope' }))).rejects.toThrow(
      /no standard change template named "Nope"/,
    );
  });

  it('attaches the CIs whose names match endpoint hostnames, once', async () => {
    fake.seedCi('db-17');
    fake.seedCi('db-18');
    const i = input({ configurationItems: ['db-17', 'db-18', 'laptop-unknown'] });
    const ref = await desk.open(i);
    expect(fake.affectedCis(ref.number).sort()).toEqual(['db-17', 'db-18']);
    expect(fake.change(ref.number)!.cmdb_ci).toBeTruthy();
    expect(fake.change(ref.number)!.description).toBe(
      `${i.description}\n\nEndpoints (3):\ndb-17\ndb-18\nlaptop-unknown`,
    );
    expect(fake.workNotes(ref.number)).toEqual([
      'patchops: 2 of 3 endpoint(s) matched a CMDB CI by name and are listed as affected CIs.',
    ]);
  });

  it('still raises the change when the CMDB cannot be read, saying in a work note why the CIs are missing', async () => {
    fake.seedCi('db-19');
    fake.inject({
      status: 403,
      error: { message: 'Operation Failed', detail: 'ACL Exception Read Failed due to security constraints' },
      pathPrefix: '/api/now/table/cmdb_ci',
    });
    const i = input({ configurationItems: ['db-19'] });
    const ref = await desk.open(i);
    expect(fake.change(ref.number)).toMatchObject({ correlation_id: i.cycleId, state: '-5' });
    expect(fake.affectedCis(ref.number)).toEqual([]);
    const notes = fake.workNotes(ref.number);
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(
      /^patchops: the affected CIs could not be attached \(1 endpoint\(s\) are listed in the description\): ServiceNow GET \/api\/now\/table\/cmdb_ci returned 403: Operation Failed: ACL Exception Read Failed/,
    );
  });

  it('raises the change without an assignment group when the group lookup fails', async () => {
    fake.inject({
      status: 400,
      error: { message: 'Invalid table sys_user_group', detail: '' },
      pathPrefix: '/api/now/table/sys_user_group',
    });
    const ref = await desk.open(input());
    expect(fake.change(ref.number)!.assignment_group ?? '').toBe('');
  });

  it('fails with ServiceNow’s own words when the change itself cannot be created', async () => {
    fake.inject({
      status: 403,
      error: { message: 'Operation Failed', detail: 'User does not have the change_manager role' },
      pathPrefix: '/api/sn_chg_rest/change/normal',
    });
    await expect(desk.open(input())).rejects.toThrow(
      /returned 403: Operation Failed: User does not have the change_manager role/,
    );
  });
});

describe('ServiceNowChangeDesk.get', () => {
  it('returns null for an unknown change', async () => {
    expect(await desk.get('CHG9999999')).toBeNull();
  });

  it('maps state, approval, window and who changed it', async () => {
    const ref = await desk.open(input());
    expect(await desk.get(ref.number)).toMatchObject({
      changeNumber: ref.number,
      state: 'new',
      approval: 'not requested',
    });
    await fake.approve(ref.number, 'cab.chair');
    await fake.reschedule(ref.number, '2026-12-03T22:00:00Z', '2026-12-04T01:00:00Z', 'cab.chair');
    expect(await desk.get(ref.number)).toEqual({
      changeNumber: ref.number,
      state: 'scheduled',
      approval: 'approved',
      plannedStart: '2026-12-03T22:00:00.000Z',
      plannedEnd: '2026-12-04T01:00:00.000Z',
      by: 'servicenow:cab.chair',
    });
  });

  it('carries the rejection comment and the cancellation reason', async () => {
    const a = await desk.open(input());
    await fake.reject(a.number, 'Freeze period until January', 'cab.chair');
    expect(await desk.get(a.number)).toMatchObject({
      approval: 'rejected',
      reason: 'Freeze period until January',
      by: 'servicenow:cab.chair',
    });
    const b = await desk.open(input());
    await fake.cancel(b.number, 'Duplicate of CHG0000001');
    expect(await desk.get(b.number)).toMatchObject({ state: 'canceled', reason: 'Duplicate of CHG0000001' });
  });
});

describe('ServiceNowChangeDesk notes, tasks and close', () => {
  it('adds work notes, and fails clearly for an unknown change', async () => {
    const ref = await desk.open(input());
    await desk.addWorkNote(ref.number, 'Test ring: 2/2 succeeded');
    await desk.addWorkNote(ref.number, 'Wave 1 of 2 done: 10 ok');
    expect(fake.workNotes(ref.number)).toEqual(['Test ring: 2/2 succeeded', 'Wave 1 of 2 done: 10 ok']);
    await expect(desk.addWorkNote('CHG0000000', 'x')).rejects.toThrow(/CHG0000000 does not exist/);
  });

  it('opens one change task per wave and closes it', async () => {
    const ref = await desk.open(input());
    const t1 = await desk.openWaveTask(ref.number, { wave: 1, name: 'pilot', plannedStart: '2026-12-01T22:00:00Z' });
    const again = await desk.openWaveTask(ref.number, { wave: 1, name: 'pilot' });
    await desk.openWaveTask(ref.number, { wave: 2, name: 'broad' });
    expect(again).toBe(t1);
    expect(fake.tasks(ref.number).map((t) => t.short_description)).toEqual(['Wave 1: pilot', 'Wave 2: broad']);
    await desk.closeWaveTask(ref.number, 1, true, '10/10 ok');
    expect(fake.tasks(ref.number)[0]!.state).toBe('3');
    await expect(desk.closeWaveTask(ref.number, 9, true, '')).rejects.toThrow(/no task for wave 9/);
  });

  it.each(['successful', 'successful_issues', 'unsuccessful'] as const)(
    'closes through Implement and Review with close code %s',
    async (code) => {
      const ref = await desk.open(input());
      await fake.approve(ref.number);
      await desk.close(ref.number, code, `Result: ${code}`);
      const c = fake.change(ref.number)!;
      expect(c).toMatchObject({ state: '3', close_code: code, close_notes: `Result: ${code}` });
      const states = fake.requests
        .filter((r) => r.method === 'PATCH' && r.path.endsWith(ref.sysId))
        .map((r) => (r.body as { state?: string }).state);
      expect(states).toEqual(['-1', '0', '3']);
      await desk.close(ref.number, code, 'again'); // already closed: no-op
      expect(fake.change(ref.number)!.close_notes).toBe(`Result: ${code}`);
    },
  );

  it('cancels a change that was never approved instead of closing it, and rejects an unknown one', async () => {
    const ref = await desk.open(input());
    await desk.close(ref.number, 'unsuccessful', 'Cycle rejected in chat');
    expect(fake.change(ref.number)).toMatchObject({ state: '4', close_notes: 'Cycle rejected in chat' });
    await expect(desk.close('CHG0000000', 'successful', '')).rejects.toThrow(/does not exist/);
  });
});

describe('state mapping', () => {
  it.each([
    ['-5', 'new'],
    ['-4', 'assess'],
    ['-3', 'authorize'],
    ['-2', 'scheduled'],
    ['-1', 'implement'],
    ['0', 'review'],
    ['3', 'closed'],
    ['4', 'canceled'],
    ['Scheduled', 'scheduled'],
    ['Cancelled', 'canceled'],
    ['7', undefined],
  ])('%s → %s', (v, want) => {
    expect(mapServiceNowState(v)).toBe(want);
  });

  it.each([
    ['approved', 'approved'],
    ['not requested', 'not requested'],
    ['Not Yet Requested', 'not requested'],
    ['weird', undefined],
  ])('approval %s → %s', (v, want) => {
    expect(mapServiceNowApproval(v)).toBe(want);
  });
});
