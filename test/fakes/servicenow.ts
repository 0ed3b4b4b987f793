/**
 * A local ServiceNow over HTTP, for tests and the demo (PATCHOPS_DEMO). Stateful; speaks the documented
 * shapes: `{result: …}` bodies, `{error: {message, detail}, status: "failure"}` errors, `{value,
 * display_value}` pairs with sysparm_display_value=all (and always from the Change API), Link and
 * X-Total-Count paging, 401 without auth, 429/5xx on demand, and an OAuth token endpoint.
 *
 * Result shapes, each as ServiceNow documents it: the Change API answers one record as `{result: {…}}` with
 * every field a `{value, display_value}` pair, or — `changeResultShape = 'array'`, as some of ServiceNow's
 * Change Management API examples show — as `{result: [{…}]}` with sys_id a plain string and the other
 * fields pairs. The Table API honours sysparm_display_value (false / true / all) and, unless
 * sysparm_exclude_reference_link=true, answers reference fields as `{link, value}` (or with display_value).
 *
 * Implemented: Table API (GET list/one, POST, PATCH/PUT, DELETE) with encoded queries (=, !=, IN, LIKE,
 * STARTSWITH, ^ joins, ORDERBY/ORDERBYDESC); Change Management API (POST normal / emergency /
 * standard/{template}, GET/PATCH change/{sys_id}, change tasks). State transitions are checked as the
 * default normal-change model does (Review only from Implement, Closed only from Review).
 *
 * A test plays the change manager with approve / reject / schedule / implement / cancel / reschedule /
 * addNote; when a webhook is configured the fake then calls it the way docs/servicenow/ business rule does.
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { readBody } from './http-body';

export type Row = Record<string, string>;

export interface ServiceNowFakeOptions {
  users?: Array<{ username: string; password: string }>;
  oauthClients?: Array<{ clientId: string; clientSecret: string }>;
  tokenTtlSeconds?: number;
  /** Where the business rule posts state changes (POST /webhooks/servicenow of patchops). */
  webhook?: { url: string; secret?: string; basic?: { username: string; password: string } };
  port?: number;
  /** How the Change API answers a single record (see the header). */
  changeResultShape?: ChangeResultShape;
}

export type ChangeResultShape = 'object' | 'array';

export interface InjectedFailure {
  status: number;
  retryAfter?: string;
  error?: { message: string; detail?: string };
  /** Only requests whose path starts with this. */
  pathPrefix?: string;
}

export const STATE_LABELS: Record<string, string> = {
  '-5': 'New',
  '-4': 'Assess',
  '-3': 'Authorize',
  '-2': 'Scheduled',
  '-1': 'Implement',
  '0': 'Review',
  '3': 'Closed',
  '4': 'Canceled',
};
const APPROVAL_LABELS: Record<string, string> = {
  requested: 'Requested',
  approved: 'Approved',
  rejected: 'Rejected',
  'not requested': 'Not Yet Requested',
};
const RISK_LABELS: Record<string, string> = { '1': 'Very High', '2': 'High', '3': 'Moderate', '4': 'Low' };
const IMPACT_LABELS: Record<string, string> = { '1': '1 - High', '2': '2 - Medium', '3': '3 - Low' };

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
  auth: string | undefined;
}

export class ServiceNowFake {
  readonly tables = new Map<string, Row[]>();
  readonly requests: RecordedRequest[] = [];
  readonly tokenGrants: string[] = [];
  readonly webhookCalls: Array<{ status: number; body: unknown }> = [];
  private readonly failures: InjectedFailure[] = [];
  private readonly tokens = new Map<string, { expiresAt: number; user: string }>();
  private readonly refreshTokens = new Map<string, string>();
  private server: http.Server | undefined;
  private counters: Record<string, number> = { change_request: 10000, change_task: 10000 };
  url = '';
  webhook: ServiceNowFakeOptions['webhook'];
  changeResultShape: ChangeResultShape;

  constructor(private readonly o: ServiceNowFakeOptions = {}) {
    this.webhook = o.webhook;
    this.changeResultShape = o.changeResultShape ?? 'object';
  }

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        send(res, 500, { error: { message: (e as Error).message, detail: '' }, status: 'failure' });
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.o.port ?? 0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = undefined;
  }

  // ---------------------------------------------------------------- test controls

  /** The next matching requests fail with this status (one per entry). */
  inject(failure: InjectedFailure, times = 1): void {
    for (let i = 0; i < times; i++) this.failures.push(failure);
  }

  revokeTokens(): void {
    this.tokens.clear();
  }

  table(name: string): Row[] {
    let t = this.tables.get(name);
    if (!t) {
      t = [];
      this.tables.set(name, t);
    }
    return t;
  }

  insert(table: string, fields: Record<string, string>, by = 'admin'): Row {
    const now = snNow();
    const row: Row = {
      sys_id: randomBytes(16).toString('hex'),
      sys_created_on: now,
      sys_updated_on: now,
      sys_created_by: by,
      sys_updated_by: by,
      sys_mod_count: '0',
      ...fields,
    };
    if (table === 'change_request' && !fields.number)
      row.number = `CHG${String(++this.counters.change_request!).padStart(7, '0')}`;
    if (table === 'change_task' && !fields.number)
      row.number = `CTASK${String(++this.counters.change_task!).padStart(7, '0')}`;
    this.table(table).push(row);
    return row;
  }

  seedCi(name: string, cls = 'cmdb_ci_computer'): Row {
    return this.insert('cmdb_ci', { name, sys_class_name: cls });
  }

  seedGroup(name: string): Row {
    return this.insert('sys_user_group', { name });
  }

  seedStandardTemplate(name: string, fields: Record<string, string> = {}): Row {
    return this.insert('std_change_record_producer', { name, ...fields });
  }

  change(number: string): Row | undefined {
    return this.table('change_request').find((r) => r.number === number || r.sys_id === number);
  }

  changes(): Row[] {
    return this.table('change_request');
  }

  workNotes(number: string): string[] {
    const c = this.change(number);
    if (!c) return [];
    return this.table('sys_journal_field')
      .filter((j) => j.element_id === c.sys_id && j.element === 'work_notes')
      .map((j) => j.value!);
  }

  tasks(number: string): Row[] {
    const c = this.change(number);
    return c ? this.table('change_task').filter((t) => t.change_request === c.sys_id) : [];
  }

  affectedCis(number: string): string[] {
    const c = this.change(number);
    if (!c) return [];
    const ids = this.table('task_ci')
      .filter((t) => t.task === c.sys_id)
      .map((t) => t.ci_item);
    return this.table('cmdb_ci')
      .filter((ci) => ids.includes(ci.sys_id))
      .map((ci) => ci.name!);
  }

  // ---------------------------------------------------------------- the change manager

  /** Approves: approval=approved and the change moves to Scheduled (as the normal-change model does). */
  approve(number: string, by = 'change.manager'): Promise<number | undefined> {
    return this.act(number, by, { approval: 'approved', state: '-2' });
  }

  reject(number: string, reason: string, by = 'change.manager'): Promise<number | undefined> {
    const c = this.mustChange(number);
    this.insert(
      'sysapproval_approver',
      { sysapproval: c.sys_id!, state: 'rejected', comments: reason, approver: by },
      by,
    );
    return this.act(number, by, { approval: 'rejected', state: '-5' }, reason);
  }

  /** Assess → Authorize: approval requested. */
  requestApproval(number: string, by = 'change.manager'): Promise<number | undefined> {
    return this.act(number, by, { approval: 'requested', state: '-3' });
  }

  schedule(number: string, by = 'change.manager'): Promise<number | undefined> {
    return this.act(number, by, { state: '-2' });
  }

  implement(number: string, by = 'change.manager'): Promise<number | undefined> {
    return this.act(number, by, { state: '-1' });
  }

  cancel(number: string, reason: string, by = 'change.manager'): Promise<number | undefined> {
    return this.act(number, by, { state: '4', close_notes: reason }, reason);
  }

  /** Moves the planned window (ISO times). */
  reschedule(number: string, start: string, end: string, by = 'change.manager'): Promise<number | undefined> {
    return this.act(number, by, { start_date: isoToSn(start), end_date: isoToSn(end) });
  }

  addNote(number: string, note: string, by = 'change.manager'): void {
    const c = this.mustChange(number);
    this.journal(c, 'work_notes', note, by);
  }

  private mustChange(number: string): Row {
    const c = this.change(number);
    if (!c) throw new Error(`fake ServiceNow: no change ${number}`);
    return c;
  }

  private async act(
    number: string,
    by: string,
    fields: Record<string, string>,
    reason?: string,
  ): Promise<number | undefined> {
    const c = this.mustChange(number);
    Object.assign(c, fields);
    touch(c, by);
    return this.callWebhook(c, reason);
  }

  /** Posts the change as the business rule in docs/servicenow/ does; returns the HTTP status. */
  async callWebhook(c: Row, reason?: string): Promise<number | undefined> {
    if (!this.webhook) return undefined;
    const body = {
      number: c.number,
      sys_id: c.sys_id,
      correlation_id: c.correlation_id ?? '',
      state: c.state,
      state_label: STATE_LABELS[c.state ?? ''] ?? '',
      approval: c.approval ?? '',
      start_date: c.start_date ?? '',
      end_date: c.end_date ?? '',
      sys_updated_by: c.sys_updated_by ?? '',
      sys_mod_count: c.sys_mod_count ?? '0',
      reason: reason ?? '',
    };
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.webhook.secret) headers['x-patchops-secret'] = this.webhook.secret;
    if (this.webhook.basic)
      headers.authorization = `Basic ${Buffer.from(`${this.webhook.basic.username}:${this.webhook.basic.password}`).toString('base64')}`;
    const res = await fetch(this.webhook.url, { method: 'POST', headers, body: JSON.stringify(body) });
    this.webhookCalls.push({ status: res.status, body });
    await res.body?.cancel();
    return res.status;
  }

  // ---------------------------------------------------------------- HTTP

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const raw = await readBody(req);
    const query = Object.fromEntries(url.searchParams);
    let body: unknown = undefined;
    if (raw && (req.headers['content-type'] ?? '').includes('application/json')) {
      try {
        body = JSON.parse(raw);
      } catch {
        return send(res, 400, {
          error: { message: 'Exception while reading request', detail: 'The payload is not valid JSON.' },
          status: 'failure',
        });
      }
    }
    this.requests.push({
      method: req.method ?? 'GET',
      path: url.pathname,
      query,
      body: body ?? raw,
      auth: req.headers.authorization,
    });

    const failureIdx = this.failures.findIndex((f) => !f.pathPrefix || url.pathname.startsWith(f.pathPrefix));
    if (failureIdx >= 0) {
      const f = this.failures.splice(failureIdx, 1)[0]!;
      if (f.retryAfter !== undefined) res.setHeader('retry-after', f.retryAfter);
      return send(res, f.status, {
        error: f.error ?? { message: f.status === 429 ? 'Too many requests' : 'Internal server error', detail: '' },
        status: 'failure',
      });
    }

    if (url.pathname === '/oauth_token.do' && req.method === 'POST') return this.oauth(new URLSearchParams(raw), res);

    const user = this.authenticate(req.headers.authorization);
    if (!user) {
      res.setHeader('www-authenticate', 'BASIC realm="Service-now"');
      return send(res, 401, {
        error: { message: 'User Not Authenticated', detail: 'Required to provide Auth information' },
        status: 'failure',
      });
    }

    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (parts[0] === 'api' && parts[1] === 'now' && parts[2] === 'table' && parts[3])
      return this.tableApi(req.method ?? 'GET', parts[3], parts[4], query, body as Row | undefined, user, res, url);
    if (parts[0] === 'api' && parts[1] === 'sn_chg_rest' && parts[2] === 'change')
      return this.changeApi(
        req.method ?? 'GET',
        parts.slice(3),
        { ...query, ...((body as Row | undefined) ?? {}) },
        user,
        res,
      );
    return send(res, 400, {
      error: { message: 'Requested URI does not represent any resource', detail: '' },
      status: 'failure',
    });
  }

  private authenticate(header: string | undefined): string | undefined {
    if (!header) return undefined;
    const [scheme, value] = header.split(' ');
    if (scheme?.toLowerCase() === 'basic' && value) {
      const [u, ...p] = Buffer.from(value, 'base64').toString().split(':');
      const users = this.o.users ?? [{ username: 'admin', password: 'admin' }];
      return users.some((x) => x.username === u && x.password === p.join(':')) ? u : undefined;
    }
    if (scheme?.toLowerCase() === 'bearer' && value) {
      const t = this.tokens.get(value);
      return t && t.expiresAt > Date.now() ? t.user : undefined;
    }
    return undefined;
  }

  private oauth(form: URLSearchParams, res: http.ServerResponse): void {
    const grant = form.get('grant_type') ?? '';
    this.tokenGrants.push(grant);
    const clients = this.o.oauthClients ?? [{ clientId: 'patchops', clientSecret: 'secret' }];
    const client = clients.find(
      (c) => c.clientId === form.get('client_id') && c.clientSecret === form.get('client_secret'),
    );
    if (!client) return send(res, 401, { error: 'access_denied', error_description: 'access_denied' });
    let user = `oauth:${client.clientId}`;
    if (grant === 'password') {
      const users = this.o.users ?? [{ username: 'admin', password: 'admin' }];
      if (!users.some((u) => u.username === form.get('username') && u.password === form.get('password')))
        return send(res, 401, { error: 'access_denied', error_description: 'access_denied' });
      user = form.get('username')!;
    } else if (grant === 'refresh_token') {
      const owner = this.refreshTokens.get(form.get('refresh_token') ?? '');
      if (!owner) return send(res, 401, { error: 'invalid_grant', error_description: 'refresh token is invalid' });
      user = owner;
    } else if (grant !== 'client_credentials') {
      return send(res, 400, {
        error: 'unsupported_grant_type',
        error_description: `grant_type ${grant} is not supported`,
      });
    }
    const ttl = this.o.tokenTtlSeconds ?? 1799;
    const access = randomBytes(24).toString('base64url');
    const refresh = randomBytes(24).toString('base64url');
    this.tokens.set(access, { expiresAt: Date.now() + ttl * 1000, user });
    this.refreshTokens.set(refresh, user);
    send(res, 200, {
      access_token: access,
      refresh_token: refresh,
      scope: 'useraccount',
      token_type: 'Bearer',
      expires_in: ttl,
    });
  }

  private tableApi(
    method: string,
    table: string,
    sysId: string | undefined,
    q: Record<string, string>,
    body: Row | undefined,
    user: string,
    res: http.ServerResponse,
    url: URL,
  ): void {
    const rows = this.table(table);
    const dv = q.sysparm_display_value ?? 'false';
    const fields = q.sysparm_fields ? q.sysparm_fields.split(',') : undefined;
    const linkBase = q.sysparm_exclude_reference_link === 'true' ? undefined : this.url;
    if (sysId) {
      const row = rows.find((r) => r.sys_id === sysId);
      if (!row)
        return send(res, 404, {
          error: { message: 'No Record found', detail: "Record doesn't exist or ACL restricts the record retrieval" },
          status: 'failure',
        });
      if (method === 'GET') return send(res, 200, { result: present(table, row, dv, fields, this, linkBase) });
      if (method === 'PATCH' || method === 'PUT') {
        const err = this.update(table, row, body ?? {}, user);
        if (err) return send(res, 403, { error: { message: err, detail: '' }, status: 'failure' });
        return send(res, 200, { result: present(table, row, dv, fields, this, linkBase) });
      }
      if (method === 'DELETE') {
        rows.splice(rows.indexOf(row), 1);
        res.statusCode = 204;
        return void res.end();
      }
    } else {
      if (method === 'GET') {
        const matched = applyQuery(rows, q.sysparm_query ?? '');
        const limit = Number(q.sysparm_limit ?? 10000);
        const offset = Number(q.sysparm_offset ?? 0);
        const page = matched.slice(offset, offset + limit);
        res.setHeader('x-total-count', String(matched.length));
        const link = (o: number, rel: string) => {
          const u = new URL(url.toString().replace('http://fake', this.url));
          u.searchParams.set('sysparm_offset', String(o));
          u.searchParams.set('sysparm_limit', String(limit));
          return `<${u.toString()}>;rel="${rel}"`;
        };
        const links = [link(0, 'first')];
        if (offset > 0) links.push(link(Math.max(0, offset - limit), 'prev'));
        if (offset + limit < matched.length) links.push(link(offset + limit, 'next'));
        links.push(link(Math.max(0, Math.floor((matched.length - 1) / limit) * limit), 'last'));
        res.setHeader('link', links.join(','));
        return send(res, 200, { result: page.map((r) => present(table, r, dv, fields, this, linkBase)) });
      }
      if (method === 'POST') {
        const { work_notes: note, ...rest } = (body ?? {}) as Row;
        const row = this.insert(table, stringify(rest), user);
        if (note) this.journal(row, 'work_notes', note, user);
        return send(res, 201, { result: present(table, row, dv, fields, this, linkBase) });
      }
    }
    send(res, 405, { error: { message: 'Method not Supported', detail: '' }, status: 'failure' });
  }

  private changeApi(method: string, rest: string[], body: Row, user: string, res: http.ServerResponse): void {
    const [first, second, third, fourth] = rest;
    if (
      method === 'POST' &&
      (first === 'normal' || first === 'emergency' || first === 'standard') &&
      (first !== 'standard' || second) &&
      !third
    ) {
      const fields: Row = {
        type: first,
        state: '-5',
        approval: first === 'standard' ? 'approved' : 'not requested',
        active: 'true',
      };
      if (first === 'standard') {
        const tpl = this.table('std_change_record_producer').find((t) => t.sys_id === second);
        if (!tpl)
          return send(res, 404, {
            error: { message: 'Standard change template not found', detail: `No template with sys_id ${second}` },
            status: 'failure',
          });
        fields.std_change_producer_version = tpl.sys_id!;
        if (tpl.short_description) fields.short_description = tpl.short_description;
      }
      const { work_notes: note, ...values } = stringify(body);
      const row = this.insert('change_request', { ...fields, ...values }, user);
      if (note) this.journal(row, 'work_notes', note, user);
      return send(res, 200, { result: this.changeResult('change_request', row) });
    }
    const change = first ? this.table('change_request').find((r) => r.sys_id === first) : undefined;
    if (!change)
      return send(res, 404, {
        error: { message: 'No Record found', detail: "Record doesn't exist or ACL restricts the record retrieval" },
        status: 'failure',
      });
    if (!second) {
      if (method === 'GET') return send(res, 200, { result: this.changeResult('change_request', change) });
      if (method === 'PATCH') {
        const err = this.update('change_request', change, body, user);
        if (err) return send(res, 403, { error: { message: err, detail: '' }, status: 'failure' });
        return send(res, 200, { result: this.changeResult('change_request', change) });
      }
    }
    if (second === 'task') {
      if (!third && method === 'POST') {
        const row = this.insert(
          'change_task',
          { state: '1', ...stringify(body), change_request: change.sys_id! },
          user,
        );
        return send(res, 200, { result: this.changeResult('change_task', row) });
      }
      if (!third && method === 'GET')
        return send(res, 200, {
          result: this.tasks(change.number!).map((t) => present('change_task', t, 'all', undefined, this)),
        });
      const task = this.table('change_task').find((t) => t.sys_id === third && t.change_request === change.sys_id);
      if (!task || fourth)
        return send(res, 404, {
          error: { message: 'No Record found', detail: 'change task not found' },
          status: 'failure',
        });
      if (method === 'PATCH') this.update('change_task', task, body, user);
      return send(res, 200, { result: this.changeResult('change_task', task) });
    }
    send(res, 405, { error: { message: 'Method not Supported', detail: '' }, status: 'failure' });
  }

  /** One record as the Change API answers it, in the configured shape. */
  private changeResult(table: string, row: Row): unknown {
    const pairs = present(table, row, 'all', undefined, this);
    return this.changeResultShape === 'array' ? [{ ...pairs, sys_id: row.sys_id }] : pairs;
  }

  /** Applies an update; returns an error message when a change-state transition is not allowed. */
  private update(table: string, row: Row, body: Record<string, unknown>, user: string): string | undefined {
    const { work_notes: note, comments, ...rest } = body as Row;
    const values = stringify(rest);
    if (table === 'change_request' && values.state !== undefined && values.state !== row.state) {
      const from = row.state ?? '-5';
      const to = values.state;
      const allowed: Record<string, string[]> = { '0': ['-1'], '3': ['0'], '-1': ['-2'] };
      if (['3', '4'].includes(from)) return `Change ${row.number} is ${STATE_LABELS[from]} and cannot be changed`;
      const need = allowed[to];
      if (need && !need.includes(from))
        return `State transition from ${STATE_LABELS[from]} to ${STATE_LABELS[to]} is not allowed`;
      if (to === '3' && !values.close_code && !row.close_code)
        return 'Close code and close notes are mandatory when closing a change';
      if (to === '-1' && row.approval !== 'approved') return `Change ${row.number} is not approved`;
    }
    Object.assign(row, values);
    if (note) this.journal(row, 'work_notes', note, user);
    if (comments) this.journal(row, 'comments', comments, user);
    touch(row, user);
    return undefined;
  }

  private journal(row: Row, element: string, value: string, by: string): void {
    this.insert('sys_journal_field', { element_id: row.sys_id!, element, value, name: 'change_request' }, by);
  }
}

// ---------------------------------------------------------------- helpers

/** Reference fields (to another table) per table: answered as {link, value} unless reference links are excluded. */
const REFERENCES: Record<string, Record<string, string>> = {
  change_request: {
    assignment_group: 'sys_user_group',
    cmdb_ci: 'cmdb_ci',
    std_change_producer_version: 'std_change_producer_version',
  },
  change_task: { change_request: 'change_request' },
  task_ci: { task: 'task', ci_item: 'cmdb_ci' },
  sysapproval_approver: { sysapproval: 'task' },
};

/** A row as the Table API shows it: values, display values or both; references with a link when `linkBase` is set. */
function present(
  table: string,
  row: Row,
  dv: string,
  fields: string[] | undefined,
  fake: ServiceNowFake,
  linkBase?: string,
): Record<string, unknown> {
  const keys = fields ?? Object.keys(row);
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    let value = row[k] ?? '';
    if (k === 'work_notes' && table === 'change_request') value = fake.workNotes(row.number!).join('\n\n');
    const ref = REFERENCES[table]?.[k];
    const target =
      ref && value ? fake.table(ref === 'task' ? 'change_request' : ref).find((r) => r.sys_id === value) : undefined;
    const display = target ? (target.number ?? target.name ?? value) : displayOf(table, k, value);
    if (ref && linkBase && value) {
      const link = `${linkBase}/api/now/table/${ref}/${value}`;
      out[k] =
        dv === 'all'
          ? { display_value: display, link, value }
          : dv === 'true'
            ? { display_value: display, link }
            : { link, value };
      continue;
    }
    out[k] = dv === 'all' ? { value, display_value: display } : dv === 'true' ? display : value;
  }
  return out;
}

function displayOf(table: string, field: string, value: string): string {
  if (field === 'state' && table === 'change_request') return STATE_LABELS[value] ?? value;
  if (field === 'approval') return APPROVAL_LABELS[value] ?? value;
  if (field === 'risk') return RISK_LABELS[value] ?? value;
  if (field === 'impact') return IMPACT_LABELS[value] ?? value;
  return value;
}

function applyQuery(rows: Row[], query: string): Row[] {
  const conds = query.split('^').filter(Boolean);
  let out = rows.filter((r) =>
    conds.every((c) => {
      if (c.startsWith('ORDERBY')) return true;
      let m: RegExpExecArray | null;
      if ((m = /^([\w.]+)IN(.*)$/.exec(c))) return m[2]!.split(',').includes(r[m[1]!] ?? '');
      if ((m = /^([\w.]+)LIKE(.*)$/.exec(c))) return (r[m[1]!] ?? '').toLowerCase().includes(m[2]!.toLowerCase());
      if ((m = /^([\w.]+)STARTSWITH(.*)$/.exec(c))) return (r[m[1]!] ?? '').startsWith(m[2]!);
      if ((m = /^([\w.]+)!=(.*)$/.exec(c))) return (r[m[1]!] ?? '') !== m[2];
      if ((m = /^([\w.]+)=(.*)$/.exec(c))) return (r[m[1]!] ?? '') === m[2];
      return false;
    }),
  );
  for (const c of conds) {
    const m = /^ORDERBY(DESC)?(\w+)$/.exec(c);
    if (m) {
      const f = m[2]!;
      out = [...out].sort((a, b) => (a[f] ?? '').localeCompare(b[f] ?? '') * (m[1] ? -1 : 1));
    }
  }
  return out;
}

function stringify(o: Record<string, unknown>): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(o))
    if (v !== undefined && v !== null) out[k] = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return out;
}

function touch(row: Row, by: string): void {
  row.sys_updated_on = snNow();
  row.sys_updated_by = by;
  row.sys_mod_count = String(Number(row.sys_mod_count ?? 0) + 1);
}

function snNow(): string {
  return new Date().toISOString().slice(0, 19).replace('T', ' ');
}

function isoToSn(iso: string): string {
  return new Date(iso).toISOString().slice(0, 19).replace('T', ' ');
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json;charset=UTF-8');
  res.end(JSON.stringify(body));
}
