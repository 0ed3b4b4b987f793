/**
 * Composition of the chat part for `patchops up` / `worker` / `server`:
 * - createChatNotifier: the ChatNotifier the worker's activities post through (Slack and/or Teams, fanned out);
 * - createChatRoutes: POST /slack/events and POST /api/messages for the HTTP server (Teams only when configured:
 *   TEAMS_APP_ID, or TEAMS_EMULATOR=true for loopback callers; Slack when SLACK_BOT_TOKEN is set), or Slack Socket Mode.
 */
import type { CloudAdapter } from 'botbuilder';
import { LogChatNotifier } from '../activities/chat-log';
import type { Config } from '../config/index';
import type { Db } from '../db/client';
import type { ChatNotifier } from '../domain/ports';
import { createSlackWebClient, SlackChatChannel } from '../chat/slack/channel';
import { TeamsChatChannel } from '../chat/teams/channel';
import type { Logger } from '../logging';
import type { RouteModule } from '../shared/contracts';
import type { CycleService } from '../services/cycle-service';
import { createSlackBot } from '../chat/slack/app';
import { createTeamsAdapter, createTeamsBot, type TeamsAuthOptions } from '../chat/teams/bot';
import { serviceUrlPolicy, type ServiceUrlPolicy } from '../chat/teams/service-url';
import { CompositeChatNotifier } from '../chat/core/chat-notifier';
import { DecisionDesk } from '../chat/core/decisions';
import { createCommandRunner } from '../commands/runner';
import { PgDeliveryReceipts } from '../db/delivery-receipts';
import { SlackIdentityDirectory } from '../chat/slack/directory';

export interface ChatChannels {
  notifier: ChatNotifier;
  slack?: SlackChatChannel;
  /** Absent when Teams is off (neither TEAMS_APP_ID nor TEAMS_EMULATOR). */
  teams?: { channel: TeamsChatChannel; adapter: CloudAdapter; serviceUrlAllowed: ServiceUrlPolicy };
}

/**
 * `teamsAuth`: where Bot Framework tokens are checked against and app tokens come from, when not the public cloud's
 * (the demo's local issuer; see UpOptions.teamsAuth).
 */
export function createChatChannels(
  config: Pick<Config, 'slack' | 'teams'>,
  db: Db,
  logger: Logger,
  teamsAuth?: Pick<TeamsAuthOptions, 'cloud' | 'credentialsFactory'>,
): ChatChannels {
  const channels: Array<{ name: string; notifier: ChatNotifier }> = [];
  let teams: ChatChannels['teams'];
  if (config.teams.enabled) {
    const c = config.teams;
    const adapter = createTeamsAdapter(
      {
        appId: c.appId,
        appPassword: c.appPassword,
        tenantId: c.tenantId,
        emulator: c.mode === 'emulator',
        ...teamsAuth,
      },
      logger.child({ component: 'teams' }),
    );
    const serviceUrlAllowed = serviceUrlPolicy({ configured: c.serviceUrls, allowLoopback: c.mode === 'emulator' });
    const channel = new TeamsChatChannel({
      adapter,
      appId: c.appId,
      db,
      logger: logger.child({ component: 'teams' }),
      serviceUrlAllowed,
    });
    teams = { channel, adapter, serviceUrlAllowed };
    channels.push({ name: 'teams', notifier: channel });
  }
  let slack: SlackChatChannel | undefined;
  if (config.slack.enabled) {
    slack = new SlackChatChannel({
      client: createSlackWebClient(config.slack.botToken, config.slack.apiUrl, logger),
      db,
      logger: logger.child({ component: 'slack' }),
      defaultChannel: config.slack.defaultChannel,
    });
    channels.unshift({ name: 'slack', notifier: slack });
  }
  if (!slack && config.teams.mode !== 'jwt') {
    // Nothing real configured (no chat, or Teams in emulator mode only): keep what would have been said on record too.
    channels.push({ name: 'log', notifier: new LogChatNotifier(db, logger.child({ component: 'chat-log' })) });
  }
  return { notifier: new CompositeChatNotifier(channels), slack, teams };
}

export interface ChatFrontEnds {
  routes: RouteModule[];
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createChatFrontEnds(
  config: Pick<Config, 'slack' | 'teams'>,
  deps: { db: Db; service: CycleService; channels: ChatChannels; logger: Logger },
): ChatFrontEnds {
  const { db, service, channels, logger } = deps;
  const desk = new DecisionDesk({
    service,
    db,
    logger: logger.child({ component: 'chat-decisions' }),
    chat: channels.notifier,
  });
  // `people link slack:U…` records the person's e-mail from Slack's users.info when none is given.
  const directory = channels.slack ? new SlackIdentityDirectory(channels.slack.client) : undefined;
  const runCommand = createCommandRunner({ service, db, logger, ...(directory ? { directory } : {}) });
  const routes: RouteModule[] = [];
  if (channels.teams && config.teams.mode !== 'off') {
    const teamsBot = createTeamsBot({
      adapter: channels.teams.adapter,
      db,
      desk,
      runCommand,
      channel: channels.teams.channel,
      logger: logger.child({ component: 'teams' }),
      mode: config.teams.mode,
      serviceUrlAllowed: channels.teams.serviceUrlAllowed,
    });
    routes.push(teamsBot.routes);
  }
  let slackBot: ReturnType<typeof createSlackBot> | undefined;
  if (config.slack.enabled && channels.slack) {
    slackBot = createSlackBot({
      botToken: config.slack.botToken,
      signingSecret: config.slack.signingSecret,
      appToken: config.slack.appToken,
      apiUrl: config.slack.apiUrl,
      db,
      service,
      desk,
      runCommand,
      channel: channels.slack,
      logger: logger.child({ component: 'slack' }),
      receipts: new PgDeliveryReceipts(db),
    });
    if (slackBot.routes) routes.push(slackBot.routes);
  }
  return {
    routes,
    async start() {
      if (slackBot?.mode === 'socket') {
        await slackBot.start();
        logger.info('Slack: connected in Socket Mode');
      }
    },
    async stop() {
      await slackBot?.stop();
    },
  };
}
