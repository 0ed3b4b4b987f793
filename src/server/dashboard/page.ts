/**
 * What every dashboard page shares: the context it is built from, flash messages, the redirect after a
 * form and the text of a failed action (sending a page and the error page: ./respond.ts).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Db } from '../../db/client';
import { ErrorCode } from '../../domain/errors';
import type { Logger } from '../../logging';
import type { CycleService } from '../../services/cycle-service';
import { HttpErrorCode, toHttpError } from '../errors';
import { qs } from './html';
import type { SessionGuard } from './session';

/** What a page plugin is registered with (its Fastify options). */
export interface DashboardContext {
  db: Db;
  log: Logger;
  now: () => Date;
  guard: SessionGuard;
  /** Absent: actions are shown as unavailable. */
  cycles?: CycleService;
  /** The Temporal UI page of a workflow, or null when no UI URL is configured. */
  workflowUrl(workflowId: string): string | null;
  /** The URL agents use to reach this server, for the enrolment command on the first-run page. */
  publicUrl?: string;
  /** The server was started with AGENT_ENROLL_SECRET (the first-run page says so; the value is never shown). */
  envEnrollSecret?: boolean;
}

export const NO_CYCLE_SERVICE = 'Actions are unavailable: this server runs without the cycle service.';

/** The ?ok= or ?error= message a redirect after a form carries. */
export function flashOf(req: FastifyRequest): { kind: 'ok' | 'error'; text: string } | null {
  const q = req.query as Record<string, string | undefined>;
  if (q.ok) return { kind: 'ok', text: q.ok.slice(0, 300) };
  if (q.error) return { kind: 'error', text: q.error.slice(0, 300) };
  return null;
}

/** Post/redirect/get: back to `to` with a message. */
export const back = (reply: FastifyReply, to: string, msg: { ok?: string; error?: string }) =>
  reply.redirect(`${to}${qs(msg)}`, 303);

/**
 * The text a failed action shows, through the server's one error mapping: a coded error's own message
 * (written for users, even when the fault is a dependency's); anything else is logged and shown as a generic failure.
 */
export function actionError(log: Logger, e: unknown): string {
  const r = toHttpError(e);
  if (r.internal) log.error({ err: e }, 'dashboard action failed');
  if (r.body.error === HttpErrorCode.Internal) return 'The action failed unexpectedly; the server log has the details.';
  return r.body.error === ErrorCode.ApprovalRefused ? `Approval refused: ${r.body.message}` : r.body.message;
}

/** A form field as trimmed text ('' when absent). */
export const str = (v: unknown) => (typeof v === 'string' ? v.trim() : '');
