/**
 * SmtpMailer: the Mailer port on nodemailer over SMTP_URL. Cycle reports and digests carry their chart
 * as an inline PNG (cid), rendered by reports/charts. Send failures become CodedError(INTEGRATION_FAILED)
 * (retryable: the activity's retry policy retries them).
 */
import nodemailer, { type Transporter } from 'nodemailer';
import type { ApprovalRequest, CycleReport, Mailer } from '../../domain/ports';
import { CodedError, ErrorCode } from '../../domain/errors';
import type { Logger } from '../../logging';
import { renderChartPng } from '../../reports/charts';
import {
  CHART_CID,
  renderApprovalRequest,
  renderCycleReport,
  renderDigest,
  type ComplianceDigest,
  type RenderedEmail,
} from './render';

export interface SmtpMailerOptions {
  /** smtp://user:pass@host:587 or smtps://user:pass@host:465 */
  url: string;
  from: string;
  publicUrl: string;
  logger?: Logger;
  /** Builds the change request link from its number (ServiceNow), when there is one. */
  changeUrl?: (changeNumber: string) => string | undefined;
}

export class SmtpMailer implements Mailer {
  private readonly transport: Transporter;

  constructor(private readonly o: SmtpMailerOptions) {
    this.transport = nodemailer.createTransport(o.url);
  }

  async sendCycleReport(report: CycleReport, to: string[]): Promise<void> {
    const changeUrl = report.changeNumber ? this.o.changeUrl?.(report.changeNumber) : undefined;
    await this.send(
      renderCycleReport(report, { publicUrl: this.o.publicUrl, ...(changeUrl ? { changeUrl } : {}) }),
      to,
      { cycleId: report.cycleId },
    );
  }

  async sendApprovalRequest(req: ApprovalRequest, to: string[]): Promise<void> {
    await this.send(renderApprovalRequest(req, { publicUrl: this.o.publicUrl }), to, { cycleId: req.cycleId });
  }

  async sendDigest(digest: ComplianceDigest, to: string[]): Promise<void> {
    await this.send(renderDigest(digest, { publicUrl: this.o.publicUrl }), to, {});
  }

  /** Health: connects and authenticates (EHLO, STARTTLS, AUTH) without sending. */
  async verify(): Promise<void> {
    try {
      await this.transport.verify();
    } catch (e) {
      throw new CodedError(
        ErrorCode.IntegrationFailed,
        `SMTP server at ${redactUrl(this.o.url)} is not usable: ${(e as Error).message}. Check SMTP_URL.`,
        { cause: e, retryable: true },
      );
    }
  }

  close(): void {
    this.transport.close();
  }

  private async send(mail: RenderedEmail, to: string[], ctx: Record<string, unknown>): Promise<void> {
    const recipients = [...new Set(to.map((t) => t.trim()).filter(Boolean))];
    if (recipients.length === 0) {
      this.o.logger?.info(
        { ...ctx, subject: mail.subject },
        'no email recipients: nothing sent (set REPORT_RECIPIENTS)',
      );
      return;
    }
    const attachments = mail.chart
      ? [{ filename: 'chart.png', content: await renderChartPng(mail.chart), contentType: 'image/png', cid: CHART_CID }]
      : [];
    try {
      const info = (await this.transport.sendMail({
        from: this.o.from,
        to: recipients,
        subject: mail.subject,
        text: mail.text,
        html: mail.html,
        attachments,
      })) as { messageId?: string };
      this.o.logger?.info({ ...ctx, to: recipients, subject: mail.subject, messageId: info.messageId }, 'email sent');
    } catch (e) {
      throw new CodedError(
        ErrorCode.IntegrationFailed,
        `Could not send "${mail.subject}" through ${redactUrl(this.o.url)}: ${(e as Error).message}. Check SMTP_URL and the recipients.`,
        {
          cause: e,
          retryable: true,
        },
      );
    }
  }
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'SMTP_URL';
  }
}
