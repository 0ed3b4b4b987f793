/**
 * The role check of the one executor, for every verb × every role: allowed, or FORBIDDEN before anything is
 * read or changed. The roles each verb needs are written out here, not read from VERB_TABLE, so a wrong entry
 * in the table fails as surely as a verb that skips the check.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { RecordingCycleService } from '../../test/fakes/recording-cycle-service';
import type { Db } from '../db/client';
import type { Role } from '../db/identities';
import { CodedError, ErrorCode } from '../domain/errors';
import { authorize } from './authorize';
import { execute } from './execute';
import { parseCommand, VERBS, type Command, type Verb } from './grammar';

/** One command line per verb. */
const SAMPLES: Record<Verb, string> = {
  help: 'help',
  status: 'status C-1',
  cycles: 'cycles',
  scan: 'scan group:web',
  start: 'start default group:web',
  approve: 'approve C-1',
  reject: 'reject C-1 breaks billing',
  pause: 'pause C-1',
  resume: 'resume C-1',
  cancel: 'cancel C-1',
  rollback: 'rollback C-1 ep-1',
  report: 'report group:web',
  endpoints: 'endpoints web',
  exceptions: 'exceptions list',
  roles: 'roles list slack:U9',
  people: 'people link alice slack:U9',
};

/** What each verb needs (null: nothing). */
const NEEDS: Record<Verb, Role | null> = {
  help: null,
  status: 'viewer',
  cycles: 'viewer',
  report: 'viewer',
  endpoints: 'viewer',
  approve: 'approver',
  reject: 'approver',
  scan: 'admin',
  start: 'admin',
  pause: 'admin',
  resume: 'admin',
  cancel: 'admin',
  rollback: 'admin',
  exceptions: 'admin',
  roles: 'admin',
  people: 'admin',
};

const HOLDERS: Array<{ name: string; roles: Role[] }> = [
  { name: 'no role', roles: [] },
  { name: 'viewer', roles: ['viewer'] },
  { name: 'approver', roles: ['approver'] },
  { name: 'admin', roles: ['admin'] },
];

/** Who may: the role needed, or one that ranks above it (viewer < approver < admin). */
function mayUse(verb: Verb, roles: Role[]): boolean {
  const needed = NEEDS[verb];
  if (needed === null) return true;
  const order: Role[] = ['viewer', 'approver', 'admin'];
  return roles.some((r) => order.indexOf(r) >= order.indexOf(needed));
}

function command(verb: Verb): Command {
  const p = parseCommand(SAMPLES[verb]);
  if (!p.ok) throw new Error(`${SAMPLES[verb]}: ${p.error}`);
  expect(p.command.verb).toBe(verb);
  return p.command;
}

/** A database that records being touched and then fails, so an allowed verb ends DEPENDENCY_DOWN, not FORBIDDEN. */
function recordingDb(touched: string[]): Db {
  return new Proxy(
    {},
    {
      get(_t, prop) {
        touched.push(String(prop));
        return () => {
          throw new CodedError(ErrorCode.DependencyDown, 'the test database is not there');
        };
      },
    },
  ) as unknown as Db;
}

const cases = VERBS.flatMap((verb) =>
  HOLDERS.map((h) => ({ verb, holder: h.name, roles: h.roles, allowed: mayUse(verb, h.roles) })),
);

describe('execute: one role check for every verb', () => {
  let service: RecordingCycleService;
  let touched: string[];
  beforeEach(() => {
    service = new RecordingCycleService();
    service.addCycle('C-1', { requestedBy: 'slack:UREQ' });
    touched = [];
  });

  it('has a sample and an expected role for every verb of the grammar', () => {
    expect(Object.keys(SAMPLES).sort()).toEqual([...VERBS].sort());
    expect(Object.keys(NEEDS).sort()).toEqual([...VERBS].sort());
  });

  it.each(cases)('$verb by $holder: allowed=$allowed', async ({ verb, roles, allowed }) => {
    const outcome = await execute(command(verb), {
      identity: 'slack:U1',
      channel: 'slack',
      roles,
      service,
      db: recordingDb(touched),
    });
    if (allowed) {
      expect(outcome.ok ? 'ok' : outcome.code).not.toBe(ErrorCode.Forbidden);
      return;
    }
    expect(outcome).toMatchObject({ ok: false, code: ErrorCode.Forbidden });
    expect(service.calls).toEqual([]);
    expect(touched).toEqual([]);
  });

  // `people` reads with `list` (viewer) and changes with link / unlink (admin): the action decides.
  const peopleCases = [
    { line: 'people list', needed: 'viewer' as Role },
    { line: 'people link alice slack:U9', needed: 'admin' as Role },
    { line: 'people unlink slack:U9', needed: 'admin' as Role },
  ].flatMap((c) => HOLDERS.map((h) => ({ ...c, holder: h.name, roles: h.roles })));
  it.each(peopleCases)('$line by $holder', async ({ line, needed, roles }) => {
    const p = parseCommand(line);
    if (!p.ok) throw new Error(p.error);
    const order: Role[] = ['viewer', 'approver', 'admin'];
    const allowed = roles.some((r) => order.indexOf(r) >= order.indexOf(needed));
    const outcome = await execute(p.command, {
      identity: 'slack:U1',
      channel: 'slack',
      roles,
      service,
      db: recordingDb(touched),
    });
    if (allowed) {
      expect(outcome.ok ? 'ok' : outcome.code).not.toBe(ErrorCode.Forbidden);
    } else {
      expect(outcome).toMatchObject({ ok: false, code: ErrorCode.Forbidden });
      expect(touched).toEqual([]);
    }
  });

  it('tells someone without a role which role to ask for, and how', async () => {
    for (const verb of ['status', 'report', 'endpoints'] as const) {
      const outcome = await execute(command(verb), {
        identity: 'slack:U1',
        channel: 'slack',
        roles: [],
        service,
        db: recordingDb(touched),
      });
      expect(outcome).toEqual({
        ok: false,
        code: 'FORBIDDEN',
        message: `you need the viewer role to use "${verb}"; ask an admin: roles grant slack:U1 viewer`,
      });
    }
    expect(authorize('pause', ['viewer', 'approver'], 'teams:29:x')).toEqual({
      ok: false,
      code: 'FORBIDDEN',
      message:
        'only admins may use "pause"; ask an admin to run it, or to grant you the role (roles grant teams:29:x admin)',
    });
  });

  it('gives typed data to an allowed caller: status carries the cycle, help its usage', async () => {
    const ctx = {
      identity: 'slack:U1',
      channel: 'slack' as const,
      roles: ['viewer'] as Role[],
      service,
      db: recordingDb(touched),
    };
    const status = await execute(command('status'), ctx);
    expect(status).toMatchObject({
      ok: true,
      data: { verb: 'status', status: { cycleId: 'C-1', stage: 'AWAIT_APPROVAL' } },
    });
    expect(status.ok && status.text).toMatch(/^C-1 — AWAIT_APPROVAL\n/);
    const help = await execute(command('help'), { ...ctx, roles: [] });
    expect(help).toMatchObject({ ok: true, data: { verb: 'help' } });
  });
});
