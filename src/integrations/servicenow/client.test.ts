import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ServiceNowFake } from '../../../test/fakes/servicenow';
import { CodedError } from '../../domain/errors';
import {
  nextOffsetFromLink,
  normaliseRecord,
  recordList,
  retryAfterMs,
  ServiceNowClient,
  singleRecord,
  snDisplay,
  snValue,
  type ServiceNowClientOptions,
} from './client';

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
    await expect(
      client({ auth: { kind: 'basic', username: 'svc.patchops', password: 'wrong' } }).tableQuery('sys_user'),
    ).rejects.toThrow(
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
    const c = client({
      auth: { kind: 'oauth', clientId: 'cid', clientSecret: 'csecret', username: 'svc.patchops', password: 'pw' },
    });
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
    fake.inject(
      {
        status: 500,
        error: { message: 'Transaction cancelled', detail: 'maximum execution time exceeded' },
        pathPrefix: '/api/now/table/sys_user',
      },
      4,
    );
    const err = await client()
      .tableQuery('sys_user')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CodedError);
    expect((err as CodedError).code).toBe('INTEGRATION_FAILED');
    expect((err as CodedError).message).toContain(
      'returned 500: Transaction cancelled: maximum execution time exceeded',
    );
    expect((err as CodedError).retryable).toBe(true);
    expect(waits).toEqual([100, 200, 400]);
  });

  it('times out a call that does not answer', async () => {
    const hang = (() =>
      new Promise<Response>((_resolve, reject) =>
        setTimeout(() => reject(Object.assign(new Error('aborted'), { name: 'TimeoutError' })), 5),
      )) as typeof fetch;
    await expect(client({ fetch: hang, timeoutMs: 5, maxRetries: 1 }).tableQuery('x')).rejects.toThrow(
      /no answer within 5 ms/,
    );
    expect(waits).toEqual([100]);
  });

  it('does not retry a 4xx and reports ServiceNow’s error text', async () => {
    fake.inject({
      status: 400,
      error: { message: 'Invalid query', detail: 'field xyz does not exist' },
      pathPrefix: '/api/now/table/incident',
    });
    await expect(client().tableQuery('incident')).rejects.toThrow(
      /returned 400: Invalid query: field xyz does not exist/,
    );
    expect(waits).toEqual([]);
  });
});

describe('ServiceNowClient Table API', () => {
  it('queries with sysparm_query and fields, and pages by Link until done', async () => {
    for (let i = 0; i < 7; i++) fake.insert('cmdb_ci', { name: `pager-${i}`, sys_class_name: 'cmdb_ci_computer' });
    const c = client();
    const first = await c.tableQuery<{ name: string }>('cmdb_ci', {
      query: 'nameSTARTSWITHpager-^ORDERBYname',
      fields: ['name'],
      limit: 3,
    });
    expect(first.records).toEqual([{ name: 'pager-0' }, { name: 'pager-1' }, { name: 'pager-2' }]);
    expect(first.total).toBe(7);
    expect(first.nextOffset).toBe(3);
    const all = await c.tableQueryAll<{ name: string }>('cmdb_ci', {
      query: 'nameSTARTSWITHpager-^ORDERBYname',
      fields: ['name'],
      limit: 3,
    });
    expect(all.map((r) => r.name)).toEqual([
      'pager-0',
      'pager-1',
      'pager-2',
      'pager-3',
      'pager-4',
      'pager-5',
      'pager-6',
    ]);
  });

  it('returns plain values, or display values with displayValue true', async () => {
    const c = client();
    const created = await c.tableCreate<{ sys_id: string }>('change_request', {
      short_description: 'dv',
      state: '-2',
      risk: '3',
    });
    expect(await c.tableGet('change_request', created.sys_id, { fields: ['state', 'risk'] })).toEqual({
      state: '-2',
      risk: '3',
    });
    expect(
      await c.tableGet('change_request', created.sys_id, { displayValue: true, fields: ['state', 'risk'] }),
    ).toEqual({ state: 'Scheduled', risk: 'Moderate' });
    expect(fake.requests.at(-1)!.query).toMatchObject({
      sysparm_display_value: 'true',
      sysparm_exclude_reference_link: 'true',
    });
  });

  it('turns reference fields answered as {link, value} into their value', async () => {
    const c = client();
    const ci = fake.seedCi('ref-host-1');
    const change = fake.insert('change_request', { type: 'normal' });
    // POST without sysparm_exclude_reference_link: the instance answers references with a link.
    const row = await c.tableCreate('task_ci', { task: change.sys_id, ci_item: ci.sys_id });
    expect(row).toMatchObject({ task: change.sys_id, ci_item: ci.sys_id });
    expect(typeof row.sys_id).toBe('string');
  });

  it('returns null for an unknown record, and creates and updates records', async () => {
    const c = client();
    expect(await c.tableGet('change_request', 'f'.repeat(32))).toBeNull();
    expect(await c.getChange('f'.repeat(32))).toBeNull();
    const row = await c.tableCreate<{ sys_id: string; name: string }>('sys_user_group', { name: 'Patch Team' });
    const upd = await c.tableUpdate<{ name: string }>('sys_user_group', row.sys_id, { name: 'Patch Team 2' });
    expect(upd.name).toBe('Patch Team 2');
    await expect(c.tableUpdate('sys_user_group', 'f'.repeat(32), { name: 'x' })).rejects.toThrow(
      /404: No Record found/,
    );
  });
});

describe('ServiceNowClient Change API', () => {
  it('creates a normal change, reads and patches it, and manages tasks', async () => {
    const c = client();
    const created = await c.createChange('normal', { short_description: 'Patch it', correlation_id: 'cyc-1' });
    const sysId = snValue(created.sys_id)!;
    expect(snValue(created.type)).toBe('normal');
    expect(created.state).toBe('-5'); // the wire had {value: '-5', display_value: 'New'}
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
    await expect(c.createChange('standard', {}, 'a'.repeat(32))).rejects.toThrow(
      /404: Standard change template not found/,
    );
  });
});

describe.each(['object', 'array'] as const)(
  'ServiceNowClient Change API answering a single record as an %s',
  (shape) => {
    beforeEach(() => {
      fake.changeResultShape = shape;
    });
    afterAll(() => {
      fake.changeResultShape = 'object';
    });

    it('creates, reads, patches a change and its tasks, every field a plain value', async () => {
      const c = client();
      const created = await c.createChange('emergency', {
        short_description: `Shape ${shape}`,
        correlation_id: `cyc-${shape}`,
      });
      expect(created).toMatchObject({
        type: 'emergency',
        state: '-5',
        correlation_id: `cyc-${shape}`,
        short_description: `Shape ${shape}`,
      });
      expect(created.sys_id).toMatch(/^[0-9a-f]{32}$/);
      expect(created.number).toMatch(/^CHG\d{7}$/);
      const raw = fake.requests.at(-1)!;
      expect(raw.path).toBe('/api/sn_chg_rest/change/emergency');

      await fake.approve(created.number!);
      const got = await c.getChange(created.sys_id!);
      expect(got).toMatchObject({ sys_id: created.sys_id, number: created.number, state: '-2', approval: 'approved' });

      const patched = await c.updateChange(created.sys_id!, { state: '-1' });
      expect(patched.state).toBe('-1');
      const task = await c.createChangeTask(created.sys_id!, { short_description: 'Wave 1' });
      expect(task).toMatchObject({ short_description: 'Wave 1', change_request: created.sys_id });
      expect((await c.listChangeTasks(created.sys_id!)).map((t) => t.number)).toEqual([task.number]);
      expect((await c.updateChangeTask(created.sys_id!, task.sys_id!, { state: '3' })).state).toBe('3');
      expect(await c.getChange('f'.repeat(32))).toBeNull();
    });
  },
);

describe('normalising documented answer shapes', () => {
  const sys = '1c87925347c12200e0ef563dbb9a7177';
  it.each([
    ['plain values (Table API default)', { sys_id: sys, number: 'CHG0030001', state: '-5' }],
    [
      '{value, display_value} pairs (display_value=all; Change API)',
      {
        sys_id: { value: sys, display_value: sys },
        number: { value: 'CHG0030001', display_value: 'CHG0030001' },
        state: { value: '-5', display_value: 'New' },
      },
    ],
    [
      'a plain sys_id beside pairs (Change API array example)',
      {
        sys_id: sys,
        number: { value: 'CHG0030001', display_value: 'CHG0030001' },
        state: { value: '-5', display_value: 'New' },
      },
    ],
    [
      'references as {link, value}',
      {
        sys_id: sys,
        number: 'CHG0030001',
        state: '-5',
        cmdb_ci: { link: `https://x/api/now/table/cmdb_ci/${'a'.repeat(32)}`, value: 'a'.repeat(32) },
      },
    ],
  ])('%s', (_what, raw) => {
    for (const result of [raw, [raw]]) {
      expect(singleRecord(result, 'test')).toMatchObject({ sys_id: sys, number: 'CHG0030001', state: '-5' });
    }
  });

  it('takes the display value of a reference answered as {display_value, link}, and empties null fields', () => {
    expect(
      normaliseRecord(
        {
          assigned_to: { display_value: 'ITIL User', link: 'https://x/api/now/table/sys_user/1' },
          parent: null,
          active: true,
          order: 3,
        },
        'test',
      ),
    ).toEqual({
      assigned_to: 'ITIL User',
      parent: '',
      active: 'true',
      order: '3',
    });
    expect(snDisplay({ value: '-2', display_value: 'Scheduled' })).toBe('Scheduled');
    expect(snDisplay('-2')).toBe('-2');
    expect(snValue({ link: 'https://x', value: 'abc' })).toBe('abc');
  });

  it('refuses several records where one is expected, and a record that is not an object', () => {
    expect(() => singleRecord([{ sys_id: 'a' }, { sys_id: 'b' }], 'POST /x')).toThrow(
      /POST \/x answered 2 records where one was expected/,
    );
    expect(() => singleRecord('nope', 'GET /y')).toThrow(/GET \/y answered a record that is not a JSON object/);
    expect(singleRecord([], 'GET /z')).toBeNull();
    expect(recordList({ sys_id: 'a' }, 'GET /list')).toEqual([{ sys_id: 'a' }]);
  });

  it('says so when a create answers no record at all', async () => {
    fake.inject({ status: 200, pathPrefix: '/api/sn_chg_rest/change/normal' });
    await expect(client().createChange('normal', {})).rejects.toThrow(/answered without a record/);
  });
});

describe('helpers', () => {
  it.each([
    [
      '<https://x/api/now/table/t?sysparm_offset=20&sysparm_limit=10>;rel="next",<https://x/api?sysparm_offset=0>;rel="first"',
      20,
    ],
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
