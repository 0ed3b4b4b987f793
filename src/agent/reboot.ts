/**
 * Reboots per policy: never / if_required / always. The logged-in user is told (wall and notify-send on
 * Linux, osascript on macOS, msg.exe on Windows — whichever exists) and may defer (`patchops agent
 * --defer-reboot` writes a request into the state directory) up to the policy's limit.
 */
import fs from 'node:fs/promises';
import type { RebootPolicy } from '../shared/agent-protocol';
import { execFile, type Exec } from './exec';

export interface Rebooter {
  notify(message: string): Promise<void>;
  /** Restarts the machine after `delayMinutes`. */
  reboot(delayMinutes: number): Promise<void>;
}

export class SystemRebooter implements Rebooter {
  constructor(
    private readonly exec: Exec = execFile,
    private readonly platform: NodeJS.Platform = process.platform,
  ) {}

  async notify(message: string): Promise<void> {
    if (this.platform === 'win32') {
      await this.exec('msg.exe', ['*', '/TIME:300', message]);
    } else if (this.platform === 'darwin') {
      await this.exec('osascript', ['-e', `display notification ${JSON.stringify(message)} with title "patchops"`]);
    } else {
      await this.exec('wall', [message]);
      await this.exec('notify-send', ['patchops', message]);
    }
  }

  async reboot(delayMinutes: number): Promise<void> {
    if (this.platform === 'win32') await this.exec('shutdown', ['/r', '/t', String(delayMinutes * 60), '/c', 'patchops: restart to finish installing updates']);
    else await this.exec('shutdown', ['-r', `+${delayMinutes}`, 'patchops: restart to finish installing updates']);
  }
}

/** Does not restart anything; records what it was asked (agent-sim, tests, `--no-reboot`). */
export class RecordingRebooter implements Rebooter {
  readonly notices: string[] = [];
  readonly reboots: number[] = [];
  async notify(message: string): Promise<void> {
    this.notices.push(message);
  }
  async reboot(delayMinutes: number): Promise<void> {
    this.reboots.push(delayMinutes);
  }
}

export type RebootDecision = { action: 'none' } | { action: 'reboot'; delayMinutes: number } | { action: 'deferred'; deferralsUsed: number };

/**
 * Decides and acts: whether to restart now, after the deferral, or not at all. `deferRequested` is whether
 * the user asked to defer (the defer file exists); deferrals beyond the policy's limit are refused.
 */
export async function handleReboot(o: {
  policy: RebootPolicy | undefined;
  required: boolean;
  rebooter: Rebooter;
  deferralsUsed: number;
  deferFile?: string;
}): Promise<RebootDecision> {
  const policy = o.policy ?? { behaviour: 'if_required', notifyUser: true, deferralLimit: 0, deferralMinutes: 60 };
  const wants = policy.behaviour === 'always' || (policy.behaviour === 'if_required' && o.required);
  if (!wants) return { action: 'none' };
  let deferRequested = false;
  if (o.deferFile) {
    deferRequested = await fs.stat(o.deferFile).then(
      () => true,
      () => false,
    );
    if (deferRequested) await fs.rm(o.deferFile, { force: true });
  }
  if (deferRequested && o.deferralsUsed < policy.deferralLimit) {
    if (policy.notifyUser) await o.rebooter.notify(`Restart deferred by ${policy.deferralMinutes} minutes (${o.deferralsUsed + 1} of ${policy.deferralLimit} deferrals used).`);
    return { action: 'deferred', deferralsUsed: o.deferralsUsed + 1 };
  }
  const delay = policy.notifyUser ? Math.min(policy.deferralMinutes, 15) : 1;
  if (policy.notifyUser) {
    const left = Math.max(0, policy.deferralLimit - o.deferralsUsed);
    await o.rebooter.notify(
      `patchops installed updates: this computer restarts in ${delay} minutes.${left > 0 ? ` To defer, run "patchops agent --defer-reboot" (${left} deferral(s) left).` : ''}`,
    );
  }
  await o.rebooter.reboot(delay);
  return { action: 'reboot', delayMinutes: delay };
}
