/**
 * Mirrors what the cycle tells chat into the change request's work notes, so change managers see every
 * stage (test result, each wave, pause, rollback, approvals, the summary) in ServiceNow without the
 * workflow calling the change desk once per message. Wraps any ChatNotifier; the chat message always
 * goes out first, and a failed work note is logged, never thrown (chat must not fail because ServiceNow
 * is down; the close at the end still carries the results).
 */
import type {
  ApprovalRequest,
  ChangeDesk,
  ChatNotifier,
  CycleReport,
  DecisionNotice,
  PauseQuestion,
  StageUpdate,
} from '../../domain/ports';
import type { WaveStatus } from '../../domain/cycle';
import type { Logger } from '../../logging';

export interface WorkNoteOptions {
  chat: ChatNotifier;
  desk: ChangeDesk;
  /** The cycle's change number, or null while it has none (read from patch_cycles.change_number). */
  changeNumberOf: (cycleId: string) => Promise<string | null>;
  logger?: Logger;
  /** When set, each finished wave also gets a change task, closed complete or incomplete with its result. */
  waveTasks?: WaveTasks;
}

export interface WaveTasks {
  openWaveTask(
    changeNumber: string,
    task: { wave: number; name: string; plannedStart?: string; plannedEnd?: string; description?: string },
  ): Promise<string>;
  closeWaveTask(changeNumber: string, wave: number, successful: boolean, notes: string): Promise<void>;
}

export function withChangeWorkNotes(o: WorkNoteOptions): ChatNotifier {
  const known = new Map<string, string>();
  const changeOf = async (cycleId: string): Promise<string | null> => {
    const cached = known.get(cycleId);
    if (cached) return cached;
    const n = await o.changeNumberOf(cycleId);
    if (n) known.set(cycleId, n);
    return n;
  };
  const note = async (cycleId: string, text: string): Promise<void> => {
    try {
      const number = await changeOf(cycleId);
      if (number) await o.desk.addWorkNote(number, text);
    } catch (err) {
      o.logger?.warn({ err, cycleId }, 'could not add the work note to the change request');
    }
  };
  const waveTask = async (cycleId: string, w: WaveStatus): Promise<void> => {
    try {
      const number = await changeOf(cycleId);
      if (!number || !o.waveTasks) return;
      const name = w.name || `Wave ${w.index}`;
      await o.waveTasks.openWaveTask(number, {
        wave: w.index,
        name,
        ...(w.windowStart ? { plannedStart: w.windowStart } : {}),
        ...(w.windowEnd ? { plannedEnd: w.windowEnd } : {}),
        description: `patchops deployment wave ${w.index} (${name}) on ${w.total} endpoint(s)`,
      });
      await o.waveTasks.closeWaveTask(number, w.index, w.failed + w.unreachable + w.pending === 0, waveLine(name, w));
    } catch (err) {
      o.logger?.warn({ err, cycleId, wave: w.index }, 'could not record the wave as a change task');
    }
  };
  return {
    async requestApproval(req: ApprovalRequest) {
      await o.chat.requestApproval(req);
      await note(
        req.cycleId,
        `patchops: approval requested (${req.approvalsNeeded} needed${req.deadline ? `, by ${req.deadline}` : ''}) for ${req.endpoints} endpoint(s).${req.test ? ` ${waveLine('Test ring', req.test)}.` : ''}`,
      );
    },
    async recordDecision(n: DecisionNotice) {
      await o.chat.recordDecision(n);
      await note(
        n.cycleId,
        `patchops: ${n.identity} ${n.decision === 'approve' ? 'approved' : 'rejected'} in ${n.channel}${n.reason ? `: ${n.reason}` : ''} (approvals ${n.outcome}).`,
      );
    },
    async stageUpdate(u: StageUpdate) {
      await o.chat.stageUpdate(u);
      await note(
        u.cycleId,
        `patchops [${u.stage}] ${u.text}${u.wave ? `\n${waveLine(u.wave.name || `Wave ${u.wave.index}`, u.wave)}` : ''}`,
      );
      if (o.waveTasks && u.wave && u.wave.index >= 1 && u.stage === 'DEPLOYING') await waveTask(u.cycleId, u.wave);
    },
    async pauseQuestion(q: PauseQuestion) {
      await o.chat.pauseQuestion(q);
      await note(
        q.cycleId,
        `patchops: deployment PAUSED: ${q.reason}${q.wave ? `\n${waveLine(q.wave.name || `Wave ${q.wave.index}`, q.wave)}` : ''}`,
      );
    },
    async summary(r: CycleReport) {
      await o.chat.summary(r);
      const waves = [...(r.status.test ? [r.status.test] : []), ...r.status.waves].map((w) =>
        waveLine(w.name || `Wave ${w.index}`, w),
      );
      const compliance =
        r.complianceBefore !== undefined && r.complianceAfter !== undefined
          ? `\nCompliance: ${r.complianceBefore}% → ${r.complianceAfter}%`
          : '';
      const failures = r.failures.length
        ? `\nFailures:\n${r.failures
            .slice(0, 50)
            .map((f) => `- ${f.hostname}${f.patchId ? ` ${f.patchId}` : ''}: ${f.reason}`)
            .join('\n')}`
        : '';
      await note(
        r.cycleId,
        `patchops: cycle ${r.outcome}.${r.status.outcome ? ` ${r.status.outcome}` : ''}\n${waves.join('\n')}${compliance}${failures}`,
      );
    },
  };
}

function waveLine(name: string, w: WaveStatus): string {
  return `${name}: ${w.succeeded}/${w.total} succeeded, ${w.failed} failed, ${w.unreachable} unreachable${w.pending ? `, ${w.pending} pending` : ''} (${w.state})`;
}
