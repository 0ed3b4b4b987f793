import type { Config } from '../config/index';
import type { HealthCheck } from '../shared/contracts';

export interface IntegrationState {
  name: 'slack' | 'teams' | 'servicenow' | 'email';
  label: string;
  configured: boolean;
  /** One line for the ready block: what it is, or how to turn it on. */
  summary: string;
  health: HealthCheck;
}

/**
 * What each integration is set to, from the config alone. Real reachability checks are added by the
 * integrations themselves (they replace `health` with one that calls the service).
 */
export function integrationStates(config: Config): IntegrationState[] {
  const off = (name: string, detail: string): HealthCheck => ({ name, check: async () => ({ status: 'off', detail }) });
  const configured = (name: string, detail: string): HealthCheck => ({
    name,
    check: async () => ({ status: 'up', detail }),
  });
  const slack = config.slack;
  const sn = config.serviceNow;
  return [
    slack.enabled
      ? {
          name: 'slack',
          label: 'Slack',
          configured: true,
          summary: `on (${slack.appToken ? 'Socket Mode' : 'HTTP at /slack/events'}${slack.apiUrl ? `, Web API ${slack.apiUrl}` : ''})`,
          health: configured('slack', 'configured'),
        }
      : {
          name: 'slack',
          label: 'Slack',
          configured: false,
          summary: 'off: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (app manifest in slack/manifest.yaml)',
          health: off('slack', 'SLACK_BOT_TOKEN not set'),
        },
    config.teams.mode === 'jwt'
      ? {
          name: 'teams',
          label: 'Teams',
          configured: true,
          summary: 'on (POST /api/messages, JWT validated)',
          health: configured('teams', 'configured'),
        }
      : {
          name: 'teams',
          label: 'Teams',
          configured: false,
          summary:
            config.teams.mode === 'emulator'
              ? 'emulator mode at POST /api/messages (TEAMS_EMULATOR=true: no JWT validation, loopback callers only)'
              : 'off: set TEAMS_APP_ID and TEAMS_APP_PASSWORD for Teams (or TEAMS_EMULATOR=true for a local Bot Framework Emulator)',
          health: off(
            'teams',
            config.teams.mode === 'emulator' ? 'emulator mode: loopback only' : 'TEAMS_APP_ID not set',
          ),
        },
    sn.enabled
      ? {
          name: 'servicenow',
          label: 'ServiceNow',
          configured: true,
          summary: `on (${sn.instanceUrl}, ${sn.auth.kind} auth)`,
          health: configured('servicenow', sn.instanceUrl),
        }
      : {
          name: 'servicenow',
          label: 'ServiceNow',
          configured: false,
          summary: config.demo
            ? 'demo: a local ServiceNow fake (in memory) behind the real client; its business rule calls /webhooks/servicenow'
            : 'off: set SERVICENOW_INSTANCE_URL with SERVICENOW_USERNAME/PASSWORD or CLIENT_ID/SECRET',
          health: off('servicenow', 'SERVICENOW_INSTANCE_URL not set'),
        },
    config.smtp.enabled
      ? {
          name: 'email',
          label: 'Email',
          configured: true,
          summary: `on (${redactSmtp(config.smtp.url ?? '')})`,
          health: configured('email', 'configured'),
        }
      : {
          name: 'email',
          label: 'Email',
          configured: false,
          summary: config.demo
            ? 'demo: an in-process SMTP server that logs what it receives'
            : 'off: set SMTP_URL and REPORT_RECIPIENTS',
          health: off('email', 'SMTP_URL not set'),
        },
  ];
}

function redactSmtp(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}
