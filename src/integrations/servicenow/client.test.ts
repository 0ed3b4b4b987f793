import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ServiceNowFake } from '../../../test/fakes/servicenow';
import { CodedError } from '../../domain/errors';
import { nextOffsetFromLink, retryAfterMs, ServiceNowClient, snValue, type ServiceNowClientOptions } from './client';

const fake = new ServiceNowFake({
  users: [{ username: 'svc.patchops', password: 'pw' }],
  oauthClients: [{ clientId: 'cid', clientSecret: 'csecret' }],
});
let url = '';
let waits: number[] = [];

beforeAll(async () => {
  url = await fake.start();
});
afterAll(() => fake.stop());
beforeEach(() => {
  waits = [];
});

function client(over: Partial<ServiceNowClientOptions> = {}): ServiceNowClient {
  return new ServiceNowClient({
    instanceUrl: url,
    auth: { kind: 'basic', username: 'svc.patchops', password: 'pw' },
    sleep: async (ms) => {
      waits.push(ms);
    },
    backoffMs: 100,
    ...over,
  });
}

describe('ServiceNowClient auth', () => {
  it('reads with basic auth', async () => {
    fake.insert('sys_user', { user_name: 'a' });
    const page = await client().tableQuery('sys_user', { limit: 1 });
    expect(page.records).toHaveLength(1);
    expect(fake.requests.at(-1)!.auth).toBe(`Basic ${Buffer.from('svc.patchops:pw').toString('base64')}`);
  });

  it('fails with ServiceNow’s message and a hint on bad basic credentials', async () => {
    await expect(client({ auth: { kind: 'basic', username: 'svc.patchops', password: 'wrong' } }).tableQuery('sys_user')).rejects.toThrow(
      /returned 401: User Not Authenticated: Required to provide Auth information\. Check the ServiceNow credentials/,
    );
  });

  it('gets an OAuth token with client credentials, caches it, and refreshes it before expiry', async () => {
    let now = Date.now();
    const c = client({ auth: { kind: 'oauth', clientId: 'cid', clientSecret: 'csecret' }, now: () => now });
    const before = fake.tokenGrants.length;
    await c.tableQuery('sys_user', { limit: 1 });
    await c.tableQuery('sys_user', { limit: 1 });
    expect(fake.tokenGrants.slice(before)).toEqual(['client_credentials']);
    expect(fake.requests.at(-1)!.auth).toMatch(/^Bearer /);
    now += 1799_000 - 30_000; // inside the 60 s refresh margin
    await c.tableQuery('sys_user', { limit: 1 });
    expect(fake.tokenGrants.slice(before)).toEqual(['client_credentials', 'refresh_token']);
  });

  it('uses the password grant when a user is given, and gets a new token after a 401', async () => {
    const c = client({ auth: { kind: 'oauth', clientId: 'cid', clientSecret: 'csecret', username: 'svc.patchops', password: 'pw' } });
    const before = fake.tokenGrants.length;
    await c.tableQuery('sys_user', { limit: 1 });
    fake.revokeTokens();
    await c.tableQuery('sys_user', { limit: 1 });
    expect(fake.tokenGrants.slice(before)).toEqual(['password', 'refresh_token']);
  });

  it('says which variables to check when the OAuth client is refused', async () => {
    const c = client({ auth: { kind: 'oauth', clientId: 'cid', clientSecret: 'nope' } });
    await expect(c.tableQuery('sys_user')).rejects.toThrow(/OAuth token request returned 401.*SERVICENOW_CLIENT_ID/);
  });
});

describe('ServiceNowClient resilience', () => {
  it('honours Retry-After on 429', async () => {
    fake.inject({ status: 429, retryAfter: '7', pathPrefix: '/api/now/table/sys_user' });
    const page = await client().tableQuery('sys_user');
    expect(page.records.length).toBeGreaterThan(0);
    expect(waits).toEqual([7000]);
  });

  it('retries 5xx with exponential backoff, then gives up with ServiceNow’s message', async () => {
    fake.inject({ status: 503, pathPrefix: '/api/now/table/sys_user' }, 2);
    await client().tableQuery('sys_user');
    expect(waits).toEqual([100, 200]);

    waits = [];
    fake.inject({ status: 500, error: { message: 'Transaction cancelled', detail: 'maximum execution time exceeded' }, pathPrefix: '/api/now/table/sys_user' }, 4);
    const err = await client().tableQuery('sys_user').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CodedError);
    expect((err as CodedError).code).toBe('INTEGRATION_FAILED');
    expect((err as CodedError).message).toContain('returned 500: Transaction cancelled: maximum execution time exceeded');
    expect((err as CodedError).retryable).toBe(true);
    expect(waits).toEqual([100, 200, 400]);
  });

  it('times out a call that does not answer', async () => {
    const hang = (() => new Promise<Response>((_resolve, reject) => setTimeout(() => reject(Object.assign(new Error('aborted'), { name: 'TimeoutError' })), 5))) as typeof fetch;
    await expect(client({ fetch: hang, timeoutMs: 5, maxRetries: 1 }).tableQuery('x')).rejects.toThrow(/no answer within 5 ms/);
    expect(waits).toEqual([100]);
  });

  it('does not retry a 4xx and reports ServiceNow’s error text', async () => {
    fake.inject({ status: 400, error: { message: 'Invalid query', detail: 'field xyz does not exist' }, pathPrefix: '/api/now/table/incident' });
    await expect(client().tableQuery('incident')).rejects.toThrow(/returned 400: Invalid query: field xyz does not exist/);
    expect(waits).toEqual([]);
  });
});

describe('ServiceNowClient Table API', () => {
  it('queries with sysparm_query and fields, and pages by Link until done', async () => {
    for (let i = 0; i < 7; i++) fake.insert('cmdb_ci', { name: `pager-${i}`, sys_class_name: 'cmdb_ci_computer' });
    const c = client();
    const first = await c.tableQuery<{ name: string }>('cmdb_ci', { query: 'nameSTARTSWITHpager-^ORDERBYname', fields: ['name'], limit: 3 });
    expect(first.records).toEqual([{ name: 'pager-0' }, { name: 'pager-1' }, { name: 'pager-2' }]);
    expect(first.total).toBe(7);
    expect(first.nextOffset).toBe(3);
    const all = await c.tableQueryAll<{ name: string }>('cmdb_ci', { query: 'nameSTARTSWITHpager-^ORDERBYname', fields: ['name'], limit: 3 });
    expect(all.map((r) => r.name)).toEqual(['pager-0', 'pager-1', 'pager-2', 'pager-3', 'pager-4', 'pager-5', 'pager-6']);
  });

  it('returns {value, display_value} pairs with displayValue all', async () => {
    const c = client();
    const created = await c.tableCreate<{ sys_id: string }>('change_request', { short_description: 'dv', state: '-2', risk: '3' });
    const got = await c.tableGet('change_request', created.sys_id, { displayValue: 'all', fields: ['state', 'risk'] });
    expect(got).toEqual({ state: { value: '-2', display_value: 'Scheduled' }, risk: { value: '3', display_value: 'Moderate' } });
  });

  it('returns null for an unknown record, and creates and updates records', async () => {
    const c = client();
    expect(await c.tableGet('change_request', 'f'.repeat(32))).toBeNull();
    expect(await c.getChange('f'.repeat(32))).toBeNull();
    const row = await c.tableCreate<{ sys_id: string; name: string }>('sys_user_group', { name: 'Patch Team' });
    const upd = await c.tableUpdate<{ name: string }>('sys_user_group', row.sys_id, { name: 'Patch Team 2' });
    expect(upd.name).toBe('Patch Team 2');
    await expect(c.tableUpdate('sys_user_group', 'f'.repeat(32), { name: 'x' })).rejects.toThrow(/404: No Record found/);
  });
});

describe('ServiceNowClient Change API', () => {
  it('creates a normal change, reads and patches it, and manages tasks', async () => {
    const c = client();
    const created = await c.createChange('normal', { short_description: 'Patch it', correlation_id: 'cyc-1' });
    const sysId = snValue(created.sys_id)!;
    expect(snValue(created.type)).toBe('normal');
    expect(created.state).toEqual({ value: '-5', display_value: 'New' });
    await c.updateChange(sysId, { work_notes: 'hello' });
    const task = await c.createChangeTask(sysId, { short_description: 'Wave 1' });
    expect((await c.listChangeTasks(sysId)).map((t) => snValue(t.short_description))).toEqual(['Wave 1']);
    await c.updateChangeTask(sysId, snValue(task.sys_id)!, { state: '3' });
    expect(fake.tasks(snValue(created.number)!)[0]!.state).toBe('3');
    expect(fake.workNotes(snValue(created.number)!)).toEqual(['hello']);
  });

  it('refuses a standard change without a template and reports an unknown template', async () => {
    const c = client();
    await expect(c.createChange('standard', {})).rejects.toThrow(/standard change template/);
    await expect(c.createChange('standard', {}, 'a'.repeat(32))).rejects.toThrow(/404: Standard change template not found/);
  });
});

describe('helpers', () => {
  it.each([
    ['<https://x/api/now/table/t?sysparm_offset=20&sysparm_limit=10>;rel="next",<https://x/api?sysparm_offset=0>;rel="first"', 20],
    ['<https://x/api?sysparm_offset=0>;rel="first"', undefined],
    [null, undefined],
  ])('nextOffsetFromLink(%s) = %s', (link, want) => {
    expect(nextOffsetFromLink(link)).toBe(want);
  });

  it('reads Retry-After as seconds or a date', () => {
    expect(retryAfterMs('3', 0)).toBe(3000);
    expect(retryAfterMs(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(retryAfterMs(null, 0)).toBeUndefined();
  });
});
