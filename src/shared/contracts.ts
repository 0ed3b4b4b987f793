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
