/**
 * The dashboard: server-rendered pages mounted at `/` on the one Fastify server.
 * Every page needs a signed-in web user; viewers see read-only pages, approvers may approve and reject,
 * admins may also start scans and cycles, pause and resume, and manage exceptions. Forms carry a
 * per-session CSRF token; cookies are HttpOnly and SameSite=Lax; cross-origin POSTs are refused.
 * Cycle actions go through the CycleService (the same one chat and the CLI use).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Db } from '../../db/client';
import { listAudit, iterateAudit, overview, complianceTrend, takeComplianceSnapshot, listEndpoints, endpointDetail, facets, listPatches, listCycles, cycleDetail, type AuditFilter } from '../../db/dashboard';
import { addException, listExceptions, removeException } from '../../db/cycles';
import type { Role } from '../../db/identities';
import { type CycleStage, TERMINAL_STAGES, type CycleScope } from '../../domain/cycle';
import { CodedError, ErrorCode, isCodedError } from '../../domain/errors';
import type { Logger } from '../../logging';
import { renderChartSvg } from '../../reports/charts';
import { collectReport, complianceByGroupChart, complianceByOsChart, overdueChart, parseScope, renderReport, severityChart } from '../../reports/report';
import { csvLine } from '../../reports/csv';
import type { CycleService } from '../../services/cycle-service';
import type { RouteModule } from '../../shared/contracts';
import { HttpError } from '../errors';
import { clampedInt, dateParam } from '../input';
import { isValidUsername, login, logout, roleAtLeast, sessionFor, type WebSession } from './auth';
import { MemoryLoginThrottle } from './login-throttle';
import type { LoginThrottle } from '../../shared/contracts';
import { badge, cell, CLIENT_JS, csrfField, html, layout, qs, raw, STYLESHEET, table, when, type Html, type PageUser } from './html';

export interface DashboardOptions {
  db: Db;
  logger: Logger;
  /** Absent: actions are shown as unavailable. */
  cycles?: CycleService;
  /** Base URL of the Temporal UI (http://127.0.0.1:8233); links to workflows are built from it. */
  temporalUiUrl?: string;
  temporalNamespace?: string;
  sessionTtlMs?: number;
  /** Mark cookies Secure (when PUBLIC_URL is https). */
  secureCookies?: boolean;
  now?: () => Date;
  /** How often to record a compliance snapshot for the trend; 0 = only on overview visits. Default hourly. */
  snapshotEveryMs?: number;
  /** Failed sign-ins per address and per user name, with backoff (default: 5 free, then 1 s doubling to 15 min). */
  loginThrottle?: LoginThrottle;
}

export const SESSION_COOKIE = 'patchops_session';
const LOGIN_CSRF_COOKIE = 'patchops_login_csrf';

type Form = Record<string, string>;
type Req = FastifyRequest;

/**
 * One of our cookies, decoded; undefined when absent. A cookie that is not valid percent-encoding is a 400
 * that also clears it, so a browser holding a damaged cookie recovers by signing in again.
 */
function cookieOf(req: Req, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i <= 0 || part.slice(0, i).trim() !== name) continue;
    try {
      return decodeURIComponent(part.slice(i + 1).trim());
    } catch {
      throw new HttpError(ErrorCode.InvalidInput, `The ${name} cookie is malformed; it has been cleared: sign in again.`, {
        'set-cookie': `${name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`,
      });
    }
  }
  return undefined;
}

/** Query values as one string each (a repeated key keeps its last value); a value over 1,000 characters is refused. */
function flatQuery(query: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((query ?? {}) as Record<string, unknown>)) {
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    if (typeof last !== 'string') continue;
    if (last.length > 1000) throw new CodedError(ErrorCode.InvalidInput, `The query parameter "${k.slice(0, 40)}" is too long (over 1,000 characters).`);
    out[k] = last;
  }
  return out;
}

function parseForm(body: string): Form {
  const out: Form = {};
  for (const [k, v] of new URLSearchParams(body)) out[k] = v;
  return out;
}

const str = (v: unknown) => (typeof v === 'string' ? v.trim() : '');

export function dashboardRoutes(o: DashboardOptions): RouteModule {
  const ttl = o.sessionTtlMs ?? 8 * 3600_000;
  const now = o.now ?? (() => new Date());
  const secure = o.secureCookies ? '; Secure' : '';
  const log = o.logger;
  const throttle = o.loginThrottle ?? new MemoryLoginThrottle();

  const cookie = (name: string, value: string, maxAgeS: number) => `${name}=${encodeURIComponent(value)}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAgeS}${secure}`;

  const send = (reply: FastifyReply, page: string, code = 200) =>
    reply.code(code).header('content-type', 'text/html; charset=utf-8').header('cache-control', 'no-store').header('x-frame-options', 'DENY')
      .header('content-security-policy', "default-src 'self'; style-src 'self'; img-src 'self' data:; script-src 'self'; form-action 'self'; frame-ancestors 'none'")
      .send(page);

  const pageUser = (s: WebSession): PageUser => ({ username: s.username, role: s.role, csrfToken: s.csrfToken });

  const flashOf = (req: Req): { kind: 'ok' | 'error'; text: string } | null => {
    const q = req.query as Record<string, string | undefined>;
    if (q.ok) return { kind: 'ok', text: q.ok.slice(0, 300) };
    if (q.error) return { kind: 'error', text: q.error.slice(0, 300) };
    return null;
  };

  /** The session or a redirect to the login page. */
  async function requireSession(req: Req, reply: FastifyReply): Promise<WebSession | null> {
    const s = await sessionFor(o.db, cookieOf(req, SESSION_COOKIE), now());
    if (!s) {
      await reply.redirect(`/login${qs({ next: req.url })}`, 303);
      return null;
    }
    return s;
  }

  /** For POSTs: a session, the right role, a matching CSRF token and a same-origin request. */
  async function requireAction(req: Req, reply: FastifyReply, needed: Role, what: string): Promise<{ s: WebSession; form: Form } | null> {
    const form = parseForm(typeof req.body === 'string' ? req.body : '');
    if (!sameOrigin(req)) {
      send(reply, errorPage(null, 'Cross-site request refused', 'This form was posted from another site. Open the dashboard and try again.'), 403);
      return null;
    }
    const s = await sessionFor(o.db, cookieOf(req, SESSION_COOKIE), now());
    if (!s) {
      send(reply, errorPage(null, 'Sign-in needed', 'Your session has ended. Sign in again, then repeat the action.'), 401);
      return null;
    }
    if (!form._csrf || form._csrf !== s.csrfToken) {
      send(reply, errorPage(pageUser(s), 'Form expired', 'The form\'s security token did not match your session (it was opened in an older session, or sent from elsewhere). Reload the page and try again.'), 403);
      return null;
    }
    if (!roleAtLeast(s.role, needed)) {
      send(reply, errorPage(pageUser(s), 'Not allowed', `You are signed in as ${s.username} with the ${s.role} role; to ${what} you need the ${needed} role. Ask an admin (\`patchops users add <name> --role ${needed}\`).`), 403);
      return null;
    }
    return { s, form };
  }

  function sameOrigin(req: Req): boolean {
    const origin = req.headers.origin ?? req.headers.referer;
    if (!origin || origin === 'null') return origin !== 'null';
    try {
      return new URL(origin).host === req.headers.host;
    } catch {
      return false;
    }
  }

  function errorPage(user: PageUser | null, title: string, text: string): string {
    return layout({ title, user, flash: { kind: 'error', text }, body: html`<p><a href="/">Back to the overview</a></p>` });
  }

  const back = (reply: FastifyReply, to: string, msg: { ok?: string; error?: string }) => reply.redirect(`${to}${qs(msg)}`, 303);

  function actionError(e: unknown): string {
    if (isCodedError(e)) {
      if (e.code === ErrorCode.ApprovalRefused) return `Approval refused: ${e.message}`;
      return e.message;
    }
    log.error({ err: e }, 'dashboard action failed');
    return 'The action failed unexpectedly; the server log has the details.';
  }

  const workflowUrl = (workflowId: string) =>
    o.temporalUiUrl ? `${o.temporalUiUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(o.temporalNamespace ?? 'default')}/workflows/${encodeURIComponent(workflowId)}` : null;

  const chart = (spec: Parameters<typeof renderChartSvg>[0]) => raw(renderChartSvg(spec));

  return async (app: FastifyInstance) => {
    // The trend gets a point every hour even when nobody looks (and on overview visits, at most hourly).
    if (o.snapshotEveryMs !== 0) {
      const timer = setInterval(() => {
        takeComplianceSnapshot(o.db, { now: now() }).catch((err: unknown) => log.warn({ err }, 'compliance snapshot failed'));
      }, o.snapshotEveryMs ?? 3_600_000);
      timer.unref();
      app.addHook('onClose', (_instance, done) => {
        clearInterval(timer);
        done();
      });
    }
    await app.register(async (scope) => {
      // Forms post urlencoded bodies; parse them as strings here only (Slack's routes keep their own parser).
      if (scope.hasContentTypeParser('application/x-www-form-urlencoded')) scope.removeContentTypeParser('application/x-www-form-urlencoded');
      scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) => done(null, body));
      scope.addHook('preValidation', async (req) => {
        req.query = flatQuery(req.query);
      });

      scope.get('/static/dashboard.css', (_req, reply) => reply.header('content-type', 'text/css; charset=utf-8').header('cache-control', 'public, max-age=300').send(STYLESHEET));
      scope.get('/static/dashboard.js', (_req, reply) => reply.header('content-type', 'text/javascript; charset=utf-8').header('cache-control', 'public, max-age=300').send(CLIENT_JS));

      // ------------------------------------------------------------ login / logout
      scope.get('/login', async (req, reply) => {
        const q = req.query as Record<string, string | undefined>;
        const existing = await sessionFor(o.db, cookieOf(req, SESSION_COOKIE), now());
        if (existing) return reply.redirect(safeNext(q.next), 303);
        const token = cookieOf(req, LOGIN_CSRF_COOKIE) ?? randomToken();
        reply.header('set-cookie', cookie(LOGIN_CSRF_COOKIE, token, 3600));
        return send(reply, layout({
          title: 'Sign in',
          user: null,
          flash: q.error ? { kind: 'error', text: q.error.slice(0, 200) } : null,
          body: html`<form class="stack" method="post" action="/login" data-testid="login-form">
<input type="hidden" name="_csrf" value="${token}"><input type="hidden" name="next" value="${safeNext(q.next)}">
<label>User name <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>
<p class="muted">Accounts are made with <code>patchops users add &lt;name&gt; --role admin|approver|viewer</code>.</p>`,
        }));
      });

      scope.post('/login', async (req, reply) => {
        const form = parseForm(typeof req.body === 'string' ? req.body : '');
        const expected = cookieOf(req, LOGIN_CSRF_COOKIE);
        if (!sameOrigin(req) || !expected || form._csrf !== expected) {
          return send(reply, errorPage(null, 'Form expired', 'The sign-in form expired or came from another site. Open /login again.'), 403);
        }
        const username = str(form.username);
        const next = form.next ? { next: safeNext(form.next) } : {};
        // req.ip is the socket address unless TRUST_PROXY names the proxy in front; the name key only for a valid name.
        const keys = isValidUsername(username) ? [`ip:${req.ip}`, `user:${username}`] : [`ip:${req.ip}`];
        const wait = await throttle.retryAfterMs(keys, now().getTime());
        if (wait > 0) {
          log.warn({ ip: req.ip, username: username.slice(0, 64) }, 'sign-in refused: too many failed attempts');
          reply.header('retry-after', String(Math.ceil(wait / 1000)));
          return send(reply, errorPage(null, 'Too many attempts', `Too many failed sign-ins for this user name or from this address: wait ${Math.ceil(wait / 1000)} seconds, then try again.`), 429);
        }
        if (!isValidUsername(username)) {
          await throttle.failure(keys, now().getTime());
          return back(reply, '/login', { error: 'That is not a user name: user names are 1-63 lower-case letters, digits, dot, dash or underscore.', ...next });
        }
        const result = await login(o.db, { username, password: (form.password ?? '').slice(0, 1024), ttlMs: ttl, now: now(), from: req.ip });
        if (!result) {
          await throttle.failure(keys, now().getTime());
          return back(reply, '/login', { error: 'Wrong user name or password (or the account has no role).', ...next });
        }
        await throttle.success(`user:${username}`);
        reply.header('set-cookie', [cookie(SESSION_COOKIE, result.token, Math.floor(ttl / 1000)), cookie(LOGIN_CSRF_COOKIE, '', 0)]);
        return reply.redirect(safeNext(form.next), 303);
      });

      scope.post('/logout', async (req, reply) => {
        const token = cookieOf(req, SESSION_COOKIE);
        const s = await sessionFor(o.db, token, now());
        const form = parseForm(typeof req.body === 'string' ? req.body : '');
        if (s && token && form._csrf === s.csrfToken) await logout(o.db, token);
        reply.header('set-cookie', cookie(SESSION_COOKIE, '', 0));
        return reply.redirect('/login', 303);
      });

      // ------------------------------------------------------------ overview
      scope.get('/', async (req, reply) => {
        const s = await requireSession(req, reply);
        if (!s) return reply;
        const ov = await overview(o.db, { now: now() });
        await takeComplianceSnapshot(o.db, { now: now(), overview: ov }).catch((err: unknown) => log.warn({ err }, 'compliance snapshot failed'));
        const trend = await complianceTrend(o.db, { limit: 30 });
        const u = pageUser(s);
        const totalOutstanding = Object.values(ov.bySeverity).reduce((a, b) => a + b, 0);
        const body = html`
<div class="cards" data-testid="overview-cards">
  <div class="card"><div class="n" data-testid="compliance-pct">${ov.compliancePct}%</div>compliant (${ov.compliant} of ${ov.endpoints} endpoints)</div>
  <div class="card"><div class="n" data-testid="outstanding">${totalOutstanding}</div>missing patches (endpoint × patch)</div>
  <div class="card"><div class="n" data-testid="known-exploited">${ov.knownExploited}</div>known exploited</div>
  <div class="card"><div class="n" data-testid="overdue">${ov.overdue}</div>overdue vs SLA</div>
  <div class="card"><div class="n" data-testid="failed">${ov.failed}</div>failed installs</div>
</div>
${adminActions(u)}
<div class="charts">
${chart(complianceByGroupChart(ov))}
${chart(complianceByOsChart(ov))}
${chart(severityChart(ov))}
${chart(overdueChart(ov))}
${chart({ kind: 'line', title: 'Compliance trend', labels: trend.map((t) => t.at.slice(5, 16).replace('T', ' ')), series: [{ name: 'compliant %', values: trend.map((t) => t.compliancePct) }], unit: '%' })}
</div>
<h2>By group</h2>
${table(['group', 'endpoints', 'compliant', '%'], ov.byGroup.map((g) => [html`<a href="/endpoints${qs({ group: g.key })}">${g.key}</a>`, cell(g.endpoints), cell(g.compliant), cell(`${g.pct}%`)]), { testid: 'by-group', empty: 'No groups yet.' })}
<h2>By OS</h2>
${table(['OS', 'endpoints', 'compliant', '%'], ov.byOs.map((g) => [html`<a href="/endpoints${qs({ os: g.key })}">${g.key}</a>`, cell(g.endpoints), cell(g.compliant), cell(`${g.pct}%`)]), { testid: 'by-os', empty: 'No endpoints enrolled yet.' })}`;
        return send(reply, layout({ title: 'Overview', user: u, active: '/', flash: flashOf(req), body }));
      });

      function adminActions(u: PageUser): Html {
        if (!roleAtLeast(u.role as Role, 'admin')) return html``;
        if (!o.cycles) return html`<p class="muted" data-testid="actions-unavailable">Actions are unavailable: this server runs without the cycle service.</p>`;
        return html`<div class="actions">
<form method="post" action="/actions/scan" class="inline">${csrfField(u)}<input name="groups" placeholder="groups (comma-separated, empty = all)"><button type="submit">Start a scan</button></form>
<form method="post" action="/actions/cycle" class="inline" data-confirm="Start a patch cycle?">${csrfField(u)}<input name="policy" placeholder="policy" value="default" required><input name="groups" placeholder="groups (comma-separated)"><label class="inline"><span><input type="checkbox" name="emergency" value="1"> emergency</span></label><button type="submit" data-testid="start-cycle">Start a cycle</button></form>
</div>`;
      }

      const scopeFromForm = (form: Form): CycleScope => {
        const groups = str(form.groups).split(',').map((g) => g.trim()).filter(Boolean);
        return groups.length ? { groups } : {};
      };

      scope.post('/actions/scan', async (req, reply) => {
        const a = await requireAction(req, reply, 'admin', 'start a scan');
        if (!a) return reply;
        if (!o.cycles) return back(reply, '/', { error: 'Actions are unavailable: this server runs without the cycle service.' });
        try {
          const r = await o.cycles.scan(scopeFromForm(a.form), a.s.identity);
          return back(reply, '/', { ok: `Scan started (${r.workflowId}).` });
        } catch (e) {
          return back(reply, '/', { error: actionError(e) });
        }
      });

      scope.post('/actions/cycle', async (req, reply) => {
        const a = await requireAction(req, reply, 'admin', 'start a cycle');
        if (!a) return reply;
        if (!o.cycles) return back(reply, '/', { error: 'Actions are unavailable: this server runs without the cycle service.' });
        try {
          const r = await o.cycles.start({ policyName: str(a.form.policy) || 'default', scope: scopeFromForm(a.form), requestedBy: a.s.identity, emergency: a.form.emergency === '1' });
          return back(reply, `/cycles/${encodeURIComponent(r.cycleId)}`, { ok: `Cycle ${r.cycleId} started.` });
        } catch (e) {
          return back(reply, '/', { error: actionError(e) });
        }
      });

      // ------------------------------------------------------------ endpoints
      scope.get('/endpoints', async (req, reply) => {
        const s = await requireSession(req, reply);
        if (!s) return reply;
        const q = req.query as Record<string, string | undefined>;
        const page = clampedInt(q.page, { min: 0, max: 100_000, fallback: 0 });
        const f = { q: q.q, os: q.os, group: q.group, compliance: q.compliance };
        const [{ items, total }, fc] = await Promise.all([listEndpoints(o.db, { ...f, limit: 50, offset: page * 50 }), facets(o.db)]);
        const opt = (v: string, label: string, cur: string | undefined) => html`<option value="${v}"${cur === v ? raw(' selected') : ''}>${label}</option>`;
        const body = html`<form class="filters" method="get" action="/endpoints">
<label>Search <input name="q" value="${q.q ?? ''}" placeholder="host name or id"></label>
<label>OS <select name="os">${opt('', 'any', q.os)}${fc.osFamilies.map((x) => opt(x, x, q.os))}</select></label>
<label>Group <select name="group">${opt('', 'any', q.group)}${fc.groups.map((x) => opt(x, x, q.group))}</select></label>
<label>Compliance <select name="compliance">${opt('', 'any', q.compliance)}${opt('noncompliant', 'missing patches', q.compliance)}${opt('compliant', 'compliant', q.compliance)}</select></label>
<button type="submit">Filter</button></form>
<p class="muted">${total} endpoints${total > 50 ? `, page ${page + 1} of ${Math.ceil(total / 50)}` : ''}</p>
${table(['host', 'OS', 'status', 'missing', 'failed', 'pending reboot', 'last seen'], items.map((e) => [
  html`<a href="/endpoints/${encodeURIComponent(e.id)}">${e.hostname}</a>`, cell(`${e.osFamily} ${e.osName}`), cell(e.status), cell(e.outstanding - e.failed), cell(e.failed), cell(e.pendingReboot ? 'yes' : ''), when(e.lastSeenAt),
]), { testid: 'endpoints', empty: 'No endpoints match.' })}
${page > 0 ? html`<a href="/endpoints${qs({ ...f, page: page - 1 })}">← previous</a> ` : ''}${(page + 1) * 50 < total ? html`<a href="/endpoints${qs({ ...f, page: page + 1 })}">next →</a>` : ''}`;
        return send(reply, layout({ title: 'Endpoints', user: pageUser(s), active: '/endpoints', body }));
      });

      scope.get('/endpoints/:id', async (req, reply) => {
        const s = await requireSession(req, reply);
        if (!s) return reply;
        const { id } = req.params as { id: string };
        const e = await endpointDetail(o.db, id);
        if (!e) return send(reply, errorPage(pageUser(s), 'Endpoint not found', `There is no endpoint "${id}". Search for it on the Endpoints page.`), 404);
        const byState = (states: string[]) => e.patches.filter((p) => states.includes(p.state));
        const rows = (list: typeof e.patches, withError: boolean) =>
          list.map((p) => [html`<a href="/patches${qs({ q: p.patchId })}">${p.patchId}</a>`, cell(p.title), badge(p.severity), cell(p.knownExploited ? badge('known exploited', 'kev') : ''), when(p.detectedAt), withError ? cell(p.lastError ?? '') : when(p.installedAt)]);
        const body = html`<dl class="cards" data-testid="endpoint-facts">
<div class="card">OS<div>${e.osFamily} ${e.osName} ${e.osVersion}</div></div>
<div class="card">Status<div>${e.status}</div></div>
<div class="card">Last seen<div>${when(e.lastSeenAt)}</div></div>
<div class="card">Last scan<div>${when(e.lastScanAt)}</div></div>
<div class="card">Pending reboot<div data-testid="pending-reboot">${e.pendingReboot ? 'yes' : 'no'}</div></div>
<div class="card">Groups<div>${e.groups.join(', ') || '—'}</div></div></dl>
<h2>Missing (${byState(['missing']).length})</h2>${table(['patch', 'title', 'severity', '', 'detected', 'installed'], rows(byState(['missing']), false), { testid: 'missing', empty: 'None missing.' })}
<h2>Failed (${byState(['failed']).length})</h2>${table(['patch', 'title', 'severity', '', 'detected', 'reason'], rows(byState(['failed']), true), { testid: 'failed', empty: 'No failures.' })}
<h2>Installed (${byState(['installed', 'pending_reboot']).length})</h2>${table(['patch', 'title', 'severity', '', 'detected', 'installed'], rows(byState(['installed', 'pending_reboot']), false), { testid: 'installed', empty: 'None installed yet.' })}`;
        return send(reply, layout({ title: e.hostname, user: pageUser(s), active: '/endpoints', body }));
      });

      // ------------------------------------------------------------ patches
      scope.get('/patches', async (req, reply) => {
        const s = await requireSession(req, reply);
        if (!s) return reply;
        const q = req.query as Record<string, string | undefined>;
        const list = await listPatches(o.db, { q: q.q, severity: q.severity });
        const body = html`<form class="filters" method="get" action="/patches"><label>Search <input name="q" value="${q.q ?? ''}" placeholder="id, title or CVE"></label>
<label>Severity <select name="severity"><option value="">any</option>${['critical', 'important', 'moderate', 'low', 'unspecified'].map((v) => html`<option${q.severity === v ? raw(' selected') : ''}>${v}</option>`)}</select></label><button type="submit">Filter</button></form>
${table(['patch', 'title', 'type', 'severity', 'CVSS', 'CVEs', 'OS', 'missing on', 'failed on', 'superseded by'], list.map((p) => [
  cell(p.id), cell(p.title), cell(p.type), html`${badge(p.severity)} ${p.knownExploited ? badge('known exploited', 'kev') : ''}`, cell(p.cvss ?? ''), cell(p.cves.join(', ')), cell(p.osFamily), cell(p.missing), cell(p.failed), cell(p.supersededBy ?? ''),
]), { testid: 'patches', empty: 'No patches in the catalog match.' })}`;
        return send(reply, layout({ title: 'Patches', user: pageUser(s), active: '/patches', body }));
      });

      // ------------------------------------------------------------ cycles
      scope.get('/cycles', async (req, reply) => {
        const s = await requireSession(req, reply);
        if (!s) return reply;
        const list = await listCycles(o.db);
        const u = pageUser(s);
        const body = html`${adminActions(u)}${table(['cycle', 'policy', 'stage', 'change', 'requested by', 'started', 'updated'], list.map((c) => [
  html`<a href="/cycles/${encodeURIComponent(c.cycleId)}">${c.cycleId}</a>${c.emergency ? html` ${badge('emergency', 'critical')}` : ''}`, cell(c.policyName), badge(c.stage), cell(c.changeNumber ?? ''), cell(c.requestedBy), when(c.createdAt), when(c.updatedAt),
]), { testid: 'cycles', empty: 'No cycles yet.' })}`;
        return send(reply, layout({ title: 'Cycles', user: u, active: '/cycles', flash: flashOf(req), body }));
      });

      scope.get('/cycles/:id', async (req, reply) => {
        const s = await requireSession(req, reply);
        if (!s) return reply;
        const { id } = req.params as { id: string };
        const c = await cycleDetail(o.db, id);
        if (!c) return send(reply, errorPage(pageUser(s), 'Cycle not found', `There is no cycle "${id}". See the Cycles page.`), 404);
        const u = pageUser(s);
        let live: Awaited<ReturnType<CycleService['status']>> | null = null;
        if (o.cycles && !TERMINAL_STAGES.includes(c.stage as CycleStage)) {
          live = await o.cycles.status(id).catch((err: unknown) => {
            log.debug({ err, cycleId: id }, 'live status unavailable');
            return null;
          });
        }
        const link = workflowUrl(c.workflowId);
        const terminal = TERMINAL_STAGES.includes((live?.stage ?? c.stage) as CycleStage);
        const act = (path: string, label: string, extra: Html = html``, confirm?: string) =>
          html`<form method="post" action="/cycles/${encodeURIComponent(id)}/${path}" class="inline"${confirm ? raw(` data-confirm="${confirm}"`) : ''}>${csrfField(u)}${extra}<button type="submit" data-testid="${`action-${path}`}">${label}</button></form>`;
        const actions = !o.cycles
          ? html`<p class="muted" data-testid="actions-unavailable">Actions are unavailable: this server runs without the cycle service.</p>`
          : terminal
            ? html``
            : html`<div class="actions">
${roleAtLeast(s.role, 'approver') ? html`${act('approve', 'Approve')}${act('reject', 'Reject', html`<input name="reason" placeholder="reason (required)" required>`)}` : ''}
${roleAtLeast(s.role, 'admin') ? html`${live?.paused ? act('resume', 'Resume') : act('pause', 'Pause', html`<input name="reason" placeholder="reason">`)}${act('cancel', 'Cancel', html`<input name="reason" placeholder="reason">`, 'Cancel this cycle?')}` : ''}
${s.role === 'viewer' ? html`<p class="muted">Read-only: your role is viewer.</p>` : ''}</div>`;
        const waves = live?.waves.length
          ? live.waves.map((w) => [cell(`${w.index} ${w.name}`), cell(w.state), cell(w.total), cell(w.succeeded), cell(w.failed), cell(w.unreachable), cell(w.pending)])
          : c.waves.map((w) => [cell(w.wave === 0 ? '0 (test ring)' : String(w.wave)), cell(''), cell(w.total), cell(w.succeeded), cell(w.failed), cell(w.unreachable), cell(w.pending)]);
        const body = html`<div class="cards">
<div class="card">Stage<div data-testid="cycle-stage">${badge(live?.stage ?? c.stage)}${live?.paused ? html` ${badge('paused', 'failed')}` : ''}</div></div>
<div class="card">Policy<div>${c.policyName}${c.emergency ? ' (emergency)' : ''}</div></div>
<div class="card">Change<div data-testid="change-number">${live?.changeNumber ?? c.changeNumber ?? '—'}</div></div>
<div class="card">Requested by<div>${c.requestedBy}</div></div>
<div class="card">Workflow<div>${link ? html`<a href="${link}" data-testid="temporal-link">${c.workflowId}</a>` : c.workflowId}</div></div>
</div>
${actions}
${!terminal ? html`<span data-refresh="15"></span>` : ''}
<h2>Stage timeline</h2>
${c.timeline.length ? html`<ol class="timeline" data-testid="timeline">${c.timeline.map((t) => html`<li>${when(t.at)} ${badge(t.stage)} ${Object.keys(t.detail).length ? html`<span class="muted">${JSON.stringify(t.detail)}</span>` : ''}</li>`)}</ol>` : html`<p class="empty">No stage events yet.</p>`}
<h2>Approvals</h2>
${table(['who', 'decision', 'where', 'when', 'reason'], c.approvals.map((a) => [cell(a.identity), badge(a.decision), cell(a.channel), when(a.at), cell(a.reason ?? '')]), { testid: 'approvals', empty: live ? `No votes yet (${live.approvals.received} of ${live.approvals.needed} needed).` : 'No votes.' })}
<h2>Waves</h2>
${table(['wave', 'state', 'total', 'succeeded', 'failed', 'unreachable', 'pending'], waves, { testid: 'waves', empty: 'No waves have run yet.' })}
<h2>Failures</h2>
${table(['endpoint', 'wave', 'state', 'reason', 'when'], c.failures.map((f) => [html`<a href="/endpoints/${encodeURIComponent(f.endpointId)}">${f.hostname}</a>`, cell(f.wave ?? ''), badge(f.state), cell(f.error ?? ''), when(f.finishedAt)]), { testid: 'failures', empty: 'No failures.' })}
${live?.reasons.length ? html`<h2>Decisions</h2><ul>${live.reasons.map((r) => html`<li>${r}</li>`)}</ul>` : ''}
${c.reason ? html`<p>Reason: ${c.reason}</p>` : ''}`;
        return send(reply, layout({ title: `Cycle ${c.cycleId}`, user: u, active: '/cycles', flash: flashOf(req), body }));
      });

      const cycleAction = (path: string, needed: Role, what: string, run: (svc: CycleService, id: string, s: WebSession, form: Form) => Promise<string>) =>
        scope.post(`/cycles/:id/${path}`, async (req, reply) => {
          const a = await requireAction(req, reply, needed, what);
          if (!a) return reply;
          const { id } = req.params as { id: string };
          const to = `/cycles/${encodeURIComponent(id)}`;
          if (!o.cycles) return back(reply, to, { error: 'Actions are unavailable: this server runs without the cycle service.' });
          try {
            return back(reply, to, { ok: await run(o.cycles, id, a.s, a.form) });
          } catch (e) {
            return back(reply, to, { error: actionError(e) });
          }
        });

      cycleAction('approve', 'approver', 'approve a cycle', async (svc, id, s) => {
        const r = await svc.approve(id, { identity: s.identity, channel: 'web' });
        return `Approved (${r.approvalsReceived} of ${r.approvalsNeeded}; the cycle is ${r.outcome}).`;
      });
      cycleAction('reject', 'approver', 'reject a cycle', async (svc, id, s, form) => {
        const reason = str(form.reason);
        if (!reason) throw new CodedError(ErrorCode.InvalidInput, 'A rejection needs a reason.');
        await svc.reject(id, { identity: s.identity, channel: 'web', reason });
        return 'Rejected.';
      });
      cycleAction('pause', 'admin', 'pause a cycle', async (svc, id, s, form) => {
        await svc.pause(id, s.identity, str(form.reason) || undefined);
        return 'Pause requested.';
      });
      cycleAction('resume', 'admin', 'resume a cycle', async (svc, id, s) => {
        await svc.resume(id, s.identity);
        return 'Resume requested.';
      });
      cycleAction('cancel', 'admin', 'cancel a cycle', async (svc, id, s, form) => {
        await svc.cancel(id, s.identity, str(form.reason) || undefined);
        return 'Cancel requested.';
      });

      // ------------------------------------------------------------ exceptions
      scope.get('/exceptions', async (req, reply) => {
        const s = await requireSession(req, reply);
        if (!s) return reply;
        const u = pageUser(s);
        const list = await listExceptions(o.db, { now: now() });
        const admin = roleAtLeast(s.role, 'admin');
        const body = html`${admin ? html`<h2>Add an exception</h2><form class="stack" method="post" action="/exceptions" data-testid="exception-form">${csrfField(u)}
<label>Patch <input name="patchId" placeholder="KB5034441"></label><label>Endpoint <input name="endpointId" placeholder="endpoint id"></label><label>Group <input name="groupName" placeholder="group"></label>
<label>Reason <input name="reason" required></label><label>Expires <input name="expiresAt" type="date" required></label><button type="submit">Add</button></form>` : ''}
<h2>Active exceptions</h2>
${table(['code', 'patch', 'endpoint', 'group', 'reason', 'expires', 'by', ''], list.map((e) => [
  cell(e.code), cell(e.patchId ?? ''), cell(e.endpointId ?? ''), cell(e.groupName ?? ''), cell(e.reason), when(e.expiresAt), cell(e.createdBy),
  admin ? html`<form method="post" action="/exceptions/${encodeURIComponent(e.code)}/remove" class="inline" data-confirm="Remove ${e.code}?">${csrfField(u)}<button type="submit">Remove</button></form>` : cell(''),
]), { testid: 'exceptions', empty: 'No active exceptions.' })}`;
        return send(reply, layout({ title: 'Exceptions', user: u, active: '/exceptions', flash: flashOf(req), body }));
      });

      scope.post('/exceptions', async (req, reply) => {
        const a = await requireAction(req, reply, 'admin', 'add an exception');
        if (!a) return reply;
        const f = a.form;
        try {
          const expires = /^\d{4}-\d{2}-\d{2}$/.test(str(f.expiresAt)) ? dateParam(str(f.expiresAt), 'The expiry', 'end') : undefined;
          if (!expires) throw new CodedError(ErrorCode.InvalidInput, 'The expiry is not a date: pick one (YYYY-MM-DD).');
          if (expires <= now()) throw new CodedError(ErrorCode.InvalidInput, 'The expiry is in the past: pick a later date.');
          const e = await addException(o.db, { patchId: str(f.patchId) || undefined, endpointId: str(f.endpointId) || undefined, groupName: str(f.groupName) || undefined, reason: str(f.reason), expiresAt: expires, by: a.s.identity });
          return back(reply, '/exceptions', { ok: `Exception ${e.code} added.` });
        } catch (e) {
          return back(reply, '/exceptions', { error: actionError(e) });
        }
      });

      scope.post('/exceptions/:code/remove', async (req, reply) => {
        const a = await requireAction(req, reply, 'admin', 'remove an exception');
        if (!a) return reply;
        const { code } = req.params as { code: string };
        try {
          await removeException(o.db, code, a.s.identity);
          return back(reply, '/exceptions', { ok: `Exception ${code} removed.` });
        } catch (e) {
          return back(reply, '/exceptions', { error: actionError(e) });
        }
      });

      // ------------------------------------------------------------ audit
      const auditFilter = (q: Record<string, string | undefined>): AuditFilter => ({
        actor: q.actor || undefined,
        action: q.action || undefined,
        subjectType: q.subjectType || undefined,
        subjectId: q.subjectId || undefined,
        from: dateParam(q.from, 'From'),
        to: dateParam(q.to, 'To', 'end'),
      });

      scope.get('/audit', async (req, reply) => {
        const s = await requireSession(req, reply);
        if (!s) return reply;
        const q = req.query as Record<string, string | undefined>;
        const f = auditFilter(q);
        const before = clampedInt(q.before, { min: 0, max: Number.MAX_SAFE_INTEGER, fallback: 0 }) || undefined;
        const rows = await listAudit(o.db, { ...f, limit: 100, beforeId: before });
        const keep = { actor: q.actor, action: q.action, subjectType: q.subjectType, subjectId: q.subjectId, from: q.from, to: q.to };
        const input = (name: keyof typeof keep, label: string, type = 'text') => html`<label>${label} <input name="${name}" type="${type}" value="${keep[name] ?? ''}"></label>`;
        const body = html`<form class="filters" method="get" action="/audit">${input('actor', 'Actor')}${input('action', 'Action (prefix)')}${input('subjectType', 'Subject type')}${input('subjectId', 'Subject id')}${input('from', 'From', 'date')}${input('to', 'To', 'date')}<button type="submit">Filter</button>
<a href="/audit.csv${qs(keep)}" data-testid="audit-csv">Export CSV</a></form>
${table(['#', 'when', 'actor', 'action', 'subject', 'details'], rows.map((r) => [cell(r.id), when(r.at), cell(r.actor), cell(r.action), cell(`${r.subjectType} ${r.subjectId}`), html`<code>${JSON.stringify(r.details)}</code>`]), { testid: 'audit', empty: 'No audit entries match.' })}
${rows.length === 100 ? html`<a href="/audit${qs({ ...keep, before: rows[rows.length - 1]!.id })}">older →</a>` : ''}
<p class="muted">The log is hash-chained and append-only; <code>patchops audit verify</code> checks the whole chain.</p>`;
        return send(reply, layout({ title: 'Audit log', user: pageUser(s), active: '/audit', body }));
      });

      scope.get('/audit.csv', async (req, reply) => {
        const s = await requireSession(req, reply);
        if (!s) return reply;
        const f = auditFilter(req.query as Record<string, string | undefined>);
        let out = csvLine(['id', 'at', 'actor', 'action', 'subject_type', 'subject_id', 'details', 'hash']);
        for await (const batch of iterateAudit(o.db, f)) for (const r of batch) out += csvLine([r.id, r.at, r.actor, r.action, r.subjectType, r.subjectId, r.details, r.hash]);
        return reply.header('content-type', 'text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="patchops-audit.csv"').send(out);
      });

      // ------------------------------------------------------------ reports
      scope.get('/reports', async (req, reply) => {
        const s = await requireSession(req, reply);
        if (!s) return reply;
        const links = (scopeName: string, label: string) => html`<li>${label}: <a href="/reports/${scopeName}.csv">CSV</a> · <a href="/reports/${scopeName}.pdf">PDF</a></li>`;
        const body = html`<ul data-testid="reports">${links('all', 'Everything')}${links('compliance', 'Compliance by group and OS')}${links('sla', 'SLA breaches')}${links('cycles', 'Cycle results')}</ul>
<p class="muted">The same reports from the command line: <code>patchops report --format csv|pdf --scope all|compliance|sla|cycles --out FILE</code>.</p>`;
        return send(reply, layout({ title: 'Reports', user: pageUser(s), active: '/reports', body }));
      });

      scope.get('/reports/:file', async (req, reply) => {
        const s = await requireSession(req, reply);
        if (!s) return reply;
        const m = /^([a-z]+)\.(csv|pdf)$/.exec((req.params as { file: string }).file);
        if (!m) return send(reply, errorPage(pageUser(s), 'No such report', 'Reports are /reports/<scope>.csv or .pdf; see the Reports page.'), 404);
        let scopeName;
        try {
          scopeName = parseScope(m[1]);
        } catch (e) {
          return send(reply, errorPage(pageUser(s), 'No such report', actionError(e)), 404);
        }
        const format = m[2] as 'csv' | 'pdf';
        const data = await collectReport(o.db, scopeName, { now: now() });
        const buf = await renderReport(data, format);
        return reply
          .header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : 'application/pdf')
          .header('content-disposition', `attachment; filename="patchops-${scopeName}-${data.generatedAt.slice(0, 10)}.${format}"`)
          .send(buf);
      });
    });
  };
}

/**
 * Where to go after signing in: a path on this server only. Browsers read `/\evil.example` as
 * `//evil.example` and drop tabs and newlines, so a backslash or control character anywhere, or a second
 * leading slash, sends the user to the overview instead.
 */
const hasControlOrBackslash = (s: string) => [...s].some((c) => c === '\\' || c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);

export function safeNext(next: string | undefined): string {
  if (!next || next.length > 2000 || !next.startsWith('/') || /^\/[/\\]/.test(next) || hasControlOrBackslash(next)) return '/';
  let url: URL;
  try {
    url = new URL(next, 'http://patchops.invalid');
  } catch {
    return '/';
  }
  if (url.origin !== 'http://patchops.invalid' || url.pathname.startsWith('/login')) return '/';
  return `${url.pathname}${url.search}${url.hash}`;
}

function randomToken(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString('base64url');
}
