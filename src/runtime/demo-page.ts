/**
 * The demo's local page: the Slack and Teams approval cards as the fakes received them, with buttons whose
 * clicks go through the real Slack and Teams request paths (the demo signs and sends them), and a web view
 * of the e-mails the SMTP sink received. Loopback only; lives as long as the demo.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { escapeHtml as esc } from '../shared/html-escape';

export interface DemoPageSource {
  /** The approval cards' texts, once posted. */
  cards(): { slack: string[]; teams: string[] };
  click(platform: 'slack' | 'teams'): Promise<string>;
  mails(): Array<{ to: string[]; subject: string; html: string | undefined; text: string | undefined }>;
}

export interface DemoPage {
  url: string;
  close(): Promise<void>;
}

/** Every `text` string in a Slack Block Kit or Adaptive Card document, in order. */
export function textsOf(doc: unknown, out: string[] = []): string[] {
  if (Array.isArray(doc)) for (const d of doc) textsOf(d, out);
  else if (doc && typeof doc === 'object') {
    for (const [k, v] of Object.entries(doc)) {
      if (k === 'text' && typeof v === 'string') out.push(v);
      else textsOf(v, out);
    }
  }
  return out;
}

function layout(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
.card{border:1px solid #ccc;border-radius:8px;padding:1rem;margin:1rem 0}.card p{margin:.3rem 0;white-space:pre-wrap}
button{font-size:1rem;padding:.4rem 1rem}iframe{width:100%;height:40rem;border:1px solid #ccc}</style></head>
<body><p><a href="/">Approval cards</a> · <a href="/mail">E-mail received</a></p>${body}</body></html>`;
}

export async function startDemoPage(src: DemoPageSource): Promise<DemoPage> {
  let notice = '';
  const server: Server = createServer((req, res) => {
    const send = (status: number, html: string, type = 'text/html; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type });
      res.end(html);
    };
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method === 'POST' && (url.pathname === '/click/slack' || url.pathname === '/click/teams')) {
      const platform = url.pathname.endsWith('slack') ? 'slack' : 'teams';
      src
        .click(platform)
        .then((m) => (notice = m))
        .catch((e: unknown) => (notice = `The ${platform} click failed: ${e instanceof Error ? e.message : String(e)}`))
        .finally(() => {
          res.writeHead(303, { location: '/' });
          res.end();
        });
      return;
    }
    if (req.method === 'GET' && url.pathname === '/') {
      const cards = src.cards();
      const card = (name: string, platform: string, texts: string[]) =>
        `<div class="card"><h2>${name}</h2>${texts.length ? texts.map((t) => `<p>${esc(t)}</p>`).join('') : '<p><em>not posted yet: reload in a moment</em></p>'}
<form method="post" action="/click/${platform}"><button ${texts.length ? '' : 'disabled'}>Approve (${name})</button></form></div>`;
      return send(
        200,
        layout(
          'patchops demo: approval cards',
          `<h1>Approval cards</h1>${notice ? `<p><strong>${esc(notice)}</strong></p>` : ''}
<p>A click here is sent to patchops exactly as the service would send it: Slack's signed interactivity request, Teams' Action.Execute invoke.</p>
${card('Slack', 'slack', cards.slack)}${card('Teams', 'teams', cards.teams)}`,
        ),
      );
    }
    if (req.method === 'GET' && url.pathname === '/mail') {
      const mails = src.mails();
      return send(
        200,
        layout(
          'patchops demo: e-mail received',
          `<h1>E-mail received by the local SMTP server</h1>${mails.length ? '' : '<p>None yet.</p>'}${mails
            .map(
              (m, i) =>
                `<div class="card"><p><strong>${esc(m.subject)}</strong> to ${esc(m.to.join(', '))}</p><p><a href="/mail/${i}">open</a></p></div>`,
            )
            .join('')}`,
        ),
      );
    }
    const one = /^\/mail\/(\d+)$/.exec(url.pathname);
    if (req.method === 'GET' && one) {
      const m = src.mails()[Number(one[1])];
      if (!m) return send(404, layout('not found', '<p>No such e-mail.</p>'));
      // The report's own HTML, sandboxed: no scripts, no same-origin access.
      if (m.html) {
        res.setHeader('content-security-policy', 'sandbox');
        return send(200, m.html);
      }
      return send(200, m.text ?? '', 'text/plain; charset=utf-8');
    }
    send(404, layout('not found', '<p>Not found.</p>'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
