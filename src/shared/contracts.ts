/**
 * Contracts between the composition root and the parts it wires: imports nothing of ours, so any folder may
 * depend on it without pulling in the server or the runtime.
 */
import type { FastifyInstance } from 'fastify';

/** A part of the product that mounts routes on the one HTTP server (Slack, Teams, agent gateway, webhooks, dashboard, API). */
export type RouteModule = (app: FastifyInstance) => Promise<void> | void;

export type DependencyStatus = 'up' | 'down' | 'off';

export interface DependencyState {
  status: DependencyStatus;
  detail?: string;
}

/** One dependency the server reports on at /healthz. `off` (not configured) does not make the server unhealthy. */
export interface HealthCheck {
  name: string;
  check(): Promise<DependencyState>;
}

/**
 * Inbound deliveries already taken, by the sender's delivery id (Slack event id, interaction, ServiceNow
 * notification): shared by every server process in production (PostgreSQL), so a retry that reaches another
 * server is still a retry.
 */
export interface DeliveryReceipts {
  /** Records `key` and returns true, unless it was recorded less than `ttlMs` ago (a duplicate: false). */
  claim(key: string, ttlMs: number): Promise<boolean>;
  /** Forgets `key`, so the sender's retry is taken (the first attempt failed before it was handled). */
  release(key: string): Promise<void>;
}

/**
 * Failed sign-ins per key (`ip:<address>`, `user:<name>`) with backoff (src/domain/login-backoff.ts): shared by
 * every server process in production (PostgreSQL), so a second server is no second set of guesses.
 */
export interface LoginThrottle {
  /** Milliseconds until an attempt for all of `keys` may be made; 0 when it may be made now. */
  retryAfterMs(keys: string[], now: number): Promise<number>;
  failure(keys: string[], now: number): Promise<void>;
  /** A success clears the user-name key only (a guesser cannot reset its address by signing in to its own account). */
  success(userKey: string): Promise<void>;
}
