import { describe, expect, it } from 'vitest';
import { FakeChangeDesk, RecordingChatNotifier } from '../../../test/helpers/ports';
import { CycleStage, type CycleStatus } from '../../domain/cycle';
import { withChangeWorkNotes } from './work-notes';

const wave = {
  index: 1,
  name: 'pilot',
  state: 'done' as const,
  total: 4,
  succeeded: 3,
  failed: 1,
  unreachable: 0,
  pending: 0,
};

function setup(changes: Record<string, string>, failNotes = false) {
  const chat = new RecordingChatNotifier();
  const desk = new FakeChangeDesk();
  if (failNotes)
    desk.addWorkNote = async () => {
      throw new Error('ServiceNow down');
    };
  const lookups: string[] = [];
  const notifier = withChangeWorkNotes({
    chat,
    desk,
    changeNumberOf: async (id) => {
      lookups.push(id);
      return changes[id] ?? null;
    },
  });
  return { chat, desk, notifier, lookups };
}

describe('withChangeWorkNotes', () => {
  it('posts to chat and mirrors stage, wave and pause messages as work notes', async () => {
    const { chat, desk, notifier, lookups } = setup({ c1: 'CHG0000001' });
    await notifier.stageUpdate({ cycleId: 'c1', stage: CycleStage.DEPLOYING, text: 'wave 1 of 2 (pilot) done', wave });
    await notifier.pauseQuestion({ cycleId: 'c1', reason: 'wave pilot reached its failure threshold', wave });
    expect(chat.stages).toHaveLength(1);
    expect(chat.pauses).toHaveLength(1);
    expect(desk.notes).toEqual([
      'patchops [DEPLOYING] wave 1 of 2 (pilot) done\npilot: 3/4 succeeded, 1 failed, 0 unreachable (done)',
      'patchops: deployment PAUSED: wave pilot reached its failure threshold\npilot: 3/4 succeeded, 1 failed, 0 unreachable (done)',
    ]);
    expect(lookups).toEqual(['c1']); // cached once known
  });

  it('writes nothing for a cycle without a change, and keeps chat working when ServiceNow fails', async () => {
    const none = setup({});
    await none.notifier.stageUpdate({ cycleId: 'c2', stage: CycleStage.TEST, text: 'test ring' });
    expect(none.desk.notes).toEqual([]);
    expect(none.chat.stages).toHaveLength(1);

    const down = setup({ c3: 'CHG0000003' }, true);
    await expect(
      down.notifier.stageUpdate({ cycleId: 'c3', stage: CycleStage.TEST, text: 'x' }),
    ).resolves.toBeUndefined();
    expect(down.chat.stages).toHaveLength(1);
  });

  it('notes decisions and the final summary with failures', async () => {
    const { desk, notifier } = setup({ c4: 'CHG0000004' });
    await notifier.recordDecision({
      cycleId: 'c4',
      identity: 'slack:U2',
      channel: 'slack',
      decision: 'reject',
      reason: 'freeze',
      outcome: 'rejected',
      at: 'now',
    });
    await notifier.summary({
      cycleId: 'c4',
      policyName: 'p',
      outcome: CycleStage.COMPLETED,
      status: { waves: [wave], reasons: [], outcome: '3 endpoint(s) patched, 1 failed' } as unknown as CycleStatus,
      complianceBefore: 50,
      complianceAfter: 75,
      failures: [{ endpointId: 'e', hostname: 'web-3', patchId: 'KB1', reason: 'exit 1603' }],
      startedAt: 'a',
      finishedAt: 'b',
    });
    expect(desk.notes[0]).toBe('patchops: slack:U2 rejected in slack: freeze (approvals rejected).');
    expect(desk.notes[1]).toContain('cycle COMPLETED. 3 endpoint(s) patched, 1 failed');
    expect(desk.notes[1]).toContain('Compliance: 50% → 75%');
    expect(desk.notes[1]).toContain('- web-3 KB1: exit 1603');
  });

  it('records each finished wave as a change task when asked', async () => {
    const chat = new RecordingChatNotifier();
    const desk = new FakeChangeDesk();
    const tasks: string[] = [];
    const notifier = withChangeWorkNotes({
      chat,
      desk,
      changeNumberOf: async () => 'CHG0000005',
      waveTasks: {
        openWaveTask: async (n, t) => {
          tasks.push(`open ${n} ${t.wave} ${t.name}`);
          return 'CTASK1';
        },
        closeWaveTask: async (n, w, ok, notes) => {
          tasks.push(`close ${n} ${w} ${ok} ${notes}`);
        },
      },
    });
    await notifier.stageUpdate({ cycleId: 'c5', stage: CycleStage.DEPLOYING, text: 'wave 1 done', wave });
    await notifier.stageUpdate({
      cycleId: 'c5',
      stage: CycleStage.DEPLOYING,
      text: 'wave 2 done',
      wave: { ...wave, index: 2, name: 'broad', failed: 0 },
    });
    await notifier.stageUpdate({ cycleId: 'c5', stage: CycleStage.VERIFYING, text: 'verifying' });
    expect(tasks).toEqual([
      'open CHG0000005 1 pilot',
      'close CHG0000005 1 false pilot: 3/4 succeeded, 1 failed, 0 unreachable (done)',
      'open CHG0000005 2 broad',
      'close CHG0000005 2 true broad: 3/4 succeeded, 0 failed, 0 unreachable (done)',
    ]);
  });
});
