/**
 * Signs requests exactly as Slack does (v0 HMAC-SHA256 over `v0:{timestamp}:{body}`) and builds payloads in
 * Slack's documented shapes: slash commands as a form body, interactivity as a `payload=` JSON form field.
 * https://api.slack.com/authentication/verifying-requests-from-slack
 */
import { randomBytes } from 'node:crypto';
import { signedSlackHeaders, slackSignature } from '../../src/chat/slack/signing';

export { slackSignature };

export function signedHeaders(
  secret: string,
  body: string,
  options: { timestamp?: number; contentType?: string; retryNum?: number } = {},
): Record<string, string> {
  const headers = signedSlackHeaders(secret, body, options);
  if (options.retryNum !== undefined) {
    headers['x-slack-retry-num'] = String(options.retryNum);
    headers['x-slack-retry-reason'] = 'http_timeout';
  }
  return headers;
}

const TEAM = { id: 'T0TEAM0001', domain: 'fake' };
const id = (prefix: string) => `${prefix}${randomBytes(5).toString('hex').toUpperCase()}`;

/** A slash command as Slack posts it (application/x-www-form-urlencoded). */
export function slashCommandBody(o: {
  userId: string;
  text: string;
  channelId?: string;
  responseUrl: string;
  command?: string;
}): string {
  return new URLSearchParams({
    token: 'deprecated-verification-token',
    team_id: TEAM.id,
    team_domain: TEAM.domain,
    channel_id: o.channelId ?? 'C0PATCHING',
    channel_name: 'patching',
    user_id: o.userId,
    user_name: o.userId.toLowerCase(),
    command: o.command ?? '/patch',
    text: o.text,
    api_app_id: 'A0PATCHOPS',
    is_enterprise_install: 'false',
    response_url: o.responseUrl,
    trigger_id: `${Date.now()}.${id('')}`,
  }).toString();
}

/** A block_actions payload for a button click on a message. */
export function blockActionsBody(o: {
  userId: string;
  actionId: string;
  value: string;
  channelId: string;
  messageTs: string;
  actionTs?: string;
  responseUrl?: string;
}): string {
  const payload = {
    type: 'block_actions',
    user: { id: o.userId, username: o.userId.toLowerCase(), name: o.userId.toLowerCase(), team_id: TEAM.id },
    api_app_id: 'A0PATCHOPS',
    token: 'deprecated-verification-token',
    container: { type: 'message', message_ts: o.messageTs, channel_id: o.channelId, is_ephemeral: false },
    trigger_id: `${Date.now()}.${id('')}`,
    team: TEAM,
    enterprise: null,
    is_enterprise_install: false,
    channel: { id: o.channelId, name: 'patching' },
    message: { type: 'message', ts: o.messageTs, text: 'approval', user: 'U0BOT00001', bot_id: 'B0BOT00001' },
    state: { values: {} },
    response_url: o.responseUrl ?? 'https://hooks.slack.com/actions/T0TEAM0001/1/x',
    actions: [
      {
        action_id: o.actionId,
        block_id: 'patchops_approval',
        text: { type: 'plain_text', text: o.actionId, emoji: true },
        value: o.value,
        type: 'button',
        action_ts: o.actionTs ?? `${(Date.now() / 1000).toFixed(6)}`,
      },
    ],
  };
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

/** A view_submission payload for a modal with a `reason` input. */
export function viewSubmissionBody(o: {
  userId: string;
  callbackId: string;
  privateMetadata: string;
  reason: string;
  viewId?: string;
}): string {
  const payload = {
    type: 'view_submission',
    team: TEAM,
    user: { id: o.userId, username: o.userId.toLowerCase(), name: o.userId.toLowerCase(), team_id: TEAM.id },
    api_app_id: 'A0PATCHOPS',
    token: 'deprecated-verification-token',
    trigger_id: `${Date.now()}.${id('')}`,
    view: {
      id: o.viewId ?? id('V'),
      team_id: TEAM.id,
      type: 'modal',
      callback_id: o.callbackId,
      private_metadata: o.privateMetadata,
      hash: `${Date.now()}.abc`,
      state: { values: { reason: { reason: { type: 'plain_text_input', value: o.reason } } } },
    },
    response_urls: [],
    is_enterprise_install: false,
  };
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

/** An Events API callback (JSON). */
export function eventCallbackBody(event: Record<string, unknown>, eventId = id('Ev')): string {
  return JSON.stringify({
    token: 'deprecated-verification-token',
    team_id: TEAM.id,
    api_app_id: 'A0PATCHOPS',
    event,
    type: 'event_callback',
    event_id: eventId,
    event_time: Math.floor(Date.now() / 1000),
    authorizations: [{ team_id: TEAM.id, user_id: 'U0BOT00001', is_bot: true }],
  });
}
