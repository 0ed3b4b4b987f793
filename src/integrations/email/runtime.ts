/**
 * What `patchops up` needs for email: the SmtpMailer (cycle reports, approval fallback, digest), the
 * recipients and a real health check. With SMTP_URL: that server. In demo mode without it: an SMTP
 * server in-process on 127.0.0.1 that logs what it receives (the mailer still speaks real SMTP to it).
 */
import type { Config } from '../../config/index';
import type { Logger } from '../../logging';
import type { HealthCheck } from '../../shared/contracts';
import { cachedHealth } from '../servicenow/runtime';
import { SmtpMailer } from './smtp-mailer';

export interface EmailRuntime {
  mailer: SmtpMailer;
  recipients: string[];
  health: HealthCheck;
  demo: boolean;
  stop(): Promise<void>;
}

export async function startEmail(
  config: Config,
  logger: Logger,
  o: { changeUrl?: (n: string) => string } = {},
): Promise<EmailRuntime | null> {
  const log = logger.child({ component: 'email' });
  let url = config.smtp.url;
  let recipients = config.smtp.reportRecipients;
  let stopSink = async () => undefined as void;
  let demo = false;
  if (!config.smtp.enabled || !url) {
    if (!config.demo) return null;
    const { SmtpSink } = await import('../../../test/fakes/smtp-sink');
    const sink = new SmtpSink();
    url = await sink.start();
    const origin = sink.messages.length;
    const timer = setInterval(() => {
      for (const m of sink.messages.splice(origin))
        log.info({ to: m.envelopeTo, subject: m.parsed.subject }, 'demo: email received by the in-process SMTP server');
    }, 1000);
    timer.unref();
    stopSink = async () => {
      clearInterval(timer);
      await sink.stop();
    };
    if (recipients.length === 0) recipients = ['change-managers@patchops.demo'];
    demo = true;
    log.info({ url }, 'demo: in-process SMTP server started');
  }
  const smtpUrl = url;
  const mailer = new SmtpMailer({
    url: smtpUrl,
    from: config.smtp.from,
    publicUrl: config.http.publicUrl,
    logger: log,
    ...(o.changeUrl ? { changeUrl: o.changeUrl } : {}),
  });
  return {
    mailer,
    recipients,
    demo,
    health: cachedHealth('email', async () => {
      await mailer.verify();
      return `SMTP ${redact(smtpUrl)}${demo ? ' (demo sink)' : ''}; ${recipients.length} recipient(s)`;
    }),
    async stop() {
      mailer.close();
      await stopSink();
    },
  };
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return `${u.protocol}//${u.username ? `${u.username}@` : ''}${u.host}`;
  } catch {
    return 'SMTP_URL';
  }
}
