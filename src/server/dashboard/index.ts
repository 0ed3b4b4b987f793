/**
 * The dashboard: server-rendered pages mounted at `/` on the one Fastify server, one plugin per page
 * (./pages). Every page needs a signed-in web user; viewers see read-only pages, approvers may approve and
 * reject, admins may also start scans and cycles, pause and resume, and manage exceptions. The session and
 * CSRF checks are one pre-handler (./session.ts); cookies are HttpOnly and SameSite=Lax; cross-origin POSTs
 * are refused. Cycle actions go through the CycleService (the same one chat and the CLI use).
 * The hourly compliance snapshot is a background job of the runtime (src/runtime/dashboard-jobs.ts).
 *
 * A new page: write `pages/<name>.ts` exporting a `FastifyPluginAsync<DashboardContext>` whose routes use
 * `{ preHandler: o.guard.page }` (GET) or `{ preHandler: o.guard.action(role, 'what it does') }` (POST),
 * add it to PAGES below and, if it has a menu entry, to NAV in ./html.ts.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { Db } from '../../db/client';
import { CodedError, ErrorCode } from '../../domain/errors';
import type { Logger } from '../../logging';
import type { CycleService } from '../../services/cycle-service';
import type { RouteModule } from '../../shared/contracts';
import { CLIENT_JS, STYLESHEET } from './html';
import { MemoryLoginThrottle } from './login-throttle';
import type { LoginThrottle } from '../../shared/contracts';
import type { DashboardContext } from './page';
import { auditPage } from './pages/audit';
import { cyclesPage } from './pages/cycles';
import { endpointsPage } from './pages/endpoints';
import { exceptionsPage } from './pages/exceptions';
import { loginPage } from './pages/login';
import { overviewPage } from './pages/overview';
import { patchesPage } from './pages/patches';
import { reportsPage } from './pages/reports';
import { startActions } from './pages/start-actions';
import { tokensPage } from './pages/tokens';
import { webhooksPage } from './pages/webhooks';
import { createSessionGuard } from './session';

export { SESSION_COOKIE, safeNext } from './session';

export interface DashboardOptions {
  db: Db;
  logger: Logger;
  /** Absent: actions are shown as unavailable. */
  cycles?: CycleService;
  /** Base URL of the Temporal UI (http://127.0.0.1:8233); links to workflows are built from it. */
  temporalUiUrl?: string;
  temporalNamespace?: string;
  /** The URL agents reach this server at (PUBLIC_URL); the first-run page's enrolment command uses it. Default: the request's own host. */
  publicUrl?: string;
  /** The server was started with AGENT_ENROLL_SECRET (the first-run page says so; the value is never shown). */
  envEnrollSecret?: boolean;
  sessionTtlMs?: number;
  /** Mark cookies Secure (when PUBLIC_URL is https). */
  secureCookies?: boolean;
  now?: () => Date;
  /** Failed sign-ins per address and per user name, with backoff (default: 5 free, then 1 s doubling to 15 min). */
  loginThrottle?: LoginThrottle;
}

/** The pages behind a session (sign-in is registered apart: it needs the throttle). */
const PAGES: Array<FastifyPluginAsync<DashboardContext>> = [
  overviewPage,
  startActions,
  endpointsPage,
  patchesPage,
  cyclesPage,
  exceptionsPage,
  auditPage,
  reportsPage,
  webhooksPage,
  tokensPage,
];

/** Query values as one string each (a repeated key keeps its last value); a value over 1,000 characters is refused. */
function flatQuery(query: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((query ?? {}) as Record<string, unknown>)) {
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    if (typeof last !== 'string') continue;
    if (last.length > 1000)
      throw new CodedError(
        ErrorCode.InvalidInput,
        `The query parameter "${k.slice(0, 40)}" is too long (over 1,000 characters).`,
      );
    out[k] = last;
  }
  return out;
}

function workflowUrlOf(o: DashboardOptions): (workflowId: string) => string | null {
  const ui = o.temporalUiUrl?.replace(/\/$/, '');
  const ns = encodeURIComponent(o.temporalNamespace ?? 'default');
  return (workflowId) => (ui ? `${ui}/namespaces/${ns}/workflows/${encodeURIComponent(workflowId)}` : null);
}

export function dashboardRoutes(o: DashboardOptions): RouteModule {
  const now = o.now ?? (() => new Date());
  const ctx: DashboardContext = {
    db: o.db,
    log: o.logger,
    now,
    guard: createSessionGuard({ db: o.db, now, secureCookies: o.secureCookies }),
    cycles: o.cycles,
    workflowUrl: workflowUrlOf(o),
    publicUrl: o.publicUrl,
    envEnrollSecret: o.envEnrollSecret,
  };

  return async (app: FastifyInstance) => {
    await app.register(async (scope) => {
      // Forms post urlencoded bodies; parse them as strings here only (Slack's routes keep their own parser).
      if (scope.hasContentTypeParser('application/x-www-form-urlencoded'))
        scope.removeContentTypeParser('application/x-www-form-urlencoded');
      scope.addContentTypeParser(
        'application/x-www-form-urlencoded',
        { parseAs: 'string', bodyLimit: 64 * 1024 },
        (_req, body, done) => done(null, body),
      );
      scope.addHook('preValidation', async (req) => {
        req.query = flatQuery(req.query);
      });

      scope.get('/static/dashboard.css', (_req, reply) =>
        reply
          .header('content-type', 'text/css; charset=utf-8')
          .header('cache-control', 'public, max-age=300')
          .send(STYLESHEET),
      );
      scope.get('/static/dashboard.js', (_req, reply) =>
        reply
          .header('content-type', 'text/javascript; charset=utf-8')
          .header('cache-control', 'public, max-age=300')
          .send(CLIENT_JS),
      );

      await scope.register(loginPage, {
        ...ctx,
        sessionTtlMs: o.sessionTtlMs ?? 8 * 3600_000,
        throttle: o.loginThrottle ?? new MemoryLoginThrottle(),
      });
      for (const page of PAGES) await scope.register(page, ctx);
    });
  };
}
