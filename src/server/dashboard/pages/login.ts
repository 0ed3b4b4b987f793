/** Sign in and sign out. The sign-in form has its own CSRF cookie (there is no session yet) and a failed-attempt throttle. */
import type { FastifyPluginAsync } from 'fastify';
import { HttpErrorCode, httpStatusOf } from '../../errors';
import { isValidUsername, login, logout } from '../auth';
import { html, layout } from '../html';
import type { LoginThrottle } from '../../../shared/contracts';
import { back, str, type DashboardContext } from '../page';
import { errorPage, sendPage } from '../respond';
import { cookieOf, formBody, LOGIN_CSRF_COOKIE, safeNext, sameOrigin, SESSION_COOKIE } from '../session';

export interface LoginPageOptions extends DashboardContext {
  sessionTtlMs: number;
  throttle: LoginThrottle;
}

export const loginPage: FastifyPluginAsync<LoginPageOptions> = async (app, o) => {
  const { guard, now, log } = o;

  app.get('/login', async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    if (await guard.current(req)) return reply.redirect(safeNext(q.next), 303);
    const token = cookieOf(req, LOGIN_CSRF_COOKIE) ?? randomToken();
    reply.header('set-cookie', guard.cookie(LOGIN_CSRF_COOKIE, token, 3600));
    return sendPage(
      reply,
      layout({
        title: 'Sign in',
        user: null,
        flash: q.error ? { kind: 'error', text: q.error.slice(0, 200) } : null,
        body: html`<form class="stack" method="post" action="/login" data-testid="login-form">
<input type="hidden" name="_csrf" value="${token}"><input type="hidden" name="next" value="${safeNext(q.next)}">
<label>User name <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>
<p class="muted">Accounts are made with <code>patchops users add &lt;name&gt; --role admin|approver|viewer</code>.</p>`,
      }),
    );
  });

  app.post('/login', async (req, reply) => {
    const form = formBody(req);
    const expected = cookieOf(req, LOGIN_CSRF_COOKIE);
    if (!sameOrigin(req) || !expected || form._csrf !== expected) {
      return sendPage(
        reply,
        errorPage(null, 'Form expired', 'The sign-in form expired or came from another site. Open /login again.'),
        403,
      );
    }
    const username = str(form.username);
    const next = form.next ? { next: safeNext(form.next) } : {};
    // req.ip is the socket address unless TRUST_PROXY names the proxy in front; the name key only for a valid name.
    const keys = isValidUsername(username) ? [`ip:${req.ip}`, `user:${username}`] : [`ip:${req.ip}`];
    const wait = await o.throttle.retryAfterMs(keys, now().getTime());
    if (wait > 0) {
      log.warn({ ip: req.ip, username: username.slice(0, 64) }, 'sign-in refused: too many failed attempts');
      reply.header('retry-after', String(Math.ceil(wait / 1000)));
      const text = `Too many failed sign-ins for this user name or from this address: wait ${Math.ceil(wait / 1000)} seconds, then try again.`;
      return sendPage(reply, errorPage(null, 'Too many attempts', text), httpStatusOf(HttpErrorCode.RateLimited));
    }
    if (!isValidUsername(username)) {
      await o.throttle.failure(keys, now().getTime());
      return back(reply, '/login', {
        error: 'That is not a user name: user names are 1-63 lower-case letters, digits, dot, dash or underscore.',
        ...next,
      });
    }
    const result = await login(o.db, {
      username,
      password: (form.password ?? '').slice(0, 1024),
      ttlMs: o.sessionTtlMs,
      now: now(),
      from: req.ip,
    });
    if (!result) {
      await o.throttle.failure(keys, now().getTime());
      return back(reply, '/login', { error: 'Wrong user name or password (or the account has no role).', ...next });
    }
    await o.throttle.success(`user:${username}`);
    reply.header('set-cookie', [
      guard.cookie(SESSION_COOKIE, result.token, Math.floor(o.sessionTtlMs / 1000)),
      guard.cookie(LOGIN_CSRF_COOKIE, '', 0),
    ]);
    return reply.redirect(safeNext(form.next), 303);
  });

  // Signing out never fails: the session ends only with its own CSRF token, the cookie is cleared either way.
  app.post('/logout', async (req, reply) => {
    const token = cookieOf(req, SESSION_COOKIE);
    const s = await guard.current(req);
    if (s && token && formBody(req)._csrf === s.csrfToken) await logout(o.db, token);
    reply.header('set-cookie', guard.cookie(SESSION_COOKIE, '', 0));
    return reply.redirect('/login', 303);
  });
};

function randomToken(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString('base64url');
}
