/**
 * Server-rendered HTML: tagged templates that escape every interpolated value unless it is already
 * `Html` (trusted markup built by these helpers). No build step, no client framework.
 */
import { escapeHtml } from '../../shared/html-escape';

export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

export { escapeHtml };

type Value = Html | string | number | boolean | null | undefined | Value[];

function render(v: Value): string {
  if (v === null || v === undefined || v === false) return '';
  if (Array.isArray(v)) return v.map(render).join('');
  if (v instanceof Html) return v.value;
  return escapeHtml(String(v));
}

/** html`<p>${userText}</p>`: interpolations are escaped; nested html`` and arrays of it are not. */
export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0]!;
  values.forEach((v, i) => {
    out += render(v) + strings[i + 1]!;
  });
  return new Html(out);
}

/** Markup from a trusted producer (the chart renderer escapes its own text). */
export const raw = (s: string) => new Html(s);

export interface PageUser {
  username: string;
  role: string;
  csrfToken: string;
}

export interface LayoutInput {
  title: string;
  user: PageUser | null;
  active?: string;
  flash?: { kind: 'ok' | 'error'; text: string } | null;
  body: Html;
}

const NAV: Array<[string, string]> = [
  ['/', 'Overview'],
  ['/endpoints', 'Endpoints'],
  ['/patches', 'Patches'],
  ['/cycles', 'Cycles'],
  ['/exceptions', 'Exceptions'],
  ['/audit', 'Audit'],
  ['/reports', 'Reports'],
  ['/webhooks', 'Webhooks'],
  ['/tokens', 'API tokens'],
];

export function layout(p: LayoutInput): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${p.title} · patchops</title><link rel="stylesheet" href="/static/dashboard.css"><script src="/static/dashboard.js" defer></script></head>
<body>
<header><a class="brand" href="/">patchops</a>
${
  p.user
    ? html`<nav>${NAV.map(([href, label]) => html`<a href="${href}"${p.active === href ? raw(' class="active" aria-current="page"') : ''}>${label}</a>`)}</nav>
<form class="who" method="post" action="/logout"><input type="hidden" name="_csrf" value="${p.user.csrfToken}"><span data-testid="whoami">${p.user.username} (${p.user.role})</span> <button type="submit">Sign out</button></form>`
    : ''
}
</header>
<main>
${p.flash ? html`<p class="flash ${p.flash.kind}" role="${p.flash.kind === 'error' ? 'alert' : 'status'}" data-testid="flash">${p.flash.text}</p>` : ''}
<h1>${p.title}</h1>
${p.body}
</main></body></html>`.value;
}

export function table(headers: string[], rows: Html[][], options: { testid?: string; empty?: string } = {}): Html {
  if (rows.length === 0) return html`<p class="empty">${options.empty ?? 'Nothing here yet.'}</p>`;
  return html`<table${options.testid ? raw(` data-testid="${escapeHtml(options.testid)}"`) : ''}><thead><tr>${headers.map((h) => html`<th>${h}</th>`)}</tr></thead>
<tbody>${rows.map((r) => html`<tr>${r.map((c) => html`<td>${c}</td>`)}</tr>`)}</tbody></table>`;
}

export const cell = (v: Value) => html`${v}`;

export function when(iso: string | null | undefined): Html {
  if (!iso) return html`<span class="muted">never</span>`;
  return html`<time datetime="${iso}">${iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time>`;
}

export function badge(text: string, kind?: string): Html {
  return html`<span class="badge ${kind ?? text}">${text}</span>`;
}

export function csrfField(user: PageUser): Html {
  return html`<input type="hidden" name="_csrf" value="${user.csrfToken}">`;
}

export function qs(params: Record<string, string | number | undefined | null>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
}

export const STYLESHEET = `
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;background:#f6f8fa}
header{display:flex;gap:1.5rem;align-items:center;padding:.6rem 1.2rem;background:#24292f;color:#fff;flex-wrap:wrap}
header a{color:#d0d7de;text-decoration:none}header a.active,header a:hover{color:#fff;text-decoration:underline}
.brand{font-weight:700;color:#fff!important}nav{display:flex;gap:1rem;flex:1}.who{display:flex;gap:.5rem;align-items:center;margin:0}
main{padding:1rem 1.5rem;max-width:1300px}h1{font-size:1.5rem;margin:.3rem 0 1rem}h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
table{border-collapse:collapse;background:#fff;width:100%;margin-bottom:1rem}th,td{border:1px solid #d8dee4;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#eef1f4}.muted{color:#59636e}.empty{color:#59636e;font-style:italic}
.cards{display:flex;gap:1rem;flex-wrap:wrap;margin-bottom:1rem}.card{background:#fff;border:1px solid #d8dee4;border-radius:6px;padding:.7rem 1rem;min-width:160px}
.card .n{font-size:1.6rem;font-weight:700}.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,380px),1fr));gap:1rem;margin-bottom:1rem}
.charts svg{display:block;background:#fff;border:1px solid #d8dee4;border-radius:6px;width:100%;height:auto}
.first-run{background:#fff;border:1px solid #d8dee4;border-radius:6px;padding:.2rem 1.2rem 1rem;max-width:900px}
.first-run ol>li{margin:.6rem 0}pre{background:#f6f8fa;border:1px solid #d8dee4;border-radius:6px;padding:.5rem .7rem;overflow-x:auto}
.badge{display:inline-block;padding:0 .4rem;border-radius:4px;background:#eef1f4;font-size:.85em}.badge.critical,.badge.failed,.badge.FAILED,.badge.kev{background:#ffd8d3}
.badge.important{background:#ffe8b0}.badge.installed,.badge.COMPLETED,.badge.approve{background:#d2f4dc}.badge.reject{background:#ffd8d3}
.flash{padding:.5rem .8rem;border-radius:6px}.flash.ok{background:#d2f4dc}.flash.error{background:#ffd8d3}
form.inline{display:inline}form.filters,form.stack{display:flex;gap:.5rem;flex-wrap:wrap;align-items:end;margin-bottom:1rem}
label{display:flex;flex-direction:column;font-size:.85em;color:#59636e}input,select,button{font:inherit;padding:.25rem .4rem}
button{cursor:pointer}.actions{display:flex;gap:.5rem 1.5rem;flex-wrap:wrap;margin:.5rem 0 1rem}
.actions form.inline{display:inline-flex;gap:.3rem;align-items:center;flex-wrap:wrap}.actions label.inline{flex-direction:row}.timeline li{margin:.2rem 0}
`;

export const CLIENT_JS = `// patchops dashboard: progressive enhancement only; every page works without it.
document.addEventListener('submit', function (e) {
  var f = e.target;
  if (f && f.dataset && f.dataset.confirm && !window.confirm(f.dataset.confirm)) e.preventDefault();
});
(function () {
  var el = document.querySelector('[data-refresh]');
  if (!el) return;
  var seconds = Number(el.getAttribute('data-refresh')) || 15;
  setTimeout(function () { if (!document.querySelector('input:focus,textarea:focus')) location.reload(); }, seconds * 1000);
})();
`;
