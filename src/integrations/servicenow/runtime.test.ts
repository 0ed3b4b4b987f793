import { describe, expect, it } from 'vitest';
import { ServiceNowFake } from '../../../test/fakes/servicenow';
import { loadConfig } from '../../config/index';
import { createLogger } from '../../logging';
import { startEmail } from '../email/runtime';
import { startServiceNow } from './runtime';

const logger = createLogger('silent');

describe('startServiceNow', () => {
  it('is off without an instance URL outside demo mode', async () => {
    expect(await startServiceNow(loadConfig({}), logger)).toBeNull();
    expect(await startEmail(loadConfig({}), logger)).toBeNull();
  });

  it('talks to the configured instance and reports its health for real', async () => {
    const fake = new ServiceNowFake({ users: [{ username: 'svc', password: 'right' }] });
    const url = await fake.start();
    try {
      const good = (await startServiceNow(
        loadConfig({
          SERVICENOW_INSTANCE_URL: url,
          SERVICENOW_USERNAME: 'svc',
          SERVICENOW_PASSWORD: 'right',
          SERVICENOW_WEBHOOK_SECRET: 's3cret',
        }),
        logger,
      ))!;
      expect(good.webhookSecret).toBe('s3cret');
      expect(await good.health.check()).toEqual({ status: 'up', detail: `${url}, basic auth` });
      const bad = (await startServiceNow(
        loadConfig({ SERVICENOW_INSTANCE_URL: url, SERVICENOW_USERNAME: 'svc', SERVICENOW_PASSWORD: 'wrong' }),
        logger,
      ))!;
      const state = await bad.health.check();
      expect(state.status).toBe('down');
      expect(state.detail).toMatch(/401.*Check the ServiceNow credentials/);
    } finally {
      await fake.stop();
    }
  });

  it('in demo mode runs the local fake behind the real client, with a webhook secret', async () => {
    const sn = (await startServiceNow(loadConfig({ PATCHOPS_DEMO: 'true' }), logger))!;
    try {
      expect(sn.demo).toBe(true);
      expect(sn.webhookSecret).toMatch(/^[0-9a-f]{32}$/);
      expect((await sn.health.check()).status).toBe('up');
      const ref = await sn.desk.open({
        cycleId: 'demo-1',
        type: 'normal',
        shortDescription: 's',
        description: 'd',
        risk: 'low',
        impact: 3,
        implementationPlan: 'i',
        backoutPlan: 'b',
        testPlan: 't',
        configurationItems: [],
      });
      expect((await sn.desk.get(ref.number))?.state).toBe('new');
      expect(sn.changeUrl(ref.number)).toContain(ref.number);
    } finally {
      await sn.stop();
    }
  });

  it('in demo mode runs an in-process SMTP server the real mailer reaches', async () => {
    const email = (await startEmail(loadConfig({ PATCHOPS_DEMO: 'true' }), logger))!;
    try {
      expect(email.recipients).toEqual(['change-managers@patchops.demo']);
      expect(await email.health.check()).toMatchObject({ status: 'up' });
    } finally {
      await email.stop();
    }
  });
});
