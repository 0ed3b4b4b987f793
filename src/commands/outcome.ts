/**
 * What a command gives back: typed data per verb for renderers (Slack blocks, Teams cards, JSON), the words
 * a person reads, or a refusal with its stable code. One shape for every front-end.
 */
import type { ComplianceSummary } from '../db/read-model/compliance';
import type { ExceptionDto } from '../db/cycles';
import type { Role, RoleGrant } from '../db/identities';
import type { PersonDto } from '../db/people';
import type { ApprovalResult, CycleScope, CycleStatus } from '../domain/cycle';
import type { ErrorCode } from '../domain/errors';
import type { CycleListItem } from '../services/cycle-service';
import type { Verb } from './grammar';

export type CommandOutcome<T> = { ok: true; data: T; text: string } | { ok: false; code: ErrorCode; message: string };

export interface EndpointMatch {
  id: string;
  hostname: string;
  osFamily: string;
  status: string;
}

/** The data each verb returns (without its `verb` tag; see CommandData). */
export interface VerbData {
  help: { topic?: string; usage: string };
  /** `status` is null when there is no cycle yet. */
  status: { status: CycleStatus | null };
  cycles: { cycles: CycleListItem[] };
  scan: { scope: CycleScope; workflowId: string };
  start: { cycleId: string; workflowId: string; policy: string; scope: CycleScope; emergency: boolean };
  approve: { cycleId: string; result: ApprovalResult };
  reject: { cycleId: string; reason: string; result: ApprovalResult };
  pause: { cycleId: string; reason?: string };
  resume: { cycleId: string };
  cancel: { cycleId: string; reason?: string };
  rollback: { cycleId: string; endpointId?: string };
  /** `scope` is the scope the numbers are for ({} = the whole fleet). */
  report: { scope: CycleScope; summary: ComplianceSummary };
  endpoints: { query: string; endpoints: EndpointMatch[] };
  exceptions:
    | { action: 'list'; exceptions: ExceptionDto[] }
    | { action: 'add'; exception: ExceptionDto }
    | { action: 'remove'; code: string };
  roles:
    | { action: 'list'; identity: string; grants: RoleGrant[] }
    | { action: 'grant'; identity: string; role: Role; groupName: string }
    | { action: 'revoke'; identity: string; role: Role; groupName: string; removed: boolean };
  /** `changed` false: the identity was linked to this person already. `person` of unlink: null when it was linked to nobody. */
  people:
    | { action: 'list'; people: PersonDto[] }
    | { action: 'link'; person: string; identity: string; email?: string; changed: boolean }
    | { action: 'unlink'; identity: string; person: string | null };
}

/** A verb's data tagged with the verb: a union renderers switch on (`data.verb`). */
export type DataOf<V extends Verb> = VerbData[V] extends infer D
  ? D extends unknown
    ? { verb: V } & D
    : never
  : never;
export type CommandData = { [V in Verb]: DataOf<V> }[Verb];

/** The outcome of any verb. */
export type AnyCommandOutcome = CommandOutcome<CommandData>;
