/** Sending a dashboard page with its security headers, and the error page. */
import type { FastifyReply } from 'fastify';
import { html, layout, type PageUser } from './html';

export function sendPage(reply: FastifyReply, page: string, code = 200): FastifyReply {
  return reply
    .code(code)
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('x-frame-options', 'DENY')
    .header(
      'content-security-policy',
      "default-src 'self'; style-src 'self'; img-src 'self' data:; script-src 'self'; form-action 'self'; frame-ancestors 'none'",
    )
    .send(page);
}

export function errorPage(user: PageUser | null, title: string, text: string): string {
  return layout({
    title,
    user,
    flash: { kind: 'error', text },
    body: html`<p><a href="/">Back to the overview</a></p>`,
  });
}
