/**
 * The Slack front-end: a Bolt app on our FastifySlackReceiver (HTTP mode, POST /slack/events), or on Bolt's
 * SocketModeReceiver when SLACK_APP_TOKEN is set. Every listener acks first; the work (database, Temporal)
 * happens after the ack and its outcome reaches the person ephemerally.
 */
import { App, LogLevel, type Logger as BoltLogger } from '@slack/bolt';
import type { Db } from '../../db/client';
import { CodedError, ErrorCode } from '../../domain/errors';
import { findChatMessageByRef } from '../../db/chat';
import { rolesOf } from '../../db/identities';
import { authorize } from '../../commands/authorize';
import type { Logger } from '../../logging';
import type { DeliveryReceipts, RouteModule } from '../../shared/contracts';
import type { CycleService } from '../../services/cycle-service';
import { slackRef, type SlackChatChannel } from './channel';
import { rejectModal, type SlackMessage } from '../core/blocks';
import { slackCommandReply } from './command-reply';
import { ACTION } from '../core/card';
import type { CommandRunner } from '../../commands/runner-types';
import type { DecisionDesk } from '../core/decisions';
import type { EmailLookup } from '../core/person-link';
import { slackUserEmail, type SlackUsersApi } from './directory';
import { patchHealth } from '../core/health';
import { homeView, noRoleHomeView } from './home';
import { FastifySlackReceiver } from './receiver';

export interface SlackBotOptions {
  botToken: string;
  signingSecret?: string;
  appToken?: string;
  apiUrl?: string;
  db: Db;
  service: CycleService;
  desk: DecisionDesk;
  runCommand: CommandRunner;
  /** For updating pause questions in place after Resume / Roll back. */
  channel: SlackChatChannel;
  logger: Logger;
  ackTimeoutMs?: number;
  /** Where delivery ids are remembered against Slack's retries (shared by every server in production). */
  receipts?: DeliveryReceipts;
  /**
   * Socket Mode: how long start() waits for Slack's hello before giving up. @slack/socket-mode itself retries an
   * unreachable Slack for a very long time, which would leave startup hanging without a word.
   */
  connectTimeoutMs?: number;
}

export interface SlackBot {
  app: App;
  receiver?: FastifySlackReceiver;
  /** Mount on the Fastify server (HTTP mode); undefined in Socket Mode. */
  routes?: RouteModule;
  mode: 'http' | 'socket';
  start(): Promise<void>;
  stop(): Promise<void>;
}

export const SLACK_COMMAND = '/patch';
export const REJECT_MODAL = 'patchops_reject_modal';

function boltLogger(logger: Logger): BoltLogger {
  let level = LogLevel.INFO;
  return {
    debug: (...m: unknown[]) => logger.debug(m.map(String).join(' ')),
    info: (...m: unknown[]) => logger.info(m.map(String).join(' ')),
    warn: (...m: unknown[]) => logger.warn(m.map(String).join(' ')),
    error: (...m: unknown[]) => logger.error(m.map(String).join(' ')),
    setLevel: (l: LogLevel) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => undefined,
  };
}

export function slackIdentity(userId: string): string {
  return `slack:${userId}`;
}

/**
 * The user's e-mail from Slack's `users.info` (`user.profile.email`; present only with the `users:read.email`
 * scope, so undefined without it), for linking the identity to its person (core/person-link.ts).
 */
export function slackEmailLookup(client: SlackUsersApi, userId: string): EmailLookup {
  return () => slackUserEmail(client, userId);
}

/**
 * Why Socket Mode could not start, said so that the operator can act: Slack's answer to apps.connections.open
 * (invalid_auth, not_allowed_token_type, …: @slack/socket-mode gives up on these) points at SLACK_APP_TOKEN;
 * anything else is the way to Slack.
 */
export function socketModeStartError(e: unknown, apiUrl: string | undefined): CodedError {
  const err = e as { code?: unknown; data?: { error?: unknown }; message?: unknown };
  if (err?.code === 'slack_webapi_platform_error' && typeof err.data?.error === 'string') {
    return new CodedError(
      ErrorCode.ConfigInvalid,
      `Slack refused the Socket Mode connection: apps.connections.open answered ${err.data.error}. SLACK_APP_TOKEN must be an app-level token (xapp-…) of this Slack app with the connections:write scope (Basic Information → App-Level Tokens) and Socket Mode must be on in the app's settings; or unset SLACK_APP_TOKEN to take Slack over HTTP at /slack/events.`,
      { cause: e },
    );
  }
  return new CodedError(
    ErrorCode.DependencyDown,
    `Slack Socket Mode could not connect: ${String(err?.message ?? e)}. Check that this host reaches ${apiUrl ?? 'https://slack.com/api/'} and Slack's WebSocket hosts (wss://*.slack.com, port 443).`,
    { cause: e, retryable: true },
  );
}

export function createSlackBot(o: SlackBotOptions): SlackBot {
  const logger = o.logger;
  const socket = Boolean(o.appToken);
  let receiver: FastifySlackReceiver | undefined;
  if (!socket) {
    if (!o.signingSecret)
      throw new Error(
        'SLACK_SIGNING_SECRET is not set: Slack requests cannot be verified. Set it, or set SLACK_APP_TOKEN for Socket Mode.',
      );
    receiver = new FastifySlackReceiver({
      signingSecret: o.signingSecret,
      logger,
      ackTimeoutMs: o.ackTimeoutMs,
      receipts: o.receipts,
    });
  }
  const app = new App({
    token: o.botToken,
    ...(socket ? { appToken: o.appToken, socketMode: true } : { receiver }),
    logger: boltLogger(logger),
    clientOptions: { slackApiUrl: o.apiUrl },
  });

  const ephemeral = async (channel: string | undefined, user: string, text: string) => {
    if (!channel) return;
    try {
      await app.client.chat.postEphemeral({ channel, user, text });
    } catch (err) {
      logger.warn({ err, channel, user }, 'chat.postEphemeral failed');
    }
  };

  // /patch <words>: admins' commands, the same grammar as the CLI.
  app.command(SLACK_COMMAND, async ({ command, ack, respond }) => {
    await ack();
    const caller = {
      identity: slackIdentity(command.user_id),
      channel: 'slack' as const,
      conversationId: command.channel_id,
    };
    let reply: SlackMessage;
    try {
      reply = slackCommandReply(await o.runCommand(command.text ?? '', caller));
    } catch (e) {
      logger.error({ err: e, text: command.text }, 'slash command failed');
      reply = { text: `That did not work: ${(e as Error).message}. Try \`${SLACK_COMMAND} help\`.`, blocks: [] };
    }
    await respond({
      response_type: 'ephemeral',
      text: reply.text,
      ...(reply.blocks.length ? { blocks: reply.blocks as never } : {}),
    }).catch((err: unknown) => logger.warn({ err }, 'response_url post failed'));
  });

  app.action(ACTION.approve, async ({ ack, body, action }) => {
    await ack();
    if (body.type !== 'block_actions' || action.type !== 'button') return;
    const user = body.user.id;
    const channel = body.channel?.id ?? body.container?.channel_id;
    const ts = body.message?.ts ?? body.container?.message_ts;
    const outcome = await o.desk.decide({
      cycleId: action.value ?? '',
      identity: slackIdentity(user),
      channel: 'slack',
      decision: 'approve',
      findEmail: slackEmailLookup(app.client, user),
      messageRef: channel && ts ? slackRef(channel, ts) : undefined,
    });
    await ephemeral(channel, user, outcome.text);
  });

  app.action(ACTION.reject, async ({ ack, body, action, client }) => {
    await ack();
    if (body.type !== 'block_actions' || action.type !== 'button') return;
    const channel = body.channel?.id ?? body.container?.channel_id;
    const ts = body.message?.ts ?? body.container?.message_ts;
    const cycleId = action.value ?? '';
    // views.open must happen within 3 s of the click (the trigger id expires): nothing before it.
    await client.views
      .open({
        trigger_id: body.trigger_id,
        view: rejectModal(cycleId, JSON.stringify({ cycleId, channel, ts })) as never,
      })
      .catch((err: unknown) => logger.warn({ err, cycleId }, 'views.open for the reject modal failed'));
  });

  app.view(REJECT_MODAL, async ({ ack, body, view }) => {
    const reason = view.state.values.reason?.reason?.value?.trim() ?? '';
    if (reason.length < 3) {
      await ack({
        response_action: 'errors',
        errors: { reason: 'Say why you reject it (at least a few words), so the requester can act on it.' },
      });
      return;
    }
    await ack();
    let meta: { cycleId?: string; channel?: string; ts?: string } = {};
    try {
      meta = JSON.parse(view.private_metadata) as typeof meta;
    } catch {
      logger.warn({ meta: view.private_metadata }, 'reject modal without readable metadata');
    }
    const user = body.user.id;
    const outcome = await o.desk.decide({
      cycleId: meta.cycleId ?? '',
      identity: slackIdentity(user),
      channel: 'slack',
      decision: 'reject',
      findEmail: slackEmailLookup(app.client, user),
      reason,
      messageRef: meta.channel && meta.ts ? slackRef(meta.channel, meta.ts) : undefined,
    });
    await ephemeral(meta.channel, user, outcome.text);
  });

  for (const [actionId, kind] of [
    [ACTION.resume, 'resume'],
    [ACTION.rollback, 'rollback'],
  ] as const) {
    app.action(actionId, async ({ ack, body, action }) => {
      await ack();
      if (body.type !== 'block_actions' || action.type !== 'button') return;
      const user = body.user.id;
      const channel = body.channel?.id ?? body.container?.channel_id;
      const ts = body.message?.ts ?? body.container?.message_ts;
      const ref = channel && ts ? slackRef(channel, ts) : undefined;
      const outcome = await o.desk.control({
        cycleId: action.value ?? '',
        identity: slackIdentity(user),
        channel: 'slack',
        action: kind,
        messageRef: ref,
      });
      if (outcome.ok && ref) {
        const stored = await findChatMessageByRef(o.db, 'slack', ref);
        if (stored)
          await o.channel
            .resolvePause(stored, { by: slackIdentity(user), action: kind, at: outcome.at })
            .catch((err: unknown) => logger.warn({ err }, 'updating the pause question failed'));
      }
      await ephemeral(channel, user, outcome.text);
    });
  }

  app.event('app_home_opened', async ({ event, client }) => {
    if (event.tab !== 'home') return;
    const identity = slackIdentity(event.user);
    try {
      // Patch health is what `status` and `report` show: the same role check (viewer) before anything is read.
      const roles = (await rolesOf(o.db, identity)).map((g) => g.role);
      const allowed = authorize('report', roles, identity);
      const view = allowed.ok
        ? homeView(await patchHealth(o.db, o.service, identity), roles.includes('approver'))
        : noRoleHomeView(identity);
      await client.views.publish({ user_id: event.user, view: view as never });
    } catch (err) {
      logger.warn({ err }, 'publishing the App Home failed');
    }
  });

  app.error(async (error) => {
    logger.error({ err: error }, 'Slack listener error');
  });

  return {
    app,
    receiver,
    routes: receiver?.routes(),
    mode: socket ? 'socket' : 'http',
    async start() {
      if (!socket) return;
      const ms = o.connectTimeoutMs ?? 30_000;
      const starting = app.start();
      starting.catch(() => undefined); // settled below, or abandoned after the timeout
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no connection within ${ms / 1000} s`)), ms);
      });
      try {
        await Promise.race([starting, timeout]);
      } catch (e) {
        await app.stop().catch(() => undefined);
        throw socketModeStartError(e, o.apiUrl);
      } finally {
        clearTimeout(timer);
      }
    },
    async stop() {
      if (socket) await app.stop();
    },
  };
}
