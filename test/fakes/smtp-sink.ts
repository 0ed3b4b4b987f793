/**
 * An SMTP server in-process (smtp-server) that parses what it receives (mailparser): for tests and the
 * demo (PATCHOPS_DEMO), where the product's real SmtpMailer sends to it over SMTP.
 */
import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  envelopeFrom: string;
  envelopeTo: string[];
  parsed: ParsedMail;
}

export class SmtpSink {
  readonly messages: ReceivedMail[] = [];
  private readonly waiters: Array<{ count: number; resolve: () => void }> = [];
  private server: SMTPServer | undefined;
  url = '';

  constructor(private readonly o: { port?: number; username?: string; password?: string } = {}) {}

  async start(): Promise<string> {
    const auth = this.o.username !== undefined;
    this.server = new SMTPServer({
      secure: false,
      disabledCommands: auth ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
      authOptional: !auth,
      allowInsecureAuth: true,
      logger: false,
      onAuth: (a, _session, cb) => {
        if (a.username === this.o.username && a.password === this.o.password) cb(null, { user: a.username });
        else cb(new Error('Invalid username or password'));
      },
      onData: (stream, session, cb) => {
        simpleParser(stream, { keepCidLinks: true })
          .then((parsed) => {
            this.messages.push({
              envelopeFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
              envelopeTo: session.envelope.rcptTo.map((r) => r.address),
              parsed,
            });
            for (const w of [...this.waiters]) {
              if (this.messages.length >= w.count) {
                this.waiters.splice(this.waiters.indexOf(w), 1);
                w.resolve();
              }
            }
            cb();
          })
          .catch((e: unknown) => cb(e as Error));
      },
    });
    await new Promise<void>((resolve) => this.server!.listen(this.o.port ?? 0, '127.0.0.1', resolve));
    const port = (this.server.server.address() as AddressInfo).port;
    const cred = auth ? `${encodeURIComponent(this.o.username!)}:${encodeURIComponent(this.o.password ?? '')}@` : '';
    this.url = `smtp://${cred}127.0.0.1:${port}`;
    return this.url;
  }

  /** Resolves when at least `count` messages have arrived (rejects after timeoutMs). */
  waitFor(count: number, timeoutMs = 10_000): Promise<void> {
    if (this.messages.length >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = {
        count,
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
      };
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`SMTP sink: ${this.messages.length} of ${count} messages after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = undefined;
  }
}
