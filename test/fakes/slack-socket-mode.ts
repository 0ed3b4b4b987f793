/**
 * A local fake of Slack's Socket Mode, on the same port as the fake Web API (test/fakes/slack-api.ts), so one
 * SLACK_API_URL serves both. As Slack does (docs.slack.dev/apis/events-api/using-socket-mode, and what
 * @slack/socket-mode's SocketModeClient reads):
 * - `POST apps.connections.open` with the app-level token (Authorization: Bearer xapp-…) answers
 *   `{ ok: true, url: 'ws://127.0.0.1:<port>/link/?ticket=…&app_id=…' }`; any other token gets `invalid_auth`
 *   (an xapp- token) or `not_allowed_token_type` (a bot or user token);
 * - a ticket opens one WebSocket connection, once; the fake then sends `hello`;
 * - envelopes go out as `{ envelope_id, type, accepts_response_payload, payload }` (`retry_attempt` and
 *   `retry_reason` too for events_api) and the app's acks `{ envelope_id, payload? }` are recorded;
 * - `disconnect` with a reason (refresh_requested, warning, link_disabled) asks the app to reconnect.
 * Used in tests only.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { startFakeSlackApi, type FakeSlackApi } from './slack-api';

export type SocketModeEnvelopeType = 'interactive' | 'events_api' | 'slash_commands';

export interface SocketModeEnvelope {
  envelope_id: string;
  type: SocketModeEnvelopeType;
  accepts_response_payload: boolean;
  payload: Record<string, unknown>;
  retry_attempt?: number;
  retry_reason?: string;
}

export interface SocketModeAck {
  envelope_id: string;
  payload?: Record<string, unknown>;
  /** Which connection carried it (1 for the first the app opened). */
  connection: number;
  at: number;
}

export interface FakeSlackSocketMode {
  /** The Web API fake on the same port: point SLACK_API_URL / slackApiUrl at `api.url`. */
  api: FakeSlackApi;
  appToken: string;
  appId: string;
  /** Connections the app has opened (and got `hello` on), in order. */
  connections: number;
  /** Upgrades refused: no ticket, an unknown one, or one already used. */
  refusedUpgrades: number;
  acks: SocketModeAck[];
  /** Resolves once the app has opened its `n`th connection (or rejects after `timeoutMs`). */
  waitForConnection(n?: number, timeoutMs?: number): Promise<void>;
  /**
   * Sends an envelope on the open connection, as Slack does, and resolves with the app's ack (or rejects
   * after `timeoutMs`: Slack would retry, or show the person an error, after 3 s).
   */
  push(
    type: SocketModeEnvelopeType,
    payload: Record<string, unknown>,
    o?: { acceptsResponsePayload?: boolean; retryAttempt?: number; timeoutMs?: number },
  ): Promise<SocketModeAck>;
  /** Slack's `disconnect` message (it is recycling the connection); the app is expected to close and reconnect. */
  requestDisconnect(reason?: 'refresh_requested' | 'warning' | 'link_disabled'): void;
  /** Cuts the open connection without a close handshake (a network failure, a Slack host going away). */
  drop(): void;
  close(): Promise<void>;
}

const APP_ID = 'A0PATCHOPS';

/** Polls `ready` until it holds, waking on `wake` notifications; rejects with `describe()` after `timeoutMs`. */
async function until(
  ready: () => boolean,
  timeoutMs: number,
  waiters: Array<() => void>,
  describe: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`fake Slack Socket Mode: ${describe()}`);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, Math.min(left, 200));
      waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}

export async function startFakeSlackSocketMode(o: {
  appToken: string;
  api?: FakeSlackApi;
}): Promise<FakeSlackSocketMode> {
  const api = o.api ?? (await startFakeSlackApi());
  const { appToken } = o;
  const wsBase = api.url.replace(/^http/, 'ws').replace(/\/api\/$/, '');
  const tickets = new Set<string>();
  const waiters: Array<() => void> = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  const acks: SocketModeAck[] = [];
  let current: { ws: WebSocket; n: number } | undefined;

  const state = {
    connections: 0,
    refusedUpgrades: 0,
  };

  api.handle('apps.connections.open', (_args, token) => {
    if (!token.startsWith('xapp-')) return { ok: false, error: 'not_allowed_token_type' };
    if (token !== appToken) return { ok: false, error: 'invalid_auth' };
    const ticket = randomUUID();
    tickets.add(ticket);
    return { ok: true, url: `${wsBase}/link/?ticket=${ticket}&app_id=${APP_ID}` };
  });

  const wss = new WebSocket.Server({ noServer: true });
  const refuse = (socket: Duplex, status: string) => {
    state.refusedUpgrades += 1;
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  };
  api.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const ticket = url.searchParams.get('ticket') ?? '';
    if (url.pathname !== '/link/') return refuse(socket, '404 Not Found');
    if (!tickets.delete(ticket)) return refuse(socket, '401 Unauthorized');
    wss.handleUpgrade(req, socket as Socket, head, (ws) => {
      state.connections += 1;
      const n = state.connections;
      current = { ws, n };
      ws.on('message', (data) => {
        let msg: { envelope_id?: unknown; payload?: unknown };
        try {
          msg = JSON.parse(String(data)) as typeof msg;
        } catch {
          return;
        }
        if (typeof msg.envelope_id !== 'string') return;
        acks.push({
          envelope_id: msg.envelope_id,
          payload: msg.payload as Record<string, unknown> | undefined,
          connection: n,
          at: Date.now(),
        });
        wake();
      });
      ws.on('close', () => {
        if (current?.ws === ws) current = undefined;
        wake();
      });
      ws.send(
        JSON.stringify({
          type: 'hello',
          num_connections: 1,
          debug_info: { host: 'applink-fake-1', build_number: 1, approximate_connection_time: 18060 },
          connection_info: { app_id: APP_ID },
        }),
      );
      wake();
    });
  });

  const live = () => {
    if (!current || current.ws.readyState !== WebSocket.OPEN)
      throw new Error('fake Slack Socket Mode: the app has no open connection');
    return current;
  };

  return {
    api,
    appToken,
    appId: APP_ID,
    get connections() {
      return state.connections;
    },
    get refusedUpgrades() {
      return state.refusedUpgrades;
    },
    acks,
    waitForConnection(n = 1, timeoutMs = 15_000) {
      return until(
        () => state.connections >= n && current?.ws.readyState === WebSocket.OPEN,
        timeoutMs,
        waiters,
        () => `expected connection ${n}, have ${state.connections} (${current ? 'one open' : 'none open'})`,
      );
    },
    async push(type, payload, p = {}) {
      const { ws, n } = live();
      const envelope: SocketModeEnvelope = {
        envelope_id: randomUUID(),
        type,
        accepts_response_payload: p.acceptsResponsePayload ?? type !== 'events_api',
        payload,
        ...(type === 'events_api'
          ? { retry_attempt: p.retryAttempt ?? 0, retry_reason: p.retryAttempt ? 'timeout' : '' }
          : {}),
      };
      ws.send(JSON.stringify(envelope));
      const acked = () => acks.find((a) => a.envelope_id === envelope.envelope_id);
      await until(
        () => acked() !== undefined,
        p.timeoutMs ?? 3000,
        waiters,
        () => `no ack for the ${type} envelope ${envelope.envelope_id} on connection ${n}`,
      );
      return acked()!;
    },
    requestDisconnect(reason = 'refresh_requested') {
      live().ws.send(JSON.stringify({ type: 'disconnect', reason, debug_info: { host: 'applink-fake-1' } }));
    },
    drop() {
      live().ws.terminate();
    },
    async close() {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      if (!o.api) await api.close();
    },
  };
}
