import { describe, expect, it } from 'vitest';
import {
  ADMIN_VERBS,
  APPROVER_VERBS,
  parseCommand,
  parseScope,
  READ_VERBS,
  requiredRole,
  tokenize,
  usage,
  VERBS,
  type Command,
} from './grammar';

describe('parseCommand: good input', () => {
  const cases: Array<[string, Command]> = [
    ['', { verb: 'help' }],
    ['   ', { verb: 'help' }],
    ['help', { verb: 'help' }],
    ['HELP start', { verb: 'help', topic: 'start' }],
    ['?', { verb: 'help' }],
    ['/patch help', { verb: 'help' }],
    ['status', { verb: 'status' }],
    ['status C-12', { verb: 'status', cycleId: 'C-12' }],
    ['cycles', { verb: 'cycles' }],
    ['scan', { verb: 'scan', scope: {} }],
    ['scan all', { verb: 'scan', scope: {} }],
    ['scan web', { verb: 'scan', scope: { groups: ['web'] } }],
    [
      'scan   group:web,db  tag:pci os:linux endpoint:ep-1',
      { verb: 'scan', scope: { groups: ['web', 'db'], tags: ['pci'], osFamilies: ['linux'], endpointIds: ['ep-1'] } },
    ],
    ['scan os:win,mac os:windows', { verb: 'scan', scope: { osFamilies: ['windows', 'macos'] } }],
    ['start default', { verb: 'start', policy: 'default', scope: {}, emergency: false }],
    ['start default web db', { verb: 'start', policy: 'default', scope: { groups: ['web', 'db'] }, emergency: false }],
    [
      'start default group:web --emergency',
      { verb: 'start', policy: 'default', scope: { groups: ['web'] }, emergency: true },
    ],
    [
      'Start emergency --Emergency endpoint:ep-1,ep-2',
      { verb: 'start', policy: 'emergency', scope: { endpointIds: ['ep-1', 'ep-2'] }, emergency: true },
    ],
    ['approve C-12', { verb: 'approve', cycleId: 'C-12' }],
    ['approve PC-20261127-a1b2c3', { verb: 'approve', cycleId: 'PC-20261127-a1b2c3' }],
    ['reject C-12 "breaks the billing app"', { verb: 'reject', cycleId: 'C-12', reason: 'breaks the billing app' }],
    ['reject C-12 breaks the   billing app', { verb: 'reject', cycleId: 'C-12', reason: 'breaks the billing app' }],
    ['reject C-12 reason:"breaks billing"', { verb: 'reject', cycleId: 'C-12', reason: 'breaks billing' }],
    ['reject C-12 “smart quotes from Slack”', { verb: 'reject', cycleId: 'C-12', reason: 'smart quotes from Slack' }],
    ["reject C-12 'single quotes'", { verb: 'reject', cycleId: 'C-12', reason: 'single quotes' }],
    ['reject C-12 "say \\"no\\""', { verb: 'reject', cycleId: 'C-12', reason: 'say "no"' }],
    ['pause C-12', { verb: 'pause', cycleId: 'C-12' }],
    ['pause C-12 "waiting for the vendor"', { verb: 'pause', cycleId: 'C-12', reason: 'waiting for the vendor' }],
    ['resume C-12', { verb: 'resume', cycleId: 'C-12' }],
    ['cancel C-12 wrong scope', { verb: 'cancel', cycleId: 'C-12', reason: 'wrong scope' }],
    ['rollback C-12', { verb: 'rollback', cycleId: 'C-12' }],
    ['rollback C-12 ep-7', { verb: 'rollback', cycleId: 'C-12', endpointId: 'ep-7' }],
    ['rollback C-12 endpoint:ep-7', { verb: 'rollback', cycleId: 'C-12', endpointId: 'ep-7' }],
    ['report', { verb: 'report' }],
    ['report group:web', { verb: 'report', scope: { groups: ['web'] } }],
    ['endpoints', { verb: 'endpoints', query: '' }],
    ['endpoints web-0 linux', { verb: 'endpoints', query: 'web-0 linux' }],
    ['exceptions', { verb: 'exceptions', action: 'list' }],
    ['exceptions list', { verb: 'exceptions', action: 'list' }],
    ['exceptions remove exc-12', { verb: 'exceptions', action: 'remove', code: 'EXC-12' }],
    [
      'exceptions add patch:KB5034441 until:2027-01-10 reason:"vendor hotfix pending"',
      { verb: 'exceptions', action: 'add', patchId: 'KB5034441', until: '2027-01-10', reason: 'vendor hotfix pending' },
    ],
    [
      'exceptions add patch:KB5034441 endpoint:ep-1 until:2027-01-10 reason:"lab box"',
      {
        verb: 'exceptions',
        action: 'add',
        patchId: 'KB5034441',
        endpointId: 'ep-1',
        until: '2027-01-10',
        reason: 'lab box',
      },
    ],
    [
      'exceptions add group:pos until:2027-01-10 reason:freeze',
      { verb: 'exceptions', action: 'add', group: 'pos', until: '2027-01-10', reason: 'freeze' },
    ],
    ['roles', { verb: 'roles', action: 'list' }],
    ['roles list slack:U123', { verb: 'roles', action: 'list', identity: 'slack:U123' }],
    ['roles grant slack:U123 approver', { verb: 'roles', action: 'grant', identity: 'slack:U123', role: 'approver' }],
    [
      'roles grant <@U0ABC123|alice> approver',
      { verb: 'roles', action: 'grant', identity: 'slack:U0ABC123', role: 'approver' },
    ],
    ['people', { verb: 'people', action: 'list' }],
    ['people link alice slack:U0123', { verb: 'people', action: 'link', person: 'alice', identity: 'slack:U0123' }],
    [
      'people link alice <@U0123|alice> email:alice@example.com',
      { verb: 'people', action: 'link', person: 'alice', identity: 'slack:U0123', email: 'alice@example.com' },
    ],
    ['people unlink teams:29:1abc', { verb: 'people', action: 'unlink', identity: 'teams:29:1abc' }],
    ['roles list <@U0ABC123>', { verb: 'roles', action: 'list', identity: 'slack:U0ABC123' }],
    ['<at>Patch Ops</at> approve C-12', { verb: 'approve', cycleId: 'C-12' }],
    [
      'roles revoke teams:29:1abc ADMIN web',
      { verb: 'roles', action: 'revoke', identity: 'teams:29:1abc', role: 'admin', group: 'web' },
    ],
  ];
  it.each(cases)('%j', (text, command) => {
    expect(parseCommand(text)).toEqual({ ok: true, command });
  });
});

describe('parseCommand: bad input', () => {
  const cases: Array<[string, string | RegExp, string]> = [
    ['frobnicate', 'unknown command "frobnicate"', 'commands:'],
    ['help frobnicate', 'there is no command "frobnicate" to explain', 'this text'],
    ['status C-1 C-2', 'status does not take "C-2"', 'status [cycle]'],
    ['cycles now', 'cycles does not take "now"', 'cycles'],
    ['scan group:', 'group needs a value after the colon, e.g. group:web', 'scan [scope…]'],
    ['scan os:beos', 'os "beos" is not one of windows, macos, linux', 'scan [scope…]'],
    ['scan colour:blue', 'unknown scope word "colour:" (use group:, tag:, os: or endpoint:)', 'scan [scope…]'],
    ['scan --all', 'unknown option "--all"', 'scan'],
    ['scan we$b', `"we$b" is not a group name (letters, digits, '-', '_' or '.')`, 'scan'],
    ['start', 'start needs a policy name first, e.g. start default group:web', 'start <policy>'],
    [
      'start group:web',
      'start needs a policy name before the scope ("group:web" is a scope word), e.g. start default group:web',
      'start <policy>',
    ],
    ['start default --now', 'unknown option "--now" (start takes --emergency)', 'start <policy>'],
    ['approve', 'approve needs a cycle id, e.g. approve C-12', 'approve <cycle>'],
    ['approve C-1 C-2', 'approve does not take "C-2"', 'approve <cycle>'],
    ['approve --as', '"--as" is not a cycle id', 'approve <cycle>'],
    ['reject C-12', 'a rejection needs a reason, e.g. reject C-12 "breaks the billing app"', 'reject <cycle> <reason>'],
    ['reject C-12 ""', 'a rejection needs a reason', 'reject <cycle> <reason>'],
    ['reject', 'reject needs a cycle id, e.g. reject C-12', 'reject'],
    ['reject C-12 "never closed', 'a quote (") is not closed: close it or remove it', 'commands:'],
    ['pause', 'pause needs a cycle id, e.g. pause C-12', 'pause'],
    ['resume', 'resume needs a cycle id', 'resume'],
    ['cancel', 'cancel needs a cycle id', 'cancel'],
    ['rollback', 'rollback needs a cycle id', 'rollback'],
    ['rollback C-1 ep-1 ep-2', 'rollback does not take "ep-2"', 'rollback'],
    ['report colour:blue', 'unknown scope word "colour:"', 'report'],
    ['exceptions frob', 'exceptions: unknown action "frob" (use add, list or remove)', 'exceptions add'],
    ['exceptions remove', 'exceptions remove needs the exception code, e.g. exceptions remove EXC-12', 'exceptions'],
    ['exceptions remove 12', '"12" is not an exception code (they look like EXC-12)', 'exceptions'],
    [
      'exceptions add until:2027-01-10 reason:x',
      'exceptions add needs what to exclude: patch:<id>, endpoint:<id> or group:<name>',
      'exceptions',
    ],
    ['exceptions add patch:KB1 reason:x', 'exceptions add needs an expiry: until:YYYY-MM-DD', 'exceptions'],
    [
      'exceptions add patch:KB1 until:2027-02-30 reason:x',
      'until:2027-02-30 is not a date; write it as YYYY-MM-DD, e.g. until:2027-01-10',
      'exceptions',
    ],
    ['exceptions add patch:KB1 until:10/01/2027 reason:x', 'until:10/01/2027 is not a date', 'exceptions'],
    [
      'exceptions add patch:KB1 until:2027-01-10',
      'exceptions add needs a reason: reason:"why this is excluded"',
      'exceptions',
    ],
    [
      'exceptions add patch:KB1 endpoint:ep-1 group:web until:2027-01-10 reason:x',
      'exceptions add takes endpoint: or group:, not both',
      'exceptions',
    ],
    [
      'exceptions add patch:KB1 patch:KB2 until:2027-01-10 reason:x',
      'exceptions add: patch: is given twice',
      'exceptions',
    ],
    [
      'exceptions add patch:KB1 until:2027-01-10 reason:x because',
      'exceptions add: "because" is not understood (use patch:, endpoint:, group:, until: and reason:)',
      'exceptions',
    ],
    [
      'exceptions add patch:KB1 colour:red until:2027-01-10 reason:x',
      'exceptions add: unknown field "colour:"',
      'exceptions',
    ],
    ['roles grant slack:U1', 'roles grant needs an identity and a role, e.g. roles grant slack:U123 approver', 'roles'],
    [
      'roles grant U1 approver',
      '"U1" is not an identity (they look like slack:U123, teams:<aad id>, cli:alice)',
      'roles',
    ],
    ['roles grant slack:U1 superuser', 'role "superuser" is not one of admin, approver, viewer', 'roles'],
    ['roles grant slack:U1 admin web extra', 'roles does not take "extra"', 'roles'],
    ['people link alice', 'people link needs an identity, e.g. slack:U0123', 'people'],
    [
      'people link alice person:bob',
      '"person:bob" is not an identity (they look like slack:U0123, teams:<aad id>, web:alice)',
      'people',
    ],
    [
      'people link al:ice slack:U1',
      "people link needs a person's name first (letters, digits, . _ @ -), e.g. people link alice slack:U0123",
      'people',
    ],
    [
      'people link alice slack:U1 email:nope',
      'people link: "email:nope" is not understood (it takes email:<address>)',
      'people',
    ],
    ['people merge a b', 'people: unknown action "merge" (use list, link or unlink)', 'people'],
    ['roles delete slack:U1', 'roles: unknown action "delete" (use list, grant or revoke)', 'roles'],
  ];
  it.each(cases)('%j', (text, error, usageFragment) => {
    const r = parseCommand(text);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    if (typeof error === 'string') expect(r.error.startsWith(error)).toBe(true);
    else expect(r.error).toMatch(error);
    expect(r.usage).toContain(usageFragment);
  });

  it('answers an unknown verb with the full usage', () => {
    const r = parseCommand('frobnicate everything');
    expect(r).toEqual({ ok: false, error: 'unknown command "frobnicate"', usage: usage() });
    for (const v of VERBS) expect(usage()).toContain(`\n  ${v}`);
  });

  it.each([undefined, null, 42, {}])('never throws, even for %j', (text) => {
    expect(() => parseCommand(text as unknown as string)).not.toThrow();
    expect(parseCommand(text as unknown as string).ok).toBe(true);
  });
});

describe('tokenize', () => {
  it.each([
    ['a  b\tc', ['a', 'b', 'c']],
    ['reason:"two words" x', ['reason:two words', 'x']],
    ['"" x', ['', 'x']],
    ['a\u00a0b', ['a', 'b']],
    ['«guillemets» „low“', ['guillemets', 'low']],
  ])('%j', (text, tokens) => {
    expect(tokenize(text)).toEqual({ ok: true, tokens });
  });
});

describe('parseScope', () => {
  it('deduplicates and omits empty fields', () => {
    expect(parseScope(['web', 'group:web,db', 'tag:pci', 'tags:pci'])).toEqual({
      groups: ['web', 'db'],
      tags: ['pci'],
    });
    expect(parseScope([])).toEqual({});
  });
});

describe('roles per verb', () => {
  it('admin verbs are everything but the read verbs and the votes', () => {
    expect([...ADMIN_VERBS].sort()).toEqual([
      'cancel',
      'exceptions',
      'pause',
      'people',
      'resume',
      'roles',
      'rollback',
      'scan',
      'start',
    ]);
    expect([...READ_VERBS].sort()).toEqual(['cycles', 'endpoints', 'help', 'report', 'status']);
    expect([...APPROVER_VERBS].sort()).toEqual(['approve', 'reject']);
    expect(ADMIN_VERBS.size + READ_VERBS.size + APPROVER_VERBS.size).toBe(VERBS.length);
  });
  it.each([
    ['help', null],
    ['status', 'viewer'],
    ['approve', 'approver'],
    ['reject', 'approver'],
    ['start', 'admin'],
    ['roles', 'admin'],
    ['people', 'admin'],
  ] as const)('%s needs %s', (verb, role) => {
    expect(requiredRole(verb)).toBe(role);
  });
  it('people list needs only the viewer role; link and unlink need admin', () => {
    expect(requiredRole('people', 'list')).toBe('viewer');
    expect(requiredRole('people', 'link')).toBe('admin');
    expect(requiredRole('people', 'unlink')).toBe('admin');
  });
});

describe('usage', () => {
  it('explains one command with examples', () => {
    expect(usage('exceptions')).toContain(
      'exceptions add patch:<id> [endpoint:<id>|group:<name>] until:<YYYY-MM-DD> reason:"<why>"',
    );
    expect(usage('start')).toContain('start default group:web,db tag:pci');
    expect(usage('scan')).toContain('scope words:');
  });
  it('falls back to the full text for an unknown topic', () => {
    expect(usage('nope')).toBe(usage());
  });
});
