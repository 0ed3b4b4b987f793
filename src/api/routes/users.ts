/**
 * The dashboard's web users (admin): GET /users, POST /users {username, password, role}, DELETE /users/:username.
 * `patchops users list|add|remove` call them with the login token; each change is audited as the token's person
 * (server/dashboard/auth.ts). Only the very first admin is made without a server (`patchops up`, or `users add`
 * before anyone exists).
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Role } from '../../db/identities';
import { CodedError, ErrorCode } from '../../domain/errors';
import { addWebUser, listWebUsers, removeWebUser } from '../../server/dashboard/auth';
import { authorizeRequest } from '../auth';
import type { ApiDeps } from '../deps';
import { AUTH_ERRORS, RoleName } from '../schemas';

const tags = ['users'];
const Username = z.string().min(1).max(63).describe('lower-case letters, digits, dot, dash or underscore');
const WebUser = z.object({
  username: z.string(),
  roles: z.array(RoleName),
  createdAt: z.string(),
  lastLoginAt: z.string().nullable(),
});

export function userRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/users',
    {
      schema: {
        summary: 'The web users of the dashboard and their roles',
        tags,
        response: { 200: z.object({ users: z.array(WebUser) }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      await authorizeRequest(deps.db, req, 'admin');
      return { users: await listWebUsers(deps.db) };
    },
  );

  r.post(
    '/users',
    {
      schema: {
        summary: 'Add a web user with a role (an admin is also an approver)',
        tags,
        body: z.object({
          username: Username,
          password: z.string().min(10).max(1000).describe('at least 10 characters'),
          role: RoleName,
        }),
        response: { 200: z.object({ username: z.string(), identity: z.string(), role: RoleName }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      const c = await authorizeRequest(deps.db, req, 'admin');
      const { username, password, role } = req.body;
      await addWebUser(deps.db, { username, password, role: role as Role, by: c.identity });
      return { username, identity: `web:${username}`, role };
    },
  );

  r.delete(
    '/users/:username',
    {
      schema: {
        summary: 'Remove a web user, their sessions and roles',
        tags,
        params: z.object({ username: Username }),
        response: { 200: z.object({ username: z.string() }), ...AUTH_ERRORS },
      },
    },
    async (req) => {
      const c = await authorizeRequest(deps.db, req, 'admin');
      const { username } = req.params;
      if (!(await removeWebUser(deps.db, username, c.identity)))
        throw new CodedError(ErrorCode.NotFound, `there is no web user "${username}" (see \`patchops users list\`)`);
      return { username };
    },
  );
}
