/**
 * Endpoint groups (members, test ring, criticality, exposure, window) and maintenance windows (RRULE, zone,
 * duration, blackout dates): read by viewers, saved by name and deleted by admins. Every change is audited in src/db/groups.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  deleteGroup,
  deleteWindow,
  groupMemberIds,
  listGroups,
  listWindows,
  saveGroup,
  saveWindow,
} from '../../db/groups';
import { authorizeRequest } from '../auth';
import type { ApiDeps } from '../deps';
import { AUTH_ERRORS } from '../schemas';

const Name = z.object({
  name: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[\w.@:-]+$/, 'letters, digits and . _ - @ : only'),
});
const Exposure = z.enum(['internal', 'dmz', 'internet']);

const Group = z.object({
  id: z.number().int(),
  name: z.string(),
  description: z.string(),
  criticality: z.number().int().describe('1 (low) … 4 (critical)'),
  exposure: z.string(),
  isTestGroup: z.boolean().describe('the test ring: cycles deploy here first'),
  window: z.string().nullable().describe('its maintenance window'),
  members: z.number().int().describe('how many endpoints'),
});
const GroupBody = z.object({
  description: z.string().max(2000).optional(),
  criticality: z.number().int().min(1).max(4).optional(),
  exposure: Exposure.optional(),
  isTestGroup: z.boolean().optional(),
  window: z.string().min(1).max(200).nullable().optional().describe('a maintenance window by name; null for none'),
  members: z
    .array(z.string().min(1).max(300))
    .max(100_000)
    .optional()
    .describe('endpoint ids, host names or machine ids: the exact membership'),
});

const Window = z.object({
  id: z.number().int(),
  name: z.string(),
  rrule: z.string(),
  timezone: z.string(),
  durationMinutes: z.number().int(),
  blackoutDates: z.array(z.string()),
  groups: z.array(z.string()).describe('the groups that patch in it'),
});
const WindowBody = z.object({
  rrule: z.string().min(1).max(1000).describe('RFC 5545, e.g. FREQ=WEEKLY;BYDAY=SA;BYHOUR=22;BYMINUTE=0'),
  timezone: z.string().min(1).max(100).default('UTC').describe('IANA zone the rule is read in'),
  durationMinutes: z.number().int().min(1),
  blackoutDates: z
    .array(z.string())
    .max(1000)
    .default([])
    .describe('YYYY-MM-DD in the zone: no window opens on these dates'),
});

export function groupRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/groups',
    {
      schema: {
        summary: 'Endpoint groups',
        tags: ['groups'],
        response: { 200: z.object({ groups: z.array(Group) }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      await authorizeRequest(deps.db, req, 'viewer');
      return { groups: await listGroups(deps.db) };
    },
  );
  r.get(
    '/groups/:name/members',
    {
      schema: {
        summary: "A group's endpoint ids",
        tags: ['groups'],
        params: Name,
        response: { 200: z.object({ members: z.array(z.string()) }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      await authorizeRequest(deps.db, req, 'viewer');
      return { members: await groupMemberIds(deps.db, req.params.name) };
    },
  );
  r.put(
    '/groups/:name',
    {
      schema: {
        summary: 'Create a group or change what is given of it (admin)',
        tags: ['groups'],
        params: Name,
        body: GroupBody,
        response: { 200: Group, ...AUTH_ERRORS },
      },
    },
    async (req) => {
      const c = await authorizeRequest(deps.db, req, 'admin');
      return saveGroup(deps.db, { name: req.params.name, ...req.body }, c.identity);
    },
  );
  r.delete(
    '/groups/:name',
    {
      schema: {
        summary: 'Delete a group (admin); its endpoints stay enrolled',
        tags: ['groups'],
        params: Name,
        response: { 200: z.object({ deleted: z.string() }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      const c = await authorizeRequest(deps.db, req, 'admin');
      await deleteGroup(deps.db, req.params.name, c.identity);
      return { deleted: req.params.name };
    },
  );

  r.get(
    '/windows',
    {
      schema: {
        summary: 'Maintenance windows',
        tags: ['windows'],
        response: { 200: z.object({ windows: z.array(Window) }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      await authorizeRequest(deps.db, req, 'viewer');
      return { windows: await listWindows(deps.db) };
    },
  );
  r.put(
    '/windows/:name',
    {
      schema: {
        summary: 'Create a maintenance window or replace its definition (admin)',
        tags: ['windows'],
        params: Name,
        body: WindowBody,
        response: { 200: Window, ...AUTH_ERRORS },
      },
    },
    async (req) => {
      const c = await authorizeRequest(deps.db, req, 'admin');
      return saveWindow(deps.db, { name: req.params.name, ...req.body }, c.identity);
    },
  );
  r.delete(
    '/windows/:name',
    {
      schema: {
        summary: 'Delete a maintenance window (admin); its groups are left with none',
        tags: ['windows'],
        params: Name,
        response: { 200: z.object({ deleted: z.string() }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      const c = await authorizeRequest(deps.db, req, 'admin');
      await deleteWindow(deps.db, req.params.name, c.identity);
      return { deleted: req.params.name };
    },
  );
}
