/**
 * The one command grammar shared by the CLI, Slack `/patch` and the Teams bot: text in, a typed
 * Command (or a plain-words error with usage) out. Pure; never throws.
 *
 *   start default group:web,db tag:pci os:linux --emergency
 *   reject C-12 "breaks the billing app"
 *   exceptions add patch:KB5034441 group:web until:2027-01-10 reason:"vendor hotfix pending"
 */
import type { Role } from '../db/identities';
import { type CycleScope } from '../domain/cycle';

export type ExceptionsCommand =
  | {
      verb: 'exceptions';
      action: 'add';
      patchId?: string;
      endpointId?: string;
      group?: string;
      until: string;
      reason: string;
    }
  | { verb: 'exceptions'; action: 'list' }
  | { verb: 'exceptions'; action: 'remove'; code: string };

export type PeopleCommand =
  | { verb: 'people'; action: 'link'; person: string; identity: string; email?: string }
  | { verb: 'people'; action: 'unlink'; identity: string }
  | { verb: 'people'; action: 'list' };

export type Command =
  | { verb: 'help'; topic?: string }
  | { verb: 'status'; cycleId?: string }
  | { verb: 'cycles' }
  | { verb: 'scan'; scope: CycleScope }
  | { verb: 'start'; policy: string; scope: CycleScope; emergency: boolean }
  | { verb: 'approve'; cycleId: string }
  | { verb: 'reject'; cycleId: string; reason: string }
  | { verb: 'pause'; cycleId: string; reason?: string }
  | { verb: 'resume'; cycleId: string; reason?: string }
  | { verb: 'cancel'; cycleId: string; reason?: string }
  | { verb: 'rollback'; cycleId: string; endpointId?: string }
  | { verb: 'report'; scope?: CycleScope }
  | { verb: 'endpoints'; query: string }
  | ExceptionsCommand
  | { verb: 'roles'; action: 'grant' | 'revoke' | 'list'; identity?: string; role?: Role; group?: string }
  | PeopleCommand;

export type Verb = Command['verb'];
export type ParseResult = { ok: true; command: Command } | { ok: false; error: string; usage: string };

/** What a verb needs and how it is explained: the role it requires (null: none, `help` only) and its usage lines. */
export interface VerbSpec {
  role: Role | null;
  /** Actions of the verb that only read, and so need only the viewer role (`people list`). */
  readActions?: readonly string[];
  lines: string[];
  about: string;
}

/**
 * Every verb, in the order `help` lists them, with the role it needs: viewer for reading, approver for votes,
 * admin for everything that changes something. The executor's one authorize() reads this table for every verb.
 */
export const VERB_TABLE: Readonly<Record<Verb, VerbSpec>> = {
  help: { role: null, lines: ['help [command]'], about: 'this text, or the details of one command' },
  status: {
    role: 'viewer',
    lines: ['status [cycle]'],
    about: 'the stage, approvals, waves and reasons of a cycle (the latest when none is given)',
  },
  cycles: { role: 'viewer', lines: ['cycles'], about: 'recent cycles and their stages' },
  scan: {
    role: 'admin',
    lines: ['scan [scope…]'],
    about: 'scan endpoints for missing patches (everything when no scope is given)',
  },
  start: {
    role: 'admin',
    lines: ['start <policy> [scope…] [--emergency]'],
    about: 'start a patch cycle under a policy ("default" always exists)',
  },
  approve: { role: 'approver', lines: ['approve <cycle>'], about: 'approve a cycle waiting for approval' },
  reject: {
    role: 'approver',
    lines: ['reject <cycle> <reason>'],
    about: 'reject a cycle; the reason is required (quote it or just type it)',
  },
  pause: { role: 'admin', lines: ['pause <cycle> [reason]'], about: 'pause a running cycle' },
  resume: { role: 'admin', lines: ['resume <cycle>'], about: 'resume a paused cycle' },
  cancel: { role: 'admin', lines: ['cancel <cycle> [reason]'], about: 'cancel a cycle' },
  rollback: {
    role: 'admin',
    lines: ['rollback <cycle> [endpoint]'],
    about: 'roll back a cycle (or one endpoint of it)',
  },
  report: {
    role: 'viewer',
    lines: ['report [scope…]'],
    about: 'compliance, outstanding patches by severity and past-SLA counts, for the fleet or a scope',
  },
  endpoints: { role: 'viewer', lines: ['endpoints [search words]'], about: 'find endpoints by hostname, group or tag' },
  exceptions: {
    role: 'admin',
    lines: [
      'exceptions list',
      'exceptions add patch:<id> [endpoint:<id>|group:<name>] until:<YYYY-MM-DD> reason:"<why>"',
      'exceptions remove <EXC-code>',
    ],
    about: 'patch exceptions (excluded patch, endpoint or group, with an expiry)',
  },
  roles: {
    role: 'admin',
    lines: [
      'roles list [identity]',
      'roles grant <identity> <admin|approver|viewer> [group]',
      'roles revoke <identity> <admin|approver|viewer> [group]',
    ],
    about: 'who may do what; identities look like slack:U123, teams:<aad id>, servicenow:<user>, cli:<user>',
  },
  people: {
    role: 'admin',
    readActions: ['list'],
    lines: ['people list', 'people link <person> <identity> [email:<address>]', 'people unlink <identity>'],
    about:
      'the person behind each identity: quorum counts people, and whoever started a cycle cannot approve it from another identity',
  },
};

export const VERBS: readonly Verb[] = Object.keys(VERB_TABLE) as Verb[];

/** The role a verb (and its action) needs: viewer for reading, approver for votes, admin for the rest (help needs none). */
export function requiredRole(verb: Verb, action?: string): Role | null {
  const spec = VERB_TABLE[verb];
  if (action !== undefined && spec.readActions?.includes(action)) return 'viewer';
  return spec.role;
}

/** The action of a command with actions (`people list`), else undefined. */
export function actionOf(command: Command): string | undefined {
  return 'action' in command ? command.action : undefined;
}

/** Read-only verbs: the viewer role (or none, for help). */
export const READ_VERBS: ReadonlySet<Verb> = new Set<Verb>(
  VERBS.filter((v) => requiredRole(v) === null || requiredRole(v) === 'viewer'),
);
/** Verbs that need the approver role (and the cycle's approval policy, checked by the workflow). */
export const APPROVER_VERBS: ReadonlySet<Verb> = new Set<Verb>(VERBS.filter((v) => requiredRole(v) === 'approver'));
/** Verbs that need the admin role: everything that changes something, except votes. */
export const ADMIN_VERBS: ReadonlySet<Verb> = new Set<Verb>(VERBS.filter((v) => requiredRole(v) === 'admin'));

const SCOPE_HELP =
  'scope words: group:web,db  tag:pci  os:windows|macos|linux  endpoint:ep-1  (a bare word is a group name; all = everything)';

const EXAMPLES: Partial<Record<Verb, string[]>> = {
  scan: ['scan group:web os:linux'],
  start: ['start default group:web,db tag:pci', 'start emergency endpoint:ep-1 --emergency'],
  reject: ['reject C-12 "breaks the billing app"'],
  rollback: ['rollback C-12 ep-7'],
  exceptions: ['exceptions add patch:KB5034441 group:web until:2027-01-10 reason:"vendor hotfix pending"'],
  roles: ['roles grant slack:U123 approver web'],
  people: [
    'people link alice slack:U0123',
    'people link alice teams:00000000-0000-0000-0000-0000000000a1 email:alice@example.com',
    'people unlink web:alice',
  ],
};

/** Readable help: every command, or one command with its examples. */
export function usage(verb?: Verb | string): string {
  const v = verb?.toLowerCase() as Verb | undefined;
  if (v && Object.hasOwn(VERB_TABLE, v)) {
    const u = VERB_TABLE[v];
    const lines = [`${u.about}:`, ...u.lines.map((l) => `  ${l}`)];
    if (v === 'scan' || v === 'start' || v === 'report') lines.push(`  ${SCOPE_HELP}`);
    const ex = EXAMPLES[v];
    if (ex) lines.push('examples:', ...ex.map((e) => `  ${e}`));
    return lines.join('\n');
  }
  const width = 40;
  const lines = ['commands:'];
  for (const x of VERBS) {
    const u = VERB_TABLE[x];
    const [first, ...more] = u.lines;
    if (first!.length <= width) lines.push(`  ${first!.padEnd(width)}  ${u.about}`);
    else lines.push(`  ${first}`, `  ${''.padEnd(width)}  ${u.about}`);
    for (const l of more) lines.push(`  ${l}`);
  }
  lines.push(`  ${SCOPE_HELP}`);
  return lines.join('\n');
}

// ------------------------------------------------------------------ tokens

type Tokens = { ok: true; tokens: string[] } | { ok: false; error: string };

const QUOTES: Record<string, string> = { '"': '"', "'": "'", '“': '”', '‘': '’', '„': '“', '«': '»' };

/** Splits on whitespace; quotes (straight or typographic, as Slack and Teams send them) group words, also after key: */
export function tokenize(text: string): Tokens {
  const tokens: string[] = [];
  let cur = '';
  let has = false;
  let i = 0;
  const s = text.replace(/\u00a0/g, ' ');
  while (i < s.length) {
    const ch = s[i]!;
    if (/\s/.test(ch)) {
      if (has) tokens.push(cur);
      cur = '';
      has = false;
      i++;
      continue;
    }
    const close = QUOTES[ch];
    if (close !== undefined) {
      let j = i + 1;
      let inner = '';
      while (j < s.length && s[j] !== close && !(close === '”' && s[j] === '"')) {
        if (s[j] === '\\' && j + 1 < s.length && (s[j + 1] === close || s[j + 1] === '\\')) {
          inner += s[j + 1];
          j += 2;
          continue;
        }
        inner += s[j];
        j++;
      }
      if (j >= s.length) return { ok: false, error: `a quote (${ch}) is not closed` };
      cur += inner;
      has = true;
      i = j + 1;
      continue;
    }
    cur += ch;
    has = true;
    i++;
  }
  if (has) tokens.push(cur);
  return { ok: true, tokens };
}

// ------------------------------------------------------------------ helpers

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const OS_ALIASES: Record<string, 'windows' | 'macos' | 'linux'> = {
  windows: 'windows',
  win: 'windows',
  macos: 'macos',
  mac: 'macos',
  darwin: 'macos',
  osx: 'macos',
  linux: 'linux',
};

class GrammarError extends Error {}
const fail = (msg: string): never => {
  throw new GrammarError(msg);
};

function isRealDate(s: string): boolean {
  const m = DATE_RE.exec(s);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const dt = new Date(Date.UTC(y, mo - 1, d));
  return dt.getUTCFullYear() === y && dt.getUTCMonth() === mo - 1 && dt.getUTCDate() === d;
}

function splitKey(tok: string): { key: string; value: string } | null {
  const m = /^([A-Za-z]+):(.*)$/s.exec(tok);
  return m ? { key: m[1]!.toLowerCase(), value: m[2]! } : null;
}

function list(value: string, what: string): string[] {
  const items = value
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
  if (items.length === 0) fail(`${what} needs a value after the colon, e.g. ${what}:web`);
  return items;
}

function addUnique(target: string[], items: string[]): void {
  for (const x of items) if (!target.includes(x)) target.push(x);
}

/** Scope words → CycleScope; fields appear only when given. */
export function parseScope(tokens: string[]): CycleScope {
  const groups: string[] = [];
  const tags: string[] = [];
  const os: Array<'windows' | 'macos' | 'linux'> = [];
  const endpointIds: string[] = [];
  for (const tok of tokens) {
    if (tok.startsWith('-')) fail(`unknown option "${tok}"`);
    const kv = splitKey(tok);
    if (!kv && (tok.toLowerCase() === 'all' || tok === '*')) continue; // everything (a group named "all" is group:all)
    if (!kv) {
      if (!NAME_RE.test(tok)) fail(`"${tok}" is not a group name (letters, digits, '-', '_' or '.')`);
      addUnique(groups, [tok]);
      continue;
    }
    switch (kv.key) {
      case 'group':
      case 'groups':
        for (const g of list(kv.value, 'group'))
          if (!NAME_RE.test(g)) fail(`"${g}" is not a group name (letters, digits, '-', '_' or '.')`);
        addUnique(groups, list(kv.value, 'group'));
        break;
      case 'tag':
      case 'tags':
        addUnique(tags, list(kv.value, 'tag'));
        break;
      case 'os':
        for (const o of list(kv.value, 'os')) {
          const fam = OS_ALIASES[o.toLowerCase()];
          if (!fam) fail(`os "${o}" is not one of windows, macos, linux`);
          if (!os.includes(fam!)) os.push(fam!);
        }
        break;
      case 'endpoint':
      case 'endpoints':
      case 'ep':
        for (const e of list(kv.value, 'endpoint')) if (!ID_RE.test(e)) fail(`"${e}" is not an endpoint id`);
        addUnique(endpointIds, list(kv.value, 'endpoint'));
        break;
      case 'all':
        break;
      default:
        fail(`unknown scope word "${kv.key}:" (use group:, tag:, os: or endpoint:)`);
    }
  }
  const scope: CycleScope = {};
  if (groups.length > 0) scope.groups = groups;
  if (tags.length > 0) scope.tags = tags;
  if (os.length > 0) scope.osFamilies = os;
  if (endpointIds.length > 0) scope.endpointIds = endpointIds;
  return scope;
}

function cycleId(tokens: string[], verb: Verb): string {
  const id = tokens[0];
  if (id === undefined) return fail(`${verb} needs a cycle id, e.g. ${verb} C-12`);
  if (!ID_RE.test(id) || id.startsWith('-')) return fail(`"${id}" is not a cycle id`);
  return id;
}

function restText(tokens: string[]): string | undefined {
  const parts = tokens.map((t) => {
    const kv = splitKey(t);
    return kv && kv.key === 'reason' ? kv.value : t;
  });
  const text = parts.join(' ').trim();
  return text === '' ? undefined : text;
}

function noMore(tokens: string[], verb: Verb): void {
  if (tokens.length > 0) fail(`${verb} does not take "${tokens.join(' ')}"`);
}

// ------------------------------------------------------------------ verbs

function parseExceptions(args: string[]): Command {
  const action = (args[0] ?? 'list').toLowerCase();
  const rest = args.slice(1);
  if (action === 'list' || action === 'ls') {
    noMore(rest, 'exceptions');
    return { verb: 'exceptions', action: 'list' };
  }
  if (action === 'remove' || action === 'rm' || action === 'delete') {
    const code = rest[0];
    if (!code) return fail('exceptions remove needs the exception code, e.g. exceptions remove EXC-12');
    if (!/^EXC-\d+$/i.test(code)) return fail(`"${code}" is not an exception code (they look like EXC-12)`);
    noMore(rest.slice(1), 'exceptions');
    return { verb: 'exceptions', action: 'remove', code: code.toUpperCase() };
  }
  if (action !== 'add') return fail(`exceptions: unknown action "${action}" (use add, list or remove)`);
  let patchId: string | undefined;
  let endpointId: string | undefined;
  let group: string | undefined;
  let until: string | undefined;
  let reason: string | undefined;
  const once = (key: string, had: string | undefined, value: string): string => {
    if (had !== undefined) fail(`exceptions add: ${key}: is given twice`);
    if (value.trim() === '') fail(`exceptions add: ${key}: needs a value`);
    return value.trim();
  };
  for (const tok of rest) {
    const kv = splitKey(tok);
    if (!kv)
      return fail(`exceptions add: "${tok}" is not understood (use patch:, endpoint:, group:, until: and reason:)`);
    switch (kv.key) {
      case 'patch':
        patchId = once('patch', patchId, kv.value);
        if (!ID_RE.test(patchId)) fail(`"${patchId}" is not a patch id`);
        break;
      case 'endpoint':
      case 'ep':
        endpointId = once('endpoint', endpointId, kv.value);
        if (!ID_RE.test(endpointId)) fail(`"${endpointId}" is not an endpoint id`);
        break;
      case 'group':
        group = once('group', group, kv.value);
        if (!NAME_RE.test(group)) fail(`"${group}" is not a group name`);
        break;
      case 'until':
        until = once('until', until, kv.value);
        break;
      case 'reason':
        reason = once('reason', reason, kv.value);
        break;
      default:
        return fail(`exceptions add: unknown field "${kv.key}:" (use patch:, endpoint:, group:, until: and reason:)`);
    }
  }
  if (!patchId && !endpointId && !group)
    return fail('exceptions add needs what to exclude: patch:<id>, endpoint:<id> or group:<name>');
  if (endpointId && group) return fail('exceptions add takes endpoint: or group:, not both');
  if (!until) return fail('exceptions add needs an expiry: until:YYYY-MM-DD');
  if (!isRealDate(until)) return fail(`until:${until} is not a date; write it as YYYY-MM-DD, e.g. until:2027-01-10`);
  if (!reason) return fail('exceptions add needs a reason: reason:"why this is excluded"');
  const cmd: ExceptionsCommand = { verb: 'exceptions', action: 'add', until, reason };
  if (patchId) cmd.patchId = patchId;
  if (endpointId) cmd.endpointId = endpointId;
  if (group) cmd.group = group;
  return cmd;
}

/** Slack sends escaped user mentions as <@U123> or <@U123|name>: that is the identity slack:U123. */
function slackMention(word: string): string {
  const m = /^<@([UW][A-Z0-9]+)(\|[^>]*)?>$/.exec(word);
  return m ? `slack:${m[1]}` : word;
}

function parseRoles(args: string[]): Command {
  const action = (args[0] ?? 'list').toLowerCase();
  const rest = args.slice(1);
  if (action === 'list') {
    if (rest.length > 1) fail(`roles list takes at most an identity, not "${rest.join(' ')}"`);
    return rest[0]
      ? { verb: 'roles', action: 'list', identity: slackMention(rest[0]) }
      : { verb: 'roles', action: 'list' };
  }
  if (action !== 'grant' && action !== 'revoke')
    return fail(`roles: unknown action "${action}" (use list, grant or revoke)`);
  const [rawIdentity, role, group, ...extra] = rest;
  const identity = rawIdentity === undefined ? undefined : slackMention(rawIdentity);
  if (!identity || !role)
    return fail(`roles ${action} needs an identity and a role, e.g. roles ${action} slack:U123 approver`);
  if (!/^[a-z]+:\S+$/.test(identity))
    return fail(`"${identity}" is not an identity (they look like slack:U123, teams:<aad id>, cli:alice)`);
  const r = role.toLowerCase();
  if (r !== 'admin' && r !== 'approver' && r !== 'viewer')
    return fail(`role "${role}" is not one of admin, approver, viewer`);
  if (group !== undefined && !NAME_RE.test(group)) return fail(`"${group}" is not a group name`);
  noMore(extra, 'roles');
  const cmd: Command = { verb: 'roles', action, identity, role: r };
  if (group) cmd.group = group;
  return cmd;
}

const PERSON_RE = /^[a-z0-9][a-z0-9._@-]{0,63}$/i;

function parseIdentity(word: string | undefined, usageLine: string): string {
  if (word === undefined) return fail(`${usageLine} needs an identity, e.g. slack:U0123`);
  const identity = slackMention(word);
  if (!/^[a-z]+:\S+$/.test(identity) || identity.startsWith('person:'))
    return fail(`"${identity}" is not an identity (they look like slack:U0123, teams:<aad id>, web:alice)`);
  return identity;
}

function parsePeople(args: string[]): PeopleCommand {
  const action = (args[0] ?? 'list').toLowerCase();
  const rest = args.slice(1);
  if (action === 'list') {
    noMore(rest, 'people');
    return { verb: 'people', action: 'list' };
  }
  if (action === 'unlink') {
    const identity = parseIdentity(rest[0], 'people unlink');
    noMore(rest.slice(1), 'people');
    return { verb: 'people', action: 'unlink', identity };
  }
  if (action !== 'link') return fail(`people: unknown action "${action}" (use list, link or unlink)`);
  const [person, rawIdentity, ...extra] = rest;
  if (!person || !PERSON_RE.test(person))
    return fail(
      `people link needs a person's name first (letters, digits, . _ @ -), e.g. people link alice slack:U0123`,
    );
  const identity = parseIdentity(rawIdentity, 'people link');
  const cmd: PeopleCommand = { verb: 'people', action: 'link', person, identity };
  for (const word of extra) {
    const kv = splitKey(word);
    if (!kv || kv.key !== 'email' || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(kv.value))
      return fail(`people link: "${word}" is not understood (it takes email:<address>)`);
    if (cmd.email !== undefined) return fail('people link: email: is given twice');
    cmd.email = kv.value;
  }
  return cmd;
}

function parseVerb(verb: Verb, args: string[]): Command {
  switch (verb) {
    case 'help': {
      noMore(args.slice(1), 'help');
      const topic = args[0]?.toLowerCase();
      if (topic && !(VERBS as readonly string[]).includes(topic))
        return fail(`there is no command "${topic}" to explain`);
      return topic ? { verb, topic } : { verb };
    }
    case 'status':
      noMore(args.slice(1), 'status');
      return args[0] ? { verb, cycleId: cycleId(args, verb) } : { verb };
    case 'cycles':
      noMore(args, 'cycles');
      return { verb };
    case 'scan':
      return { verb, scope: parseScope(args) };
    case 'start': {
      const flags = args.filter((a) => a.startsWith('--'));
      const words = args.filter((a) => !a.startsWith('--'));
      let emergency = false;
      for (const f of flags) {
        if (f.toLowerCase() === '--emergency') emergency = true;
        else fail(`unknown option "${f}" (start takes --emergency)`);
      }
      const policy = words[0];
      if (!policy) return fail('start needs a policy name first, e.g. start default group:web');
      if (splitKey(policy))
        return fail(
          `start needs a policy name before the scope ("${policy}" is a scope word), e.g. start default ${policy}`,
        );
      if (!NAME_RE.test(policy)) return fail(`"${policy}" is not a policy name`);
      return { verb, policy, scope: parseScope(words.slice(1)), emergency };
    }
    case 'approve':
      noMore(args.slice(1), 'approve');
      return { verb, cycleId: cycleId(args, verb) };
    case 'reject': {
      const id = cycleId(args, verb);
      const reason = restText(args.slice(1));
      if (!reason) return fail(`a rejection needs a reason, e.g. reject ${id} "breaks the billing app"`);
      return { verb, cycleId: id, reason };
    }
    case 'pause':
    case 'resume':
    case 'cancel': {
      const id = cycleId(args, verb);
      const reason = restText(args.slice(1));
      return reason ? { verb, cycleId: id, reason } : { verb, cycleId: id };
    }
    case 'rollback': {
      const id = cycleId(args, verb);
      const [ep, ...extra] = args.slice(1);
      noMore(extra, 'rollback');
      if (ep === undefined) return { verb, cycleId: id };
      const kv = splitKey(ep);
      const endpointId = kv && (kv.key === 'endpoint' || kv.key === 'ep') ? kv.value : ep;
      if (!ID_RE.test(endpointId)) return fail(`"${endpointId}" is not an endpoint id`);
      return { verb, cycleId: id, endpointId };
    }
    case 'report': {
      const scope = parseScope(args);
      return Object.keys(scope).length > 0 ? { verb, scope } : { verb };
    }
    case 'endpoints':
      return { verb, query: args.join(' ').trim() };
    case 'exceptions':
      return parseExceptions(args);
    case 'roles':
      return parseRoles(args);
    case 'people':
      return parsePeople(args);
  }
}

const VERB_ALIASES: Record<string, Verb> = {
  '?': 'help',
  list: 'cycles',
  exception: 'exceptions',
  endpoint: 'endpoints',
  role: 'roles',
  person: 'people',
  stop: 'cancel',
};

/** Parses one command line. Never throws: bad input gives `{ ok: false, error, usage }`. */
export function parseCommand(text: string): ParseResult {
  try {
    // Teams puts the bot's mention in the text: "<at>patchops</at> approve C-12".
    const t = tokenize((typeof text === 'string' ? text : '').replace(/^\s*<at>[^<]*<\/at>/i, ''));
    if (!t.ok) return { ok: false, error: `${t.error}: close it or remove it`, usage: usage() };
    const tokens = [...t.tokens];
    if (tokens[0] && /^\/?patch(ops)?$/i.test(tokens[0])) tokens.shift();
    const word = tokens[0]?.toLowerCase();
    if (word === undefined) return { ok: true, command: { verb: 'help' } };
    const verb = (VERBS as readonly string[]).includes(word) ? (word as Verb) : VERB_ALIASES[word];
    if (!verb) return { ok: false, error: `unknown command "${tokens[0]}"`, usage: usage() };
    try {
      return { ok: true, command: parseVerb(verb, tokens.slice(1)) };
    } catch (e) {
      if (e instanceof GrammarError) return { ok: false, error: e.message, usage: usage(verb) };
      throw e;
    }
  } catch (e) {
    return {
      ok: false,
      error: `the command could not be read (${e instanceof Error ? e.message : String(e)})`,
      usage: usage(),
    };
  }
}
