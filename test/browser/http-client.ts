/** A browser-like client over real HTTP: keeps cookies, does not follow redirects. */
export class HttpClient {
  jar = new Map<string, string>();
  constructor(readonly base: string) {}
  async req(path: string, init: { method?: string; form?: Record<string, string>; origin?: string | null } = {}) {
    const headers: Record<string, string> = { cookie: [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ') };
    if (init.form) headers['content-type'] = 'application/x-www-form-urlencoded';
    if (init.origin !== null) headers.origin = init.origin ?? this.base;
    const res = await fetch(this.base + path, {
      method: init.method ?? (init.form ? 'POST' : 'GET'),
      headers,
      body: init.form ? new URLSearchParams(init.form).toString() : undefined,
      redirect: 'manual',
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const [k, v] = pair!.split('=');
      if (/Max-Age=0/.test(c)) this.jar.delete(k!);
      else this.jar.set(k!, v!);
    }
    return {
      status: res.status,
      location: res.headers.get('location'),
      text: await res.text(),
      type: res.headers.get('content-type'),
    };
  }
  async login(username: string, password: string) {
    const page = await this.req('/login');
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)![1]!;
    return this.req('/login', { form: { _csrf: csrf, username, password, next: '/' } });
  }
  async csrf(path = '/') {
    const page = await this.req(path);
    return /name="_csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? '';
  }
}
