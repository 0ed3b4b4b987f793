/**
 * Sessions for the dashboard's pages: cookies, and the one pre-handler that guards every page and form.
 * A page (GET) needs a signed-in web user, else it redirects to /login. A form (POST) needs, in this order,
 * a same-origin request, a live session, the session's CSRF token in the form, and at least the role the
 * action names. The handler behind the guard reads what it checked with `sessionOf(req)` / `formOf(req)`.
 */
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import type { Db } from '../../db/client';
import type { Role } from '../../db/identities';
import { ErrorCode } from '../../domain/errors';
import { HttpError, httpStatusOf } from '../errors';
import { roleAtLeast, sessionFor, type WebSession } from './auth';
import { qs, type PageUser } from './html';
import { errorPage, sendPage } from './respond';

export const SESSION_COOKIE = 'patchops_session';
export const LOGIN_CSRF_COOKIE = 'patchops_login_csrf';

export type Form = Record<string, string>;

/**
 * One of our cookies, decoded; undefined when absent. A cookie that is not valid percent-encoding is a 400
 * that also clears it, so a browser holding a damaged cookie recovers by signing in again.
 */
export function cookieOf(req: FastifyRequest, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i <= 0 || part.slice(0, i).trim() !== name) continue;
    try {
      return decodeURIComponent(part.slice(i + 1).trim());
    } catch {
      throw new HttpError(
        ErrorCode.InvalidInput,
        `The ${name} cookie is malformed; it has been cleared: sign in again.`,
        {
          'set-cookie': `${name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`,
        },
      );
    }
  }
  return undefined;
}

/** A urlencoded form body (the dashboard's parser keeps it a string). */
export function formBody(req: FastifyRequest): Form {
  const out: Form = {};
  for (const [k, v] of new URLSearchParams(typeof req.body === 'string' ? req.body : '')) out[k] = v;
  return out;
}

/** True when the Origin (or Referer) names this host; a request with neither is a same-origin form post. */
export function sameOrigin(req: FastifyRequest): boolean {
  const origin = req.headers.origin ?? req.headers.referer;
  if (!origin || origin === 'null') return origin !== 'null';
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

export const pageUser = (s: WebSession): PageUser => ({ username: s.username, role: s.role, csrfToken: s.csrfToken });

const checked = new WeakMap<FastifyRequest, { session: WebSession; form: Form }>();

/** The session the guard found (only inside a handler behind `guard.page` or `guard.action`). */
export function sessionOf(req: FastifyRequest): WebSession {
  const c = checked.get(req);
  if (!c)
    throw new Error(
      `${req.method} ${req.url} has no session guard: register it with { preHandler: guard.page } or guard.action(...)`,
    );
  return c.session;
}

/** The posted form the guard parsed (empty for a GET). */
export const formOf = (req: FastifyRequest): Form => checked.get(req)?.form ?? {};

export interface SessionGuard {
  /** For pages: a session, else a redirect to the login page that comes back here. */
  page: preHandlerAsyncHookHandler;
  /** For forms: same origin, a session, a matching CSRF token and at least `needed` (`what` names the action in the refusal). */
  action(needed: Role, what: string): preHandlerAsyncHookHandler;
  /** A Set-Cookie value for one of our cookies (HttpOnly, SameSite=Lax, Secure when configured). */
  cookie(name: string, value: string, maxAgeS: number): string;
  /** The live session behind the request's cookie, or null. */
  current(req: FastifyRequest): Promise<WebSession | null>;
}

export function createSessionGuard(o: { db: Db; now: () => Date; secureCookies?: boolean }): SessionGuard {
  const secure = o.secureCookies ? '; Secure' : '';
  const current = (req: FastifyRequest) => sessionFor(o.db, cookieOf(req, SESSION_COOKIE), o.now());
  const refuse = (reply: FastifyReply, code: ErrorCode, user: PageUser | null, title: string, text: string) =>
    sendPage(reply, errorPage(user, title, text), httpStatusOf(code));

  return {
    current,
    cookie: (name, value, maxAgeS) =>
      `${name}=${encodeURIComponent(value)}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAgeS}${secure}`,

    async page(req, reply) {
      const session = await current(req);
      if (!session) return reply.redirect(`/login${qs({ next: req.url })}`, 303);
      checked.set(req, { session, form: {} });
    },

    action(needed, what) {
      return async (req, reply) => {
        const form = formBody(req);
        if (!sameOrigin(req))
          return refuse(
            reply,
            ErrorCode.Forbidden,
            null,
            'Cross-site request refused',
            'This form was posted from another site. Open the dashboard and try again.',
          );
        const session = await current(req);
        if (!session)
          return refuse(
            reply,
            ErrorCode.Unauthorized,
            null,
            'Sign-in needed',
            'Your session has ended. Sign in again, then repeat the action.',
          );
        const user = pageUser(session);
        if (!form._csrf || form._csrf !== session.csrfToken) {
          return refuse(
            reply,
            ErrorCode.Forbidden,
            user,
            'Form expired',
            "The form's security token did not match your session (it was opened in an older session, or sent from elsewhere). Reload the page and try again.",
          );
        }
        if (!roleAtLeast(session.role, needed)) {
          return refuse(
            reply,
            ErrorCode.Forbidden,
            user,
            'Not allowed',
            `You are signed in as ${session.username} with the ${session.role} role; to ${what} you need the ${needed} role. Ask an admin (\`patchops users add <name> --role ${needed}\`).`,
          );
        }
        checked.set(req, { session, form });
      };
    },
  };
}

/**
 * Where to go after signing in: a path on this server only. Browsers read `/\evil.example` as
 * `//evil.example` and drop tabs and newlines, so a backslash or control character anywhere, or a second
 * leading slash, sends the user to the overview instead.
 */
const hasControlOrBackslash = (s: string) =>
  [...s].some((c) => c === '\\' || c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);

export function safeNext(next: string | undefined): string {
  if (!next || next.length > 2000 || !next.startsWith('/') || /^\/[/\\]/.test(next) || hasControlOrBackslash(next))
    return '/';
  let url: URL;
  try {
    url = new URL(next, 'http://patchops.invalid');
  } catch {
    return '/';
  }
  if (url.origin !== 'http://patchops.invalid' || url.pathname.startsWith('/login')) return '/';
  return `${url.pathname}${url.search}${url.hash}`;
}
