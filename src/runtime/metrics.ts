/**
 * Prometheus metrics of one patchops process (`patchops up`, `server` or `worker`), served at
 * `http://METRICS_ADDRESS/metrics` when METRICS_ADDRESS is set:
 *
 * - `patchops_http_requests_total` / `patchops_http_request_duration_seconds` by route, method and status: agent
 *   polls are `route="/agent/v1/jobs"`, results `/agent/v1/jobs/:id/result`, Slack `/slack/events`, and so on;
 * - `patchops_activity_executions_total` / `patchops_activity_duration_seconds` by activity and outcome
 *   (`completed` | `failed`), counted around every activity this process's worker runs;
 * - `patchops_agent_jobs` (outstanding jobs by kind and state) and `patchops_cycles_active` (cycles not ended, by
 *   stage), read from the database at scrape time;
 * - `patchops_webhook_deliveries_total` by outcome (`delivered` | `retrying` | `failed`): webhook delivery
 *   attempts this process made;
 * - Node's own (`process_*`, `nodejs_*`): open file descriptors against the limit, event-loop lag, heap.
 *
 * The Temporal SDK's metrics (task slots, poll latencies, workflow and activity failures as the SDK sees them)
 * come from the SDK's own exporter at TEMPORAL_METRICS_ADDRESS (installed with the runtime, src/logging.ts).
 */
import http from 'node:http';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Db } from '../db/client';
import { operationalCounts } from '../db/metrics';
import type { Logger } from '../logging';

export interface Metrics {
  registry: Registry;
  /** One HTTP request answered (the server's onResponse hook). */
  observeHttp(route: string, method: string, status: number, seconds: number): void;
  /** Worker interceptor counting every activity execution and its outcome. */
  activityInterceptor: ActivityInterceptorsFactory;
  /** One webhook delivery attempt and its outcome (src/webhooks/deliverer.ts). */
  observeWebhookDelivery(outcome: 'delivered' | 'retrying' | 'failed'): void;
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export function createMetrics(o: { db?: Db; logger?: Logger } = {}): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'patchops_http_requests_total',
    help: 'HTTP requests answered, by route, method and status',
    labelNames: ['route', 'method', 'status'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'patchops_http_request_duration_seconds',
    help: 'Time to answer an HTTP request (long polls include the time held)',
    labelNames: ['route', 'method'],
    buckets: SECONDS,
    registers: [registry],
  });
  const activities = new Counter({
    name: 'patchops_activity_executions_total',
    help: 'Activity executions by this worker, by activity and outcome',
    labelNames: ['activity', 'outcome'],
    registers: [registry],
  });
  const activityTime = new Histogram({
    name: 'patchops_activity_duration_seconds',
    help: 'Activity execution time',
    labelNames: ['activity'],
    buckets: SECONDS,
    registers: [registry],
  });
  const webhookDeliveries = new Counter({
    name: 'patchops_webhook_deliveries_total',
    help: 'Webhook delivery attempts by this process, by outcome (delivered, retrying, failed)',
    labelNames: ['outcome'],
    registers: [registry],
  });
  if (o.db) {
    const db = o.db;
    const jobs = new Gauge({
      name: 'patchops_agent_jobs',
      help: 'Outstanding agent jobs (queued, leased, held), by kind and state',
      labelNames: ['kind', 'state'],
      registers: [registry],
      collect: () => refresh(),
    });
    const cycles = new Gauge({
      name: 'patchops_cycles_active',
      help: 'Patch cycles that have not ended, by stage',
      labelNames: ['stage'],
      registers: [registry],
      collect: () => refresh(),
    });
    // One query per scrape feeds both gauges; a failed query leaves them empty and is logged, the scrape still answers.
    let pending: Promise<void> | null = null;
    const refresh = (): Promise<void> =>
      (pending ??= operationalCounts(db)
        .then((c) => {
          jobs.reset();
          for (const r of c.jobs) jobs.set({ kind: r.kind, state: r.state }, r.count);
          cycles.reset();
          for (const r of c.cycles) cycles.set({ stage: r.stage }, r.count);
        })
        .catch((err: unknown) => {
          jobs.reset();
          cycles.reset();
          o.logger?.warn({ err }, 'metrics: the database counts could not be read');
        })
        .finally(() => {
          pending = null;
        }));
  }
  return {
    registry,
    observeHttp(route, method, status, seconds) {
      requests.inc({ route, method, status: String(status) });
      latency.observe({ route, method }, seconds);
    },
    observeWebhookDelivery(outcome) {
      webhookDeliveries.inc({ outcome });
    },
    activityInterceptor: (ctx) => ({
      inbound: {
        async execute(input, next) {
          const activity = ctx.info.activityType;
          const end = activityTime.startTimer({ activity });
          try {
            const result = await next(input);
            activities.inc({ activity, outcome: 'completed' });
            return result;
          } catch (e) {
            activities.inc({ activity, outcome: 'failed' });
            throw e;
          } finally {
            end();
          }
        },
      },
    }),
  };
}

/** Serves GET /metrics on `address` (host:port). Returns the URL and a stop function. */
export async function startMetricsServer(
  metrics: Metrics,
  address: string,
  logger: Logger,
): Promise<{ url: string; stop: () => Promise<void> }> {
  const { host, port } = parseAddress(address);
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('metrics are at /metrics\n');
      return;
    }
    metrics.registry
      .metrics()
      .then((body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body))
      .catch((err: unknown) => {
        logger.warn({ err }, 'metrics scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics could not be collected; see the log\n');
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address();
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${typeof a === 'object' && a ? a.port : port}/metrics`;
  return { url, stop: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

export function parseAddress(address: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address.trim());
  if (!m) throw new Error(`expected host:port for a metrics address, such as 127.0.0.1:9464 (got "${address}")`);
  return { host: m[1] ?? m[2]!, port: Number(m[3]) };
}
