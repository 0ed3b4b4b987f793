import { describe, expect, it } from 'vitest';
import type { RebootPolicy } from '../shared/agent-protocol';
import type { Exec, ExecResult } from './exec';
import {
  graphicalSessions,
  planReboot,
  RecordingRebooter,
  SystemRebooter,
  tickReboot,
  type PendingReboot,
} from './reboot';

const T0 = new Date('2026-11-27T10:00:00Z');
const min = (n: number) => new Date(T0.getTime() + n * 60_000);
const policy = (p: Partial<RebootPolicy> = {}): RebootPolicy => ({
  behaviour: 'if_required',
  notifyUser: true,
  deferralLimit: 2,
  deferralMinutes: 60,
  ...p,
});
const longAgo = new Date('2026-11-01T00:00:00Z');

describe('planReboot', () => {
  it('plans nothing for "never", nor for "if_required" when nothing needs a restart', async () => {
    const r = new RecordingRebooter();
    expect(
      await planReboot({ policy: policy({ behaviour: 'never' }), required: true, rebooter: r, pending: null, now: T0 }),
    ).toBeNull();
    expect(await planReboot({ policy: policy(), required: false, rebooter: r, pending: null, now: T0 })).toBeNull();
    expect(r.notices).toEqual([]);
  });

  it('plans a restart after a grace period and tells the user how to defer', async () => {
    const r = new RecordingRebooter();
    const p = await planReboot({ policy: policy(), required: true, rebooter: r, pending: null, now: T0 });
    expect(p).toEqual({ dueAt: min(15).toISOString(), deferralsUsed: 0, policy: policy() });
    expect(r.notices).toHaveLength(1);
    expect(r.notices[0]).toContain('restarts in 15 minutes (at 10:15 UTC)');
    expect(r.notices[0]).toContain('patchops agent --defer-reboot');
    expect(r.reboots).toBe(0);
  });

  it('"always" restarts even when nothing requires it; without notifying the user it is due at once and silent', async () => {
    const r = new RecordingRebooter();
    const p = await planReboot({
      policy: policy({ behaviour: 'always', notifyUser: false }),
      required: false,
      rebooter: r,
      pending: null,
      now: T0,
    });
    expect(p?.dueAt).toBe(T0.toISOString());
    expect(r.notices).toEqual([]);
  });

  it('keeps a restart that is already pending (its deferrals stay counted) and does not notify twice', async () => {
    const r = new RecordingRebooter();
    const pending: PendingReboot = { dueAt: min(30).toISOString(), deferralsUsed: 1, policy: policy() };
    expect(await planReboot({ policy: policy(), required: true, rebooter: r, pending, now: T0 })).toBe(pending);
    expect(r.notices).toEqual([]);
  });
});

describe('tickReboot', () => {
  const pending: PendingReboot = { dueAt: min(15).toISOString(), deferralsUsed: 0, policy: policy() };

  it('waits until due, then restarts and records when it did', async () => {
    const r = new RecordingRebooter();
    expect(await tickReboot({ pending, deferRequested: false, rebooter: r, now: min(14), bootedAt: longAgo })).toEqual({
      action: 'none',
      pending,
    });
    expect(r.reboots).toBe(0);
    const t = await tickReboot({ pending, deferRequested: false, rebooter: r, now: min(15), bootedAt: longAgo });
    expect(t.action).toBe('rebooted');
    expect(t.pending?.issuedAt).toBe(min(15).toISOString());
    expect(r.reboots).toBe(1);
  });

  it('defers by the policy length up to the limit, then refuses and restarts when due', async () => {
    const r = new RecordingRebooter();
    const d1 = await tickReboot({ pending, deferRequested: true, rebooter: r, now: min(5), bootedAt: longAgo });
    expect(d1.action).toBe('deferred');
    expect(d1.pending).toMatchObject({ deferralsUsed: 1, dueAt: min(65).toISOString() });
    expect(r.notices.at(-1)).toBe('Restart deferred to 11:05 UTC (1 of 2 deferral(s) used).');
    // Not due yet at the old time any more.
    expect(
      (await tickReboot({ pending: d1.pending, deferRequested: false, rebooter: r, now: min(15), bootedAt: longAgo }))
        .action,
    ).toBe('none');
    const d2 = await tickReboot({
      pending: d1.pending,
      deferRequested: true,
      rebooter: r,
      now: min(65),
      bootedAt: longAgo,
    });
    expect(d2.pending).toMatchObject({ deferralsUsed: 2, dueAt: min(125).toISOString() });
    const refused = await tickReboot({
      pending: d2.pending,
      deferRequested: true,
      rebooter: r,
      now: min(100),
      bootedAt: longAgo,
    });
    expect(refused.action).toBe('refused_deferral');
    expect(refused.pending).toBe(d2.pending);
    expect(r.notices.at(-1)).toContain('No deferrals left (2 allowed)');
    expect(r.reboots).toBe(0);
    // A request made at the due time beyond the limit does not stop the restart.
    const late = await tickReboot({
      pending: d2.pending,
      deferRequested: true,
      rebooter: r,
      now: min(125),
      bootedAt: longAgo,
    });
    expect(late.action).toBe('rebooted');
    expect(r.reboots).toBe(1);
  });

  it('a policy without deferrals refuses the first request', async () => {
    const r = new RecordingRebooter();
    const p0: PendingReboot = { ...pending, policy: policy({ deferralLimit: 0 }) };
    expect(
      (await tickReboot({ pending: p0, deferRequested: true, rebooter: r, now: min(1), bootedAt: longAgo })).action,
    ).toBe('refused_deferral');
  });

  it('drops an issued restart once the machine has booted after it, and issues it again if the machine stayed up', async () => {
    const r = new RecordingRebooter();
    const issued: PendingReboot = { ...pending, issuedAt: min(15).toISOString() };
    expect(
      await tickReboot({ pending: issued, deferRequested: false, rebooter: r, now: min(20), bootedAt: min(17) }),
    ).toEqual({ action: 'none', pending: null });
    expect(
      (await tickReboot({ pending: issued, deferRequested: false, rebooter: r, now: min(20), bootedAt: longAgo }))
        .action,
    ).toBe('none');
    expect(r.reboots).toBe(0);
    const again = await tickReboot({
      pending: issued,
      deferRequested: false,
      rebooter: r,
      now: min(50),
      bootedAt: longAgo,
    });
    expect(again.action).toBe('rebooted');
    expect(r.reboots).toBe(1);
  });
});

/** An Exec that answers from a table and records every call. */
function fakeExec(answers: Record<string, Partial<ExecResult>>): { exec: Exec; calls: string[][] } {
  const calls: string[][] = [];
  const exec: Exec = async (file, args) => {
    calls.push([file, ...args]);
    const key = Object.keys(answers).find((k) => [file, ...args].join(' ').startsWith(k));
    if (!key) return { code: 127, stdout: '', stderr: `${file}: not found` };
    return { code: 0, stdout: '', stderr: '', ...answers[key] };
  };
  return { exec, calls };
}

// `loginctl list-sessions --no-legend` as systemd 252 (Debian 12) prints it: a text console and a GNOME session.
const SESSIONS = '      3 1000 alice seat0 tty2\n     c1  120 gdm   seat0 tty1\n      7 1001 bob         pts/0\n';

describe('SystemRebooter.notify', () => {
  it('as root on Linux: wall, and notify-send inside each graphical session as its user', async () => {
    const { exec, calls } = fakeExec({
      wall: {},
      'loginctl list-sessions': { stdout: SESSIONS },
      'loginctl show-session 3': { stdout: 'Type=wayland\nName=alice\nUser=1000\nState=active\n' },
      'loginctl show-session c1': { stdout: 'Type=x11\nName=gdm\nUser=120\nState=closing\n' },
      'loginctl show-session 7': { stdout: 'Type=tty\nName=bob\nUser=1001\nState=active\n' },
      'runuser -u alice': {},
    });
    const delivered = await new SystemRebooter(exec, 'linux', 0).notify('restart soon');
    expect(delivered).toEqual(['wall', 'notify-send:alice']);
    expect(calls).toContainEqual(['wall', 'restart soon']);
    expect(calls).toContainEqual([
      'runuser',
      '-u',
      'alice',
      '--',
      'env',
      'DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus',
      'notify-send',
      '-u',
      'critical',
      'patchops',
      'restart soon',
    ]);
  });

  it('uses what exists: no wall and no logind → nothing delivered, nothing thrown', async () => {
    const { exec } = fakeExec({});
    expect(await new SystemRebooter(exec, 'linux', 0).notify('x')).toEqual([]);
    expect(await graphicalSessions(exec)).toEqual([]);
  });

  it('as a user on Linux: wall and notify-send directly', async () => {
    const { exec } = fakeExec({ 'notify-send': {} });
    expect(await new SystemRebooter(exec, 'linux', 1000).notify('x')).toEqual(['notify-send']);
  });

  it("on macOS as root: a notification in the console user's session", async () => {
    const { exec, calls } = fakeExec({
      'stat -f %Su /dev/console': { stdout: 'carol\n' },
      'id -u carol': { stdout: '501\n' },
      'launchctl asuser 501': {},
    });
    expect(await new SystemRebooter(exec, 'darwin', 0).notify('restart "soon"')).toEqual(['osascript:carol']);
    expect(calls.at(-1)).toEqual([
      'launchctl',
      'asuser',
      '501',
      'sudo',
      '-u',
      'carol',
      'osascript',
      '-e',
      'display notification "restart \\"soon\\"" with title "patchops"',
    ]);
  });

  it('on macOS at the login window (console owned by root) tells nobody', async () => {
    const { exec } = fakeExec({ 'stat -f %Su /dev/console': { stdout: 'root\n' } });
    expect(await new SystemRebooter(exec, 'darwin', 0).notify('x')).toEqual([]);
  });

  it('on Windows: msg.exe to every session; the restart is shutdown /r', async () => {
    const { exec, calls } = fakeExec({ 'msg.exe': {}, shutdown: {} });
    const r = new SystemRebooter(exec, 'win32');
    expect(await r.notify('x')).toEqual(['msg.exe']);
    await r.reboot();
    expect(calls).toEqual([
      ['msg.exe', '*', '/TIME:300', 'x'],
      ['shutdown', '/r', '/t', '0', '/c', 'patchops: restart to finish installing updates'],
    ]);
  });
});
