/** Test doubles of the cycle's ports (used only in tests): they record every call. */
import type { ChangeRequestStateEvent } from '../../src/domain/cycle';
import type {
  ApprovalRequest,
  ChangeDesk,
  ChangeRef,
  ChangeRequestInput,
  ChatNotifier,
  CloseCode,
  CycleReport,
  DecisionNotice,
  PauseQuestion,
  StageUpdate,
} from '../../src/domain/ports';

export class RecordingChatNotifier implements ChatNotifier {
  approvals: ApprovalRequest[] = [];
  decisions: DecisionNotice[] = [];
  stages: StageUpdate[] = [];
  pauses: PauseQuestion[] = [];
  summaries: CycleReport[] = [];
  async requestApproval(req: ApprovalRequest) {
    this.approvals.push(req);
  }
  async recordDecision(n: DecisionNotice) {
    this.decisions.push(n);
  }
  async stageUpdate(u: StageUpdate) {
    this.stages.push(u);
  }
  async pauseQuestion(q: PauseQuestion) {
    this.pauses.push(q);
  }
  async summary(r: CycleReport) {
    this.summaries.push(r);
  }
}

export class FakeChangeDesk implements ChangeDesk {
  opened: ChangeRequestInput[] = [];
  notes: string[] = [];
  closed: Array<{ number: string; closeCode: CloseCode; notes: string }> = [];
  state: ChangeRequestStateEvent | null = null;
  async open(input: ChangeRequestInput): Promise<ChangeRef> {
    const existing = this.opened.findIndex((o) => o.cycleId === input.cycleId);
    if (existing < 0) this.opened.push(input);
    const number = `CHG${String(1000 + (existing < 0 ? this.opened.length - 1 : existing))}`;
    this.state ??= { changeNumber: number, state: 'assess', approval: 'requested' };
    return { number, sysId: `sys-${number}`, state: 'assess', url: `https://sn.example.test/${number}` };
  }
  async get(): Promise<ChangeRequestStateEvent | null> {
    return this.state;
  }
  async addWorkNote(_n: string, note: string) {
    this.notes.push(note);
  }
  async close(number: string, closeCode: CloseCode, notes: string) {
    this.closed.push({ number, closeCode, notes });
  }
}
