/**
 * Reboots per policy: never / if_required / always. A restart is not fired from inside the job: the job plans
 * it (a `PendingReboot` in the agent's state, due after a grace period when the user is to be told) and the
 * agent's loop carries it out when due (`tickReboot`). Until then the logged-in users are told (wall and
 * notify-send in each graphical session on Linux, a notification in the console user's session on macOS,
 * msg.exe on Windows — whichever exists) and may defer with `patchops agent --defer-reboot`, up to the
 * policy's limit, each deferral pushing the restart back by the policy's deferral length.
 *
 * A pending restart survives an agent restart (it lives in the state file) and is dropped once the machine
 * has booted after the restart was issued.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import { z } from 'zod';
import { rebootPolicySchema, type RebootPolicy } from '../shared/agent-protocol';
import { execFile, type Exec } from './exec';

export interface Rebooter {
  /** Tells the logged-in users; returns the channels that delivered (for the log). */
  notify(message: string): Promise<string[]>;
  /** Restarts the machine now. */
  reboot(): Promise<void>;
}

export class SystemRebooter implements Rebooter {
  constructor(
    private readonly exec: Exec = execFile,
    private readonly platform: NodeJS.Platform = process.platform,
    private readonly uid: number | undefined = process.getuid?.(),
  ) {}

  async notify(message: string): Promise<string[]> {
    const ok = async (label: string, file: string, args: string[]) =>
      (await this.exec(file, args, { timeoutMs: 15_000 })).code === 0 ? [label] : [];
    if (this.platform === 'win32') return ok('msg.exe', 'msg.exe', ['*', '/TIME:300', message]);
    if (this.platform === 'darwin') {
      const script = `display notification ${JSON.stringify(message)} with title "patchops"`;
      if (this.uid !== 0) return ok('osascript', 'osascript', ['-e', script]);
      // As root (launchd daemon): post into the console user's GUI session.
      const user = (await this.exec('stat', ['-f', '%Su', '/dev/console'])).stdout.trim();
      if (!user || user === 'root') return [];
      const uid = (await this.exec('id', ['-u', user])).stdout.trim();
      if (!/^\d+$/.test(uid)) return [];
      return ok(`osascript:${user}`, 'launchctl', ['asuser', uid, 'sudo', '-u', user, 'osascript', '-e', script]);
    }
    const delivered = await ok('wall', 'wall', [message]);
    if (this.uid !== 0)
      return [...delivered, ...(await ok('notify-send', 'notify-send', ['-u', 'critical', 'patchops', message]))];
    // As root (systemd service): notify-send needs the user's session bus, so send it as each graphical session's user.
    for (const s of await graphicalSessions(this.exec)) {
      delivered.push(
        ...(await ok(`notify-send:${s.user}`, 'runuser', [
          '-u',
          s.user,
          '--',
          'env',
          `DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/${s.uid}/bus`,
          'notify-send',
          '-u',
          'critical',
          'patchops',
          message,
        ])),
      );
    }
    return delivered;
  }

  async reboot(): Promise<void> {
    const why = 'patchops: restart to finish installing updates';
    if (this.platform === 'win32') await this.exec('shutdown', ['/r', '/t', '0', '/c', why]);
    else await this.exec('shutdown', ['-r', 'now', why]);
  }
}

/** Graphical (x11 / wayland) logind sessions: who to send desktop notifications to. */
export async function graphicalSessions(exec: Exec): Promise<Array<{ id: string; user: string; uid: string }>> {
  const list = await exec('loginctl', ['list-sessions', '--no-legend']);
  if (list.code !== 0) return [];
  const out: Array<{ id: string; user: string; uid: string }> = [];
  for (const line of list.stdout.split('\n')) {
    const id = line.trim().split(/\s+/)[0];
    if (!id) continue;
    const show = await exec('loginctl', ['show-session', id, '-p', 'Type', '-p', 'Name', '-p', 'User', '-p', 'State']);
    if (show.code !== 0) continue;
    const p = Object.fromEntries(
      show.stdout.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).trim()]),
    );
    if ((p.Type === 'x11' || p.Type === 'wayland') && p.State !== 'closing' && p.Name && /^\d+$/.test(p.User ?? ''))
      out.push({ id, user: p.Name, uid: p.User! });
  }
  return out;
}

/** Does not restart anything; records what it was asked (agent-sim, tests, `--no-reboot`). */
export class RecordingRebooter implements Rebooter {
  readonly notices: string[] = [];
  reboots = 0;
  /** `log` hears each notice and restart it did not carry out (`patchops agent --no-reboot`). */
  constructor(private readonly log?: (event: 'notice' | 'restart_skipped', message: string) => void) {}
  async notify(message: string): Promise<string[]> {
    this.notices.push(message);
    this.log?.('notice', message);
    return ['recorded'];
  }
  async reboot(): Promise<void> {
    this.reboots += 1;
    this.log?.('restart_skipped', 'a restart is due; not restarting (--no-reboot)');
  }
}

export const pendingRebootSchema = z.object({
  /** When the restart happens unless deferred. */
  dueAt: z.string(),
  deferralsUsed: z.number().int().min(0),
  policy: rebootPolicySchema,
  /** Set when the restart command was given: a boot after this time means it is done. */
  issuedAt: z.string().optional(),
});
export type PendingReboot = z.infer<typeof pendingRebootSchema>;

/** Minutes the user is given between the notice and the restart (none when the policy says not to tell them). */
export const graceMinutes = (policy: RebootPolicy): number =>
  policy.notifyUser ? Math.min(policy.deferralMinutes, 15) : 0;

const DEFAULT_POLICY: RebootPolicy = {
  behaviour: 'if_required',
  notifyUser: true,
  deferralLimit: 0,
  deferralMinutes: 60,
};
const at = (d: Date) => d.toISOString().slice(11, 16) + ' UTC';

/**
 * After an install (or for a reboot job): whether a restart is wanted, and if so the pending restart to keep.
 * An already pending restart is kept as it is (its deferrals stay counted); the user is told once.
 */
export async function planReboot(o: {
  policy: RebootPolicy | undefined;
  required: boolean;
  rebooter: Rebooter;
  pending: PendingReboot | null;
  now: Date;
}): Promise<PendingReboot | null> {
  const policy = o.policy ?? DEFAULT_POLICY;
  const wants = policy.behaviour === 'always' || (policy.behaviour === 'if_required' && o.required);
  if (!wants) return o.pending;
  if (o.pending && !o.pending.issuedAt) return o.pending;
  const grace = graceMinutes(policy);
  const due = new Date(o.now.getTime() + grace * 60_000);
  if (policy.notifyUser) {
    const left = policy.deferralLimit;
    await o.rebooter.notify(
      `patchops installed updates: this computer restarts in ${grace} minutes (at ${at(due)}). Save your work.${left > 0 ? ` To defer by ${policy.deferralMinutes} minutes, run "patchops agent --defer-reboot" (${left} deferral(s) allowed).` : ''}`,
    );
  }
  return { dueAt: due.toISOString(), deferralsUsed: 0, policy };
}

export type RebootTick =
  | { action: 'none'; pending: PendingReboot | null }
  | { action: 'deferred'; pending: PendingReboot }
  | { action: 'refused_deferral'; pending: PendingReboot }
  | { action: 'rebooted'; pending: PendingReboot };

/**
 * One step of a pending restart, from the agent's loop: applies a deferral request (within the limit), and
 * restarts when due. `deferRequested` is whether the user asked (the request file existed; the caller removes it).
 */
export async function tickReboot(o: {
  pending: PendingReboot | null;
  deferRequested: boolean;
  rebooter: Rebooter;
  now: Date;
  bootedAt: Date;
}): Promise<RebootTick> {
  const p = o.pending;
  if (!p) return { action: 'none', pending: null };
  if (p.issuedAt) {
    // The restart was issued: done once the machine booted after it; a machine still up long after is told again.
    if (o.bootedAt.getTime() > Date.parse(p.issuedAt)) return { action: 'none', pending: null };
    if (o.now.getTime() - Date.parse(p.issuedAt) < 30 * 60_000) return { action: 'none', pending: p };
    await o.rebooter.reboot();
    return { action: 'rebooted', pending: { ...p, issuedAt: o.now.toISOString() } };
  }
  if (o.deferRequested) {
    if (p.deferralsUsed < p.policy.deferralLimit) {
      const base = Math.max(o.now.getTime(), Date.parse(p.dueAt));
      const next: PendingReboot = {
        ...p,
        deferralsUsed: p.deferralsUsed + 1,
        dueAt: new Date(Math.max(base, o.now.getTime() + p.policy.deferralMinutes * 60_000)).toISOString(),
      };
      await o.rebooter.notify(
        `Restart deferred to ${at(new Date(next.dueAt))} (${next.deferralsUsed} of ${p.policy.deferralLimit} deferral(s) used).`,
      );
      return { action: 'deferred', pending: next };
    }
    await o.rebooter.notify(
      `No deferrals left (${p.policy.deferralLimit} allowed): this computer restarts at ${at(new Date(p.dueAt))}.`,
    );
    if (o.now.getTime() < Date.parse(p.dueAt)) return { action: 'refused_deferral', pending: p };
  }
  if (o.now.getTime() < Date.parse(p.dueAt)) return { action: 'none', pending: p };
  await o.rebooter.reboot();
  return { action: 'rebooted', pending: { ...p, issuedAt: o.now.toISOString() } };
}

/** Reads and removes a deferral request file; true when there was one. */
export async function takeDeferRequest(file: string | undefined): Promise<boolean> {
  if (!file) return false;
  try {
    await fs.rm(file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** When this machine last booted. */
export const bootTime = (now = Date.now()): Date => new Date(now - os.uptime() * 1000);
