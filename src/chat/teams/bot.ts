/**
 * The Teams front-end: botbuilder 4.23 CloudAdapter mounted at POST /api/messages on our Fastify server.
 * Handles installs (stores the conversation reference for proactive messages), typed commands (the same
 * words as /patch), and the Adaptive Card `adaptiveCard/action` invokes (Action.Execute: Approve, Reject
 * with a reason, Resume, Roll back), answered with the updated card while every copy is updated with
 * updateActivity. The route is mounted only when Teams is configured: with TEAMS_APP_ID / TEAMS_APP_PASSWORD
 * every request's Bot Framework JWT is validated; emulator mode (TEAMS_EMULATOR=true, no JWTs) takes
 * requests from loopback addresses only. Either way an activity whose serviceUrl is not an allowed
 * connector (service-url.ts) is refused before anything runs, so no reply can be steered elsewhere.
 */
import {
  ActivityTypes,
  CloudAdapter,
  ConfigurationBotFrameworkAuthentication,
  StatusCodes,
  TeamsInfo,
  TurnContext,
  type Activity,
  type ConfigurationBotFrameworkAuthenticationOptions,
  type ConversationReference,
  type Response as BotResponse,
} from 'botbuilder';
import { AuthenticationError } from 'botframework-connector';
import type { FastifyInstance } from 'fastify';
import type { Db } from '../../db/client';
import { findChatMessageByRef, removeConversation, saveConversation } from '../../db/chat';
import type { TeamsChatChannel } from './channel';
import type { Logger } from '../../logging';
import { CodedError, ErrorCode } from '../../domain/errors';
import type { RouteModule } from '../../shared/contracts';
import { ADAPTIVE_CARD_CONTENT_TYPE, approvalAdaptiveCard, messageCard, type AdaptiveCard } from '../core/adaptive';
import { ACTION, type ApprovalCardModel } from '../core/card';
import type { CommandRunner } from '../../commands/runner-types';
import type { DecisionDesk } from '../core/decisions';
import type { EmailLookup } from '../core/person-link';
import { teamsCommandReply } from './command-reply';
import { isLoopbackAddress, type ServiceUrlPolicy } from './service-url';

/**
 * botbuilder's own endpoint settings, all of them: once one is given botbuilder takes every endpoint from
 * these (BotFrameworkAuthenticationFactory), so a partial set would leave the others undefined.
 */
export type TeamsCloudSettings = Required<
  Pick<
    ConfigurationBotFrameworkAuthenticationOptions,
    | 'ToBotFromChannelOpenIdMetadataUrl'
    | 'ToBotFromChannelTokenIssuer'
    | 'ToChannelFromBotLoginUrl'
    | 'ToChannelFromBotOAuthScope'
    | 'ToBotFromEmulatorOpenIdMetadataUrl'
    | 'OAuthUrl'
    | 'CallerId'
  >
>;

type CredentialsFactory = NonNullable<ConstructorParameters<typeof ConfigurationBotFrameworkAuthentication>[1]>;

export interface TeamsAuthOptions {
  appId?: string;
  /**
   * No JWT validation (the Bot Framework Emulator). Must be asked for: without an appId and without this,
   * createTeamsAdapter refuses, so a missing TEAMS_APP_ID can never mean "accept anyone".
   */
  emulator?: boolean;
  appPassword?: string;
  tenantId?: string;
  /**
   * Where incoming tokens are validated against (OpenID metadata, issuer) and outgoing ones are asked for.
   * Unset: botbuilder's public-cloud defaults (login.botframework.com, api.botframework.com). The tests
   * point the OpenID metadata at a local issuer (test/fakes/bot-framework-issuer.ts).
   */
  cloud?: TeamsCloudSettings;
  /**
   * Where the bot's own app tokens (for replies) come from. Unset: botbuilder's
   * ConfigurationServiceClientCredentialFactory over appId / appPassword / tenantId (MSAL,
   * login.microsoftonline.com). It also answers which app id incoming tokens must be for.
   */
  credentialsFactory?: CredentialsFactory;
}

/** jsonwebtoken's refusals that botbuilder lets through as they are (TokenExpiredError it maps itself). */
const JWT_REFUSALS = new Set(['JsonWebTokenError', 'NotBeforeError', 'TokenExpiredError']);

/**
 * botbuilder's authentication, except that a token failing jsonwebtoken's checks (a bad signature under a
 * published key id, not valid yet) is a 401 like every other refusal: botbuilder lets those errors through
 * and CloudAdapter answers anything but an AuthenticationError with 500.
 */
class TeamsBotFrameworkAuthentication extends ConfigurationBotFrameworkAuthentication {
  override async authenticateRequest(activity: Activity, authHeader: string) {
    try {
      return await super.authenticateRequest(activity, authHeader);
    } catch (e) {
      if (e instanceof Error && JWT_REFUSALS.has(e.name))
        throw new AuthenticationError(`Unauthorized. ${e.message}`, StatusCodes.UNAUTHORIZED);
      throw e;
    }
  }
}

/** The CloudAdapter: JWT validation with app credentials, or local/emulator mode without them. */
export function createTeamsAdapter(o: TeamsAuthOptions, logger: Logger): CloudAdapter {
  if (!o.appId && !o.emulator) {
    throw new CodedError(
      ErrorCode.ConfigInvalid,
      'Teams needs TEAMS_APP_ID and TEAMS_APP_PASSWORD to validate requests (or TEAMS_EMULATOR=true for a local emulator).',
    );
  }
  if (o.appId && o.emulator)
    throw new CodedError(ErrorCode.ConfigInvalid, 'Teams emulator mode takes no TEAMS_APP_ID: unset one of them.');
  const auth = new TeamsBotFrameworkAuthentication(
    o.appId
      ? {
          MicrosoftAppId: o.appId,
          MicrosoftAppPassword: o.appPassword,
          MicrosoftAppTenantId: o.tenantId,
          MicrosoftAppType: o.tenantId ? 'SingleTenant' : 'MultiTenant',
          ...o.cloud,
        }
      : {},
    o.credentialsFactory,
  );
  const adapter = new CloudAdapter(auth);
  adapter.onTurnError = async (context, error) => {
    logger.error({ err: error, type: context.activity.type }, 'Teams turn failed');
    if (context.activity.type === ActivityTypes.Message) {
      await context
        .sendActivity('Something went wrong on our side; the error is logged. Try again, or type `help`.')
        .catch(() => undefined);
    }
  };
  return adapter;
}

export function teamsIdentity(from: { id?: string } | undefined): string {
  return `teams:${from?.id ?? 'unknown'}`;
}

/**
 * The member's e-mail from the Teams roster (`TeamsInfo.getMember`: the connector's
 * GET /v3/conversations/{id}/members/{memberId}; `email`, else a `userPrincipalName` that is an address), for
 * linking the identity to its person (core/person-link.ts).
 */
export function teamsEmailLookup(context: TurnContext): EmailLookup {
  return async () => {
    const from = context.activity.from;
    if (!from?.id) return undefined;
    const member = await TeamsInfo.getMember(context, from.id);
    const upn = member.userPrincipalName;
    return member.email || (upn && upn.includes('@') ? upn : undefined);
  };
}

export interface TeamsBotOptions {
  adapter: CloudAdapter;
  db: Db;
  desk: DecisionDesk;
  runCommand: CommandRunner;
  channel: TeamsChatChannel;
  logger: Logger;
  /** `jwt`: the adapter validates Bot Framework JWTs. `emulator`: it does not, so only loopback callers are served. */
  mode: 'jwt' | 'emulator';
  /** Which serviceUrls replies may go to; an activity naming another is refused (403) before it runs. */
  serviceUrlAllowed: ServiceUrlPolicy;
}

interface ExecuteValue {
  action?: { type?: string; verb?: string; data?: Record<string, unknown> };
}

export function createTeamsBot(o: TeamsBotOptions) {
  const logger = o.logger;

  const invokeResponse = async (context: TurnContext, card: AdaptiveCard) => {
    await context.sendActivity({
      type: ActivityTypes.InvokeResponse,
      value: { status: 200, body: { statusCode: 200, type: ADAPTIVE_CARD_CONTENT_TYPE, value: card } },
    });
  };

  async function onExecute(context: TurnContext): Promise<void> {
    const value = (context.activity.value ?? {}) as ExecuteValue;
    const verb = value.action?.verb;
    const data = value.action?.data ?? {};
    const cycleId = typeof data.cycleId === 'string' ? data.cycleId : '';
    const identity = teamsIdentity(context.activity.from);
    const cardRef = context.activity.replyToId;
    const stored = cardRef ? await findChatMessageByRef(o.db, 'teams', cardRef) : null;

    if (verb === ACTION.approve || verb === ACTION.reject) {
      const reason = typeof data.reason === 'string' ? data.reason.trim() : '';
      const outcome = await o.desk.decide({
        cycleId,
        identity,
        channel: 'teams',
        decision: verb === ACTION.approve ? 'approve' : 'reject',
        reason: reason || undefined,
        messageRef: cardRef,
        findEmail: teamsEmailLookup(context),
      });
      // Re-read: the decision desk updated the stored model (and every copy of the card) already.
      const fresh = cardRef ? await findChatMessageByRef(o.db, 'teams', cardRef) : null;
      const model = (fresh?.model ?? stored?.model) as ApprovalCardModel | null | undefined;
      const card = model
        ? approvalAdaptiveCard(model, { text: outcome.text, isError: !outcome.ok })
        : messageCard([outcome.text]);
      await invokeResponse(context, card);
      return;
    }
    if (verb === ACTION.resume || verb === ACTION.rollback) {
      const action = verb === ACTION.resume ? 'resume' : 'rollback';
      const outcome = await o.desk.control({ cycleId, identity, channel: 'teams', action, messageRef: cardRef });
      let card: AdaptiveCard | undefined;
      if (outcome.ok && stored)
        card = await o.channel.resolvePause(stored, { by: identity, action, at: outcome.at }).catch(() => undefined);
      await invokeResponse(
        context,
        card
          ? {
              ...card,
              body: [...(card.body as unknown[]), { type: 'TextBlock', text: outcome.text, wrap: true, color: 'Good' }],
            }
          : messageCard([outcome.text]),
      );
      return;
    }
    await invokeResponse(context, messageCard([`Unknown action "${verb ?? ''}".`]));
  }

  async function remember(context: TurnContext, kind?: string) {
    const a = context.activity;
    await saveConversation(o.db, {
      platform: 'teams',
      conversationId: a.conversation.id,
      kind: kind ?? a.conversation.conversationType ?? 'personal',
      // Without activityId: proactive posts are new messages, not replies to the install event.
      reference: referenceWithoutActivity(TurnContext.getConversationReference(a)),
      tenantId:
        a.conversation.tenantId ?? (a.channelData as { tenant?: { id?: string } } | undefined)?.tenant?.id ?? null,
      installedBy: teamsIdentity(a.from),
    });
  }

  async function logic(context: TurnContext): Promise<void> {
    const a = context.activity;
    switch (a.type) {
      case ActivityTypes.Invoke:
        if (a.name === 'adaptiveCard/action') return onExecute(context);
        await context.sendActivity({ type: ActivityTypes.InvokeResponse, value: { status: 200, body: {} } });
        return;
      case ActivityTypes.InstallationUpdate: {
        const action = (a as Activity & { action?: string }).action ?? '';
        if (action.startsWith('remove')) {
          await removeConversation(o.db, 'teams', a.conversation.id);
        } else {
          await remember(context);
          await context.sendActivity(
            'patchops is installed here: approval cards and cycle updates will be posted to this conversation. Type `help` for commands.',
          );
        }
        return;
      }
      case ActivityTypes.ConversationUpdate:
        if (a.membersAdded?.some((m) => m.id === a.recipient?.id)) {
          await remember(context);
          await context.sendActivity(
            'patchops is here: approval cards and cycle updates will be posted to this conversation. Type `help` for commands.',
          );
        }
        if (a.membersRemoved?.some((m) => m.id === a.recipient?.id))
          await removeConversation(o.db, 'teams', a.conversation.id);
        return;
      case ActivityTypes.Message: {
        const text = (TurnContext.removeRecipientMention(a) ?? a.text ?? '').trim();
        if (!text) return;
        let reply: Partial<Activity>;
        try {
          reply = teamsCommandReply(
            await o.runCommand(text, {
              identity: teamsIdentity(a.from),
              channel: 'teams',
              conversationId: a.conversation.id,
            }),
          );
        } catch (e) {
          logger.error({ err: e, text }, 'Teams command failed');
          reply = {
            type: 'message',
            text: `That did not work: ${(e as Error).message}. Type \`help\` for the commands.`,
            textFormat: 'markdown',
          };
        }
        await context.sendActivity(reply);
        return;
      }
      default:
        return;
    }
  }

  const routes: RouteModule = async (app: FastifyInstance) => {
    if (o.mode === 'emulator') {
      logger.warn(
        'Teams: emulator mode at POST /api/messages (TEAMS_EMULATOR=true): requests are NOT authenticated and are taken from loopback addresses only',
      );
    } else {
      logger.info('Teams: POST /api/messages, Bot Framework JWTs validated');
    }
    app.post('/api/messages', async (req, reply) => {
      // req.ip is the socket address unless TRUST_PROXY names the proxy in front (then the client it forwards for).
      if (o.mode === 'emulator' && !isLoopbackAddress(req.ip)) {
        throw new CodedError(
          ErrorCode.Forbidden,
          'Teams emulator mode takes requests from this machine only; set TEAMS_APP_ID and TEAMS_APP_PASSWORD to take them from Teams.',
        );
      }
      const body = req.body;
      if (
        !body ||
        typeof body !== 'object' ||
        Array.isArray(body) ||
        typeof (body as { type?: unknown }).type !== 'string'
      ) {
        throw new CodedError(ErrorCode.InvalidInput, 'expected a Bot Framework activity: a JSON object with a "type"');
      }
      const serviceUrl = (body as { serviceUrl?: unknown }).serviceUrl;
      if (!o.serviceUrlAllowed(serviceUrl)) {
        logger.warn(
          { serviceUrl: String(serviceUrl).slice(0, 200), ip: req.ip },
          'refused a Teams activity whose serviceUrl is not an allowed connector',
        );
        throw new CodedError(
          ErrorCode.Forbidden,
          "the activity's serviceUrl is not a Bot Framework Teams connector (smba.trafficmanager.net or a government cloud) nor one in TEAMS_SERVICE_URLS",
        );
      }
      const res = new CollectingResponse();
      await o.adapter.process(
        { body: body as Record<string, unknown>, headers: req.headers as Record<string, string>, method: 'POST' },
        res,
        logic,
      );
      reply.code(res.statusCode);
      for (const [k, v] of Object.entries(res.headers)) reply.header(k, v);
      return reply.send(res.body ?? '');
    });
  };

  return { logic, routes };
}

function referenceWithoutActivity(ref: Partial<ConversationReference>): Record<string, unknown> {
  const copy: Partial<ConversationReference> = { ...ref };
  delete copy.activityId;
  return copy as Record<string, unknown>;
}

/** The botbuilder Response shape over a buffer we hand to Fastify afterwards. */
class CollectingResponse implements BotResponse {
  socket: unknown = null;
  statusCode = 200;
  body: unknown;
  headers: Record<string, string> = {};
  end(...args: unknown[]): unknown {
    if (args.length && args[0] !== undefined && this.body === undefined) this.body = args[0];
    return this;
  }
  header(name: string, value: unknown): unknown {
    this.headers[name] = String(value);
    return this;
  }
  send(...args: unknown[]): unknown {
    this.body = args[0];
    return this;
  }
  status(code: number): unknown {
    this.statusCode = code;
    return this;
  }
}
