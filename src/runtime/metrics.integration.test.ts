/** The metrics endpoint as Prometheus scrapes it: HTTP routes by pattern, activities by outcome, database gauges. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActivityExecuteInput, Next, ActivityInboundCallsInterceptor } from '@temporalio/worker';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db';
import { agentJobs, endpoints, patchCycles } from '../db/schema/index';
import { createLogger } from '../logging';
import { buildServer } from '../server/app';
import { createMetrics, parseAddress, startMetricsServer } from './metrics';

describe('Prometheus metrics', () => {
  let t: TestDatabase;
  const logger = createLogger('silent');

  beforeAll(async () => {
    t = await createTestDatabase();
    await t.db.insert(endpoints).values([{ id: 'e1', machineId: 'm1', hostname: 'e1', osFamily: 'linux' }]);
    await t.db.insert(agentJobs).values([
      { id: 'j1', endpointId: 'e1', kind: 'install', state: 'queued' },
      { id: 'j2', endpointId: 'e1', kind: 'install', state: 'queued' },
      { id: 'j3', endpointId: 'e1', kind: 'scan', state: 'leased' },
      { id: 'j4', endpointId: 'e1', kind: 'install', state: 'succeeded' },
    ]);
    await t.db.insert(patchCycles).values([
      {
        id: 'PC-1',
        workflowId: 'w1',
        policyName: 'default',
        policyVersion: 1,
        stage: 'AWAIT_APPROVAL',
        requestedBy: 'web:alice',
      },
      {
        id: 'PC-2',
        workflowId: 'w2',
        policyName: 'default',
        policyVersion: 1,
        stage: 'COMPLETED',
        requestedBy: 'web:alice',
      },
    ]);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('counts requests by route pattern, activities by outcome, and reads outstanding jobs and live cycles', async () => {
    const metrics = createMetrics({ db: t.db, logger });
    const app = await buildServer({
      logger,
      health: [],
      observe: metrics.observeHttp,
      routes: [(a) => void a.get('/agent/v1/jobs/:id', async () => ({ ok: true }))],
    });
    await app.inject({ method: 'GET', url: '/agent/v1/jobs/abc' });
    await app.inject({ method: 'GET', url: '/agent/v1/jobs/def' });
    await app.inject({ method: 'GET', url: '/nowhere' });
    await app.close();

    const interceptor = metrics.activityInterceptor({ info: { activityType: 'dispatchWave' } } as never)
      .inbound as Required<ActivityInboundCallsInterceptor>;
    const input = { args: [], headers: {} } as ActivityExecuteInput;
    await interceptor.execute(input, (async () => 'ok') as Next<ActivityInboundCallsInterceptor, 'execute'>);
    await expect(
      interceptor.execute(input, (async () => Promise.reject(new Error('boom'))) as Next<
        ActivityInboundCallsInterceptor,
        'execute'
      >),
    ).rejects.toThrow('boom');

    const endpoint = await startMetricsServer(metrics, '127.0.0.1:0', logger);
    try {
      const res = await fetch(endpoint.url);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/plain');
      const body = await res.text();
      expect(body).toContain('patchops_http_requests_total{route="/agent/v1/jobs/:id",method="GET",status="200"} 2');
      expect(body).toContain('patchops_http_requests_total{route="unmatched",method="GET",status="404"} 1');
      expect(body).toContain('patchops_activity_executions_total{activity="dispatchWave",outcome="completed"} 1');
      expect(body).toContain('patchops_activity_executions_total{activity="dispatchWave",outcome="failed"} 1');
      expect(body).toContain('patchops_agent_jobs{kind="install",state="queued"} 2');
      expect(body).toContain('patchops_agent_jobs{kind="scan",state="leased"} 1');
      expect(body).not.toContain('state="succeeded"');
      expect(body).toContain('patchops_cycles_active{stage="AWAIT_APPROVAL"} 1');
      expect(body).not.toContain('stage="COMPLETED"');
      expect(body).toMatch(/process_open_fds \d+/);
      expect((await fetch(endpoint.url.replace('/metrics', '/other'))).status).toBe(404);
    } finally {
      await endpoint.stop();
    }
  });

  it('parses host:port and refuses anything else', () => {
    expect(parseAddress('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseAddress('[::1]:9464')).toEqual({ host: '::1', port: 9464 });
    expect(() => parseAddress('9464')).toThrow(/host:port/);
  });
});
