/**
 * A local fake of the Slack Web API over HTTP (point SLACK_API_URL / slackApiUrl at `url`). It records
 * every call and answers with Slack's documented response shapes. Also accepts response_url posts at
 * `${responseUrlBase}<id>`. Used in tests and demo mode only.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody } from './http-body';

export interface SlackApiCall {
  method: string;
  args: Record<string, unknown>;
  token?: string;
  /** What the fake answered (e.g. the `ts` of a posted message, as the bot saw it). */
  answer?: Record<string, unknown>;
  at: number;
}

export interface FakeSlackApi {
  /** Web API base, ends with `/api/`. */
  url: string;
  /** Base for response_url values in slash-command payloads. */
  responseUrlBase: string;
  calls: SlackApiCall[];
  callsTo(method: string): SlackApiCall[];
  /** Resolves when `n` calls of `method` have been recorded (or rejects after `timeoutMs`). */
  waitFor(method: string, n?: number, timeoutMs?: number): Promise<SlackApiCall[]>;
  /** The next call of `method` answers `{ ok: false, error }`. */
  failNext(method: string, error: string): void;
  reset(): void;
  /**
   * A workspace member `users.info` answers for: Slack's user object, with `profile.email` when given (Slack
   * includes it only for apps with the users:read.email scope; omit it to play an app without).
   */
  addUser(user: { id: string; name: string; realName?: string; email?: string }): void;
  /** Answer `method` with `answer` ahead of the built-in answers (failNext still applies); for fakes built on this one. */
  handle(method: string, answer: SlackApiAnswer): void;
  /** The HTTP server, for fakes that take WebSocket upgrades on the same port (Socket Mode). */
  server: Server;
  close(): Promise<void>;
}

/** Answers one Web API call; `token` is the caller's (Authorization: Bearer, or the `token` field). */
export type SlackApiAnswer = (args: Record<string, unknown>, token: string) => Record<string, unknown>;

const BOT_USER = 'U0BOT00001';
const BOT_ID = 'B0BOT00001';
const TEAM = 'T0TEAM0001';

/** WebClient sends form fields, JSON-encoding arrays and objects; decode them back. */
function parseArgs(body: string, contentType: string): Record<string, unknown> {
  if (contentType.includes('application/json')) return body ? (JSON.parse(body) as Record<string, unknown>) : {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of new URLSearchParams(body)) {
    if ((v.startsWith('{') || v.startsWith('[')) && v.length > 1) {
      try {
        out[k] = JSON.parse(v);
        continue;
      } catch {
        // a plain string that starts with a bracket
      }
    }
    out[k] = v;
  }
  return out;
}

export async function startFakeSlackApi(): Promise<FakeSlackApi> {
  const calls: SlackApiCall[] = [];
  const failures = new Map<string, string[]>();
  const handlers = new Map<string, SlackApiAnswer>();
  const users = new Map<string, { id: string; name: string; realName?: string; email?: string }>();
  const waiters: Array<() => void> = [];
  let seq = 0;
  const nextTs = () => {
    seq += 1;
    return `${Math.floor(Date.now() / 1000)}.${String(seq).padStart(6, '0')}`;
  };

  const answer = (method: string, args: Record<string, unknown>, token: string): Record<string, unknown> => {
    const failing = failures.get(method);
    if (failing?.length) return { ok: false, error: failing.shift() };
    const handler = handlers.get(method);
    if (handler) return handler(args, token);
    const channel = typeof args.channel === 'string' ? args.channel : undefined;
    switch (method) {
      case 'auth.test':
        return {
          ok: true,
          url: 'https://fake.slack.test/',
          team: 'Fake',
          user: 'patchops',
          team_id: TEAM,
          user_id: BOT_USER,
          bot_id: BOT_ID,
          is_enterprise_install: false,
        };
      case 'chat.postMessage': {
        if (!channel) return { ok: false, error: 'channel_not_found' };
        const ts = nextTs();
        // Slack answers with the channel's id; names like #patching resolve to one.
        const id = channel.startsWith('#')
          ? `C${channel
              .slice(1)
              .toUpperCase()
              .replace(/[^A-Z0-9]/g, '')
              .padEnd(8, '0')
              .slice(0, 10)}`
          : channel;
        return {
          ok: true,
          channel: id,
          ts,
          message: {
            type: 'message',
            subtype: 'bot_message',
            text: args.text,
            ts,
            user: BOT_USER,
            bot_id: BOT_ID,
            blocks: args.blocks,
            thread_ts: args.thread_ts,
          },
        };
      }
      case 'chat.update':
        if (!channel || typeof args.ts !== 'string') return { ok: false, error: 'message_not_found' };
        return {
          ok: true,
          channel,
          ts: args.ts,
          text: args.text,
          message: { text: args.text, blocks: args.blocks, user: BOT_USER, bot_id: BOT_ID },
        };
      case 'chat.postEphemeral':
        if (!channel || typeof args.user !== 'string') return { ok: false, error: 'user_not_in_channel' };
        return { ok: true, message_ts: nextTs() };
      case 'views.open':
      case 'views.publish': {
        const view = (args.view ?? {}) as Record<string, unknown>;
        if (method === 'views.open' && typeof args.trigger_id !== 'string')
          return { ok: false, error: 'invalid_trigger_id' };
        return {
          ok: true,
          view: { id: `V${String(++seq).padStart(9, '0')}`, team_id: TEAM, hash: `${Date.now()}.${seq}`, ...view },
        };
      }
      case 'users.info': {
        // https://api.slack.com/methods/users.info: { ok, user: { id, team_id, name, real_name, profile: { email, … }, is_bot, … } }
        const u = typeof args.user === 'string' ? users.get(args.user) : undefined;
        if (!u) return { ok: false, error: 'user_not_found' };
        const realName = u.realName ?? u.name;
        return {
          ok: true,
          user: {
            id: u.id,
            team_id: TEAM,
            name: u.name,
            deleted: false,
            real_name: realName,
            tz: 'Europe/London',
            profile: { real_name: realName, display_name: u.name, ...(u.email ? { email: u.email } : {}), team: TEAM },
            is_admin: false,
            is_owner: false,
            is_bot: false,
            is_app_user: false,
            updated: Math.floor(Date.now() / 1000),
          },
        };
      }
      default:
        return { ok: false, error: 'unknown_method' };
    }
  };

  const server: Server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const contentType = String(req.headers['content-type'] ?? '');
      if (path.startsWith('/response/')) {
        calls.push({
          method: 'response_url',
          args: { ...parseArgs(body, contentType), responseId: path.slice('/response/'.length) },
          at: Date.now(),
        });
        waiters.splice(0).forEach((w) => w());
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        return;
      }
      const method = path.replace(/^\/api\//, '');
      const args = parseArgs(body, contentType);
      const auth = req.headers.authorization;
      const token = auth?.startsWith('Bearer ')
        ? auth.slice(7)
        : typeof args.token === 'string'
          ? args.token
          : undefined;
      const call: SlackApiCall = { method, args, token, at: Date.now() };
      calls.push(call);
      const out = token ? answer(method, args, token) : { ok: false, error: 'not_authed' };
      call.answer = out;
      waiters.splice(0).forEach((w) => w());
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(out));
    })().catch((e: unknown) => {
      res.writeHead(500).end(String(e));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const base = `http://127.0.0.1:${port}`;

  const callsTo = (method: string) => calls.filter((c) => c.method === method);
  return {
    url: `${base}/api/`,
    responseUrlBase: `${base}/response/`,
    calls,
    callsTo,
    async waitFor(method, n = 1, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (callsTo(method).length < n) {
        const left = deadline - Date.now();
        if (left <= 0)
          throw new Error(
            `fake Slack API: expected ${n} ${method} call(s), got ${callsTo(method).length}: ${calls.map((c) => c.method).join(', ')}`,
          );
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.min(left, 200));
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
      return callsTo(method);
    },
    failNext(method, error) {
      failures.set(method, [...(failures.get(method) ?? []), error]);
    },
    reset() {
      calls.length = 0;
    },
    addUser(user) {
      users.set(user.id, user);
    },
    handle(method, answerWith) {
      handlers.set(method, answerWith);
    },
    server,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
