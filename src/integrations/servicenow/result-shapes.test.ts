/**
 * The change desk over the real client against the ServiceNow fake answering in each documented shape of
 * the Change Management API: a change is created and followed to closure either way (issue #17).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceNowFake } from '../../../test/fakes/servicenow';
import { ServiceNowChangeDesk } from './change-desk';
import { ServiceNowClient } from './client';

describe.each(['object', 'array'] as const)('a change whose Change API answers a single record as an %s', (shape) => {
  const fake = new ServiceNowFake({ changeResultShape: shape });
  let desk: ServiceNowChangeDesk;

  beforeAll(async () => {
    const instanceUrl = await fake.start();
    fake.seedGroup('Patch Management');
    fake.seedCi('shape-host-1.example.test');
    desk = new ServiceNowChangeDesk({
      client: new ServiceNowClient({ instanceUrl, auth: { kind: 'basic', username: 'admin', password: 'admin' } }),
      assignmentGroup: 'Patch Management',
    });
  });
  afterAll(() => fake.stop());

  it('is created, followed through approval and scheduling, and closed', async () => {
    const input = {
      cycleId: `cycle-shape-${shape}`,
      type: 'normal' as const,
      shortDescription: `Patch cycle (${shape})`,
      description: 'patches',
      risk: 'moderate' as const,
      impact: 3 as const,
      implementationPlan: 'waves',
      backoutPlan: 'rollback',
      testPlan: 'test ring',
      configurationItems: ['shape-host-1.example.test'],
    };
    const ref = await desk.open(input);
    const created = fake.change(ref.number)!;
    expect(ref).toMatchObject({ number: created.number, sysId: created.sys_id, state: 'new' });
    expect(fake.requests.some((r) => r.method === 'POST' && r.path === '/api/sn_chg_rest/change/normal')).toBe(true);
    expect(fake.affectedCis(ref.number)).toEqual(['shape-host-1.example.test']);
    expect(await desk.open(input)).toEqual(ref); // idempotent by correlation_id

    await fake.requestApproval(ref.number);
    expect(await desk.get(ref.number)).toMatchObject({
      changeNumber: ref.number,
      state: 'authorize',
      approval: 'requested',
    });
    await fake.approve(ref.number, 'cab.chair');
    expect(await desk.get(ref.number)).toMatchObject({
      state: 'scheduled',
      approval: 'approved',
      by: 'servicenow:cab.chair',
    });

    const task = await desk.openWaveTask(ref.number, { wave: 1, name: 'pilot' });
    expect(task).toMatch(/^CTASK\d{7}$/);
    await desk.closeWaveTask(ref.number, 1, true, 'wave 1 done');
    await desk.addWorkNote(ref.number, 'Deployment started.');
    await desk.close(ref.number, 'successful', 'all patched');
    expect(fake.change(ref.number)).toMatchObject({ state: '3', close_code: 'successful', close_notes: 'all patched' });
    expect(fake.tasks(ref.number).map((t) => t.state)).toEqual(['3']);
    expect(fake.workNotes(ref.number)).toContain('Deployment started.');
  });
});
