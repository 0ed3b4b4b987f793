/**
 * Personal access tokens on the dashboard: every signed-in user lists their own tokens, makes one (a scope no
 * higher than their role, an expiry in days) and revokes their own. The token text is shown once, in the page that
 * answers the form (never in a redirect URL, never stored); `patchops login --server URL --token pat_…` uses it.
 * Making and revoking are audited by db/api-tokens.ts.
 */
import type { FastifyPluginAsync } from 'fastify';
import {
  createApiToken,
  DEFAULT_TOKEN_DAYS,
  listApiTokens,
  MAX_TOKEN_DAYS,
  revokeApiToken,
  scopesFor,
  type ApiTokenSummary,
  type TokenScope,
} from '../../../db/api-tokens';
import { CodedError, ErrorCode } from '../../../domain/errors';
import { badge, cell, csrfField, html, layout, table, when, type Html, type PageUser } from '../html';
import { actionError, back, flashOf, str, type DashboardContext } from '../page';
import { sendPage } from '../respond';
import { formOf, pageUser, sessionOf } from '../session';
import type { WebSession } from '../auth';

function stateOf(t: ApiTokenSummary, now: Date): Html {
  if (t.revokedAt) return badge('revoked', 'failed');
  if (Date.parse(t.expiresAt) <= now.getTime()) return badge('expired', 'failed');
  return badge('live');
}

function tokensBody(
  u: PageUser,
  s: WebSession,
  tokens: ApiTokenSummary[],
  now: Date,
  made?: { token: string; summary: ApiTokenSummary },
): Html {
  const scopes = scopesFor(s.role);
  return html`${
    made
      ? html`<section class="made" data-testid="token-made"><h2>Your new token "${made.summary.name}"</h2>
<p>Copy it now: it is shown this once and cannot be shown again.</p>
<pre data-testid="token-text">${made.token}</pre>
<p>Use it with <code>patchops login --server URL --token &lt;token&gt;</code>, or as <code>Authorization: Bearer &lt;token&gt;</code> against <code>/api/v1</code>.</p></section>`
      : ''
  }
<h2>Make a token</h2>
<form class="stack" method="post" action="/tokens" data-testid="token-form">${csrfField(u)}
<label>Name <input name="name" required maxlength="100" placeholder="laptop CLI"></label>
<label>Scope <select name="scope">${scopes.map((sc) => html`<option value="${sc}">${sc}</option>`)}</select></label>
<label>Expires in (days) <input name="expiresInDays" type="number" min="1" max="${String(MAX_TOKEN_DAYS)}" value="${String(DEFAULT_TOKEN_DAYS)}" required></label>
<button type="submit">Make token</button></form>
<p class="muted">A token acts with the lower of your role (${s.role}) and its scope: read = viewer, approve = approver, admin = admin.</p>
<h2>Your tokens</h2>
${table(
  ['name', 'scope', 'created', 'expires', 'last used', 'state', ''],
  tokens.map((t) => [
    cell(t.name),
    cell(t.scope),
    when(t.createdAt),
    when(t.expiresAt),
    when(t.lastUsedAt),
    stateOf(t, now),
    t.revokedAt
      ? when(t.revokedAt)
      : html`<form method="post" action="/tokens/${encodeURIComponent(t.id)}/revoke" class="inline" data-confirm="Revoke ${t.name}? Anything using it stops working.">${csrfField(u)}<button type="submit">Revoke</button></form>`,
  ]),
  { testid: 'tokens', empty: 'You have no tokens.' },
)}`;
}

/** The form's expiry as whole days in 1..MAX_TOKEN_DAYS, or a refusal a person can act on. */
function daysOf(raw: string): number {
  const days = /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(days) || days < 1 || days > MAX_TOKEN_DAYS)
    throw new CodedError(
      ErrorCode.InvalidInput,
      `The expiry must be a whole number of days from 1 to ${MAX_TOKEN_DAYS}.`,
    );
  return days;
}

export const tokensPage: FastifyPluginAsync<DashboardContext> = async (app, o) => {
  const page = async (
    s: WebSession,
    flash: { kind: 'ok' | 'error'; text: string } | null,
    made?: { token: string; summary: ApiTokenSummary },
  ) => {
    const u = pageUser(s);
    const tokens = await listApiTokens(o.db, s.identity);
    return layout({
      title: 'API tokens',
      user: u,
      active: '/tokens',
      flash,
      body: tokensBody(u, s, tokens, o.now(), made),
    });
  };

  app.get('/tokens', { preHandler: o.guard.page }, async (req, reply) =>
    sendPage(reply, await page(sessionOf(req), flashOf(req))),
  );

  app.post('/tokens', { preHandler: o.guard.action('viewer', 'make an API token') }, async (req, reply) => {
    const s = sessionOf(req);
    const f = formOf(req);
    try {
      const scope = str(f.scope) as TokenScope;
      if (!scopesFor(s.role).includes(scope)) {
        throw new CodedError(
          ErrorCode.Forbidden,
          `You hold the ${s.role} role: a token of yours may have the scope ${scopesFor(s.role).join(' or ')}, not "${str(f.scope).slice(0, 20)}".`,
        );
      }
      const made = await createApiToken(o.db, {
        owner: s.identity,
        name: str(f.name),
        scope,
        expiresInDays: daysOf(str(f.expiresInDays)),
        by: s.identity,
        now: o.now(),
      });
      // The answer itself carries the token (no redirect: it must not land in a URL or a history entry); no-store.
      return sendPage(reply, await page(s, { kind: 'ok', text: `Token ${made.summary.name} made.` }, made));
    } catch (e) {
      return back(reply, '/tokens', { error: actionError(o.log, e) });
    }
  });

  app.post(
    '/tokens/:id/revoke',
    { preHandler: o.guard.action('viewer', 'revoke an API token') },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const s = sessionOf(req);
      try {
        // Only your own: revokeApiToken refuses (NOT_FOUND) a token of another owner.
        const t = await revokeApiToken(o.db, id, { owner: s.identity, by: s.identity, now: o.now() });
        return back(reply, '/tokens', { ok: `Token ${t.name} revoked.` });
      } catch (e) {
        return back(reply, '/tokens', { error: actionError(o.log, e) });
      }
    },
  );
};
