/**
 * What `patchops up` needs from ServiceNow: the change desk, the webhook secret and a real health check.
 * With SERVICENOW_INSTANCE_URL set: the real instance. In demo mode (PATCHOPS_DEMO=true) without it: the
 * local ServiceNow fake on 127.0.0.1, reached through the same client and change desk (the product path
 * stays the real one). Otherwise null: ServiceNow is off.
 */
import { randomBytes } from 'node:crypto';
import type { Config } from '../../config/index';
import type { Logger } from '../../logging';
import type { HealthCheck } from '../../shared/contracts';
import { ServiceNowChangeDesk } from './change-desk';
import { ServiceNowClient, type ServiceNowAuth } from './client';

export interface ServiceNowRuntime {
  desk: ServiceNowChangeDesk;
  instanceUrl: string;
  webhookSecret: string | undefined;
  health: HealthCheck;
  demo: boolean;
  /** SERVICENOW_WAVE_TASKS: a change task per wave. */
  waveTasks: boolean;
  /** A link to a change by number (for emails). */
  changeUrl(changeNumber: string): string;
  /** Called once the HTTP server listens: the demo fake then calls the webhook like the business rule would. */
  serverListening(serverUrl: string): void;
  stop(): Promise<void>;
}

export async function startServiceNow(config: Config, logger: Logger): Promise<ServiceNowRuntime | null> {
  const log = logger.child({ component: 'servicenow' });
  let instanceUrl: string;
  let auth: ServiceNowAuth;
  let webhookSecret = config.serviceNow.webhookSecret;
  let assignmentGroup: string | undefined;
  let stop = async () => undefined as void;
  let serverListening = (_url: string) => undefined as void;
  let demo = false;
  let waveTasks = false;

  if (config.serviceNow.enabled) {
    instanceUrl = config.serviceNow.instanceUrl;
    auth = config.serviceNow.auth;
    assignmentGroup = config.serviceNow.assignmentGroup;
    waveTasks = config.serviceNow.waveTasks;
  } else if (config.demo) {
    // The fake is test code: loaded only in explicit demo mode.
    const { ServiceNowFake } = await import('../../../test/fakes/servicenow');
    const fake = new ServiceNowFake({ users: [{ username: 'admin', password: 'admin' }] });
    instanceUrl = await fake.start();
    fake.seedGroup('Patch Management');
    fake.seedStandardTemplate('Monthly OS patching', { short_description: 'Monthly OS patching (pre-approved)' });
    auth = { kind: 'basic', username: 'admin', password: 'admin' };
    assignmentGroup = 'Patch Management';
    webhookSecret ??= randomBytes(16).toString('hex');
    const secret = webhookSecret;
    serverListening = (url) => {
      fake.webhook = { url: `${url}/webhooks/servicenow`, secret };
    };
    stop = () => fake.stop();
    demo = true;
    waveTasks = true;
    log.info({ instanceUrl }, 'demo: local ServiceNow fake started (changes live in memory)');
  } else {
    return null;
  }

  const client = new ServiceNowClient({ instanceUrl, auth, logger: log });
  const desk = new ServiceNowChangeDesk({ client, logger: log, ...(assignmentGroup ? { assignmentGroup } : {}) });
  return {
    desk,
    instanceUrl,
    webhookSecret,
    demo,
    waveTasks,
    health: cachedHealth('servicenow', async () => {
      await desk.ping();
      return `${instanceUrl}${demo ? ' (demo fake)' : ''}, ${auth.kind} auth`;
    }),
    changeUrl: (n) => `${instanceUrl}/nav_to.do?uri=change_request.do?sysparm_query=number=${encodeURIComponent(n)}`,
    serverListening: (url) => serverListening(url),
    stop,
  };
}

/** A health check that calls the service at most every `ttlMs` (/healthz may be polled often). */
export function cachedHealth(name: string, probe: () => Promise<string>, ttlMs = 30_000): HealthCheck {
  let last: { at: number; state: { status: 'up' | 'down'; detail: string } } | undefined;
  return {
    name,
    async check() {
      if (last && Date.now() - last.at < ttlMs) return last.state;
      try {
        last = { at: Date.now(), state: { status: 'up', detail: await probe() } };
      } catch (e) {
        last = { at: Date.now(), state: { status: 'down', detail: (e as Error).message } };
      }
      return last.state;
    },
  };
}
