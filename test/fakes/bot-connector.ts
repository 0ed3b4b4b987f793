/**
 * A local fake of the Bot Framework connector service (the `serviceUrl` a channel gives the bot), recording
 * the /v3/conversations calls the bot makes: send, reply, update, delete, create conversation, with the
 * connector's response shapes (ResourceResponse `{ id }`). Used in tests and demo mode only.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ConnectorCall {
  op: 'send' | 'reply' | 'update' | 'delete' | 'createConversation' | 'getMember';
  conversationId?: string;
  activityId?: string;
  activity?: Record<string, unknown>;
  authorization?: string;
  /** The activity id the fake answered with (of a sent card: the id its updates and replies name). */
  answeredId?: string;
  at: number;
}

export interface FakeBotConnector {
  /** The serviceUrl to put in activities (ends with a slash, as channels send it). */
  serviceUrl: string;
  calls: ConnectorCall[];
  callsOf(op: ConnectorCall['op']): ConnectorCall[];
  waitFor(op: ConnectorCall['op'], n?: number, timeoutMs?: number): Promise<ConnectorCall[]>;
  /**
   * A member of every conversation, as GET /v3/conversations/{id}/members/{memberId} answers for Teams
   * (TeamsChannelAccount: id, name, objectId, email, userPrincipalName, tenantId, userRole).
   */
  addMember(member: { id: string; name: string; objectId?: string; email?: string; userPrincipalName?: string }): void;
  reset(): void;
  close(): Promise<void>;
}

function readJson(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const s = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(s ? (JSON.parse(s) as Record<string, unknown>) : undefined);
      } catch (e) {
        reject(e as Error);
      }
    });
    req.on('error', reject);
  });
}

export async function startFakeBotConnector(): Promise<FakeBotConnector> {
  const calls: ConnectorCall[] = [];
  let seq = 0;
  const members = new Map<
    string,
    { id: string; name: string; objectId?: string; email?: string; userPrincipalName?: string }
  >();
  const server: Server = createServer((req, res) => {
    void (async () => {
      const activity = await readJson(req);
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const member = /^\/v3\/conversations\/([^/]+)\/members\/([^/]+)\/?$/.exec(path);
      if (req.method === 'GET' && member) {
        const conversationId = decodeURIComponent(member[1]!);
        const memberId = decodeURIComponent(member[2]!);
        calls.push({
          op: 'getMember',
          conversationId,
          activityId: memberId,
          authorization: req.headers.authorization,
          at: Date.now(),
        });
        const m = members.get(memberId);
        const json = (status: number, body: unknown) =>
          res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
        if (!m)
          return json(404, {
            error: { code: 'MemberNotFoundInConversation', message: 'The member is not found in the conversation.' },
          });
        return json(200, { tenantId: 'tenant-1', userRole: 'user', ...m });
      }
      const m = /^\/v3\/conversations(?:\/([^/]+)\/activities(?:\/([^/]+))?)?\/?$/.exec(path);
      const send = (status: number, body: unknown) =>
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
      if (!m) return send(404, { error: { code: 'NotFound', message: `no route ${req.method} ${path}` } });
      const conversationId = m[1] ? decodeURIComponent(m[1]) : undefined;
      const activityId = m[2] ? decodeURIComponent(m[2]) : undefined;
      const authorization = req.headers.authorization;
      const base = { conversationId, activityId, activity, authorization, at: Date.now() };
      if (req.method === 'POST' && !conversationId) {
        calls.push({ op: 'createConversation', ...base });
        seq += 1;
        return send(200, { id: `a:fake-conversation-${seq}`, activityId: `fake-activity-${seq}`, serviceUrl: '' });
      }
      if (req.method === 'POST' && conversationId) {
        seq += 1;
        calls.push({ op: activityId ? 'reply' : 'send', ...base, answeredId: `fake-activity-${seq}` });
        return send(200, { id: `fake-activity-${seq}` });
      }
      if (req.method === 'PUT' && conversationId && activityId) {
        calls.push({ op: 'update', ...base });
        return send(200, { id: activityId });
      }
      if (req.method === 'DELETE' && conversationId && activityId) {
        calls.push({ op: 'delete', ...base });
        return send(200, {});
      }
      return send(405, { error: { code: 'MethodNotAllowed', message: `${req.method} ${path}` } });
    })().catch((e: unknown) => res.writeHead(500).end(String(e)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const callsOf = (op: ConnectorCall['op']) => calls.filter((c) => c.op === op);
  return {
    serviceUrl: `http://127.0.0.1:${port}/`,
    calls,
    callsOf,
    async waitFor(op, n = 1, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (callsOf(op).length < n) {
        if (Date.now() > deadline)
          throw new Error(
            `fake connector: expected ${n} ${op} call(s), got ${callsOf(op).length}: ${calls.map((c) => c.op).join(', ')}`,
          );
        await new Promise((r) => setTimeout(r, 20));
      }
      return callsOf(op);
    },
    addMember(m) {
      members.set(m.id, m);
    },
    reset() {
      calls.length = 0;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
