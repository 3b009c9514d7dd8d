/**
 * Alerts: what Strongbox tells people, purely — the alert (severity, title, job, host, what happened,
 * findings, what to do next), its e-mail subject and text. The functions publish one per SNS message
 * (functions/lib/alerts `publishAlert`); the agent sends one per run itself to Slack, a webhook or
 * sendmail (agent/notify). Alerts carry ids, names and the agent's error line — never secrets (webhook
 * URLs, passwords, keys).
 */
import { z } from 'zod';
import { type Finding, findingSchema, type Severity, severitySchema } from './agent-output';
import { SEVERITY_ORDER } from './checks';

/** Name of the SNS message attribute that carries the alert as JSON. */
export const ALERT_ATTRIBUTE = 'strongbox.alert';

/** Findings an alert lists at most (the rest are counted); keeps a message well under SNS's 256 KB. */
export const MAX_ALERT_FINDINGS = 200;

/** The alert as the message attribute carries it. */
export const alertSchema = z.object({
  severity: severitySchema,
  title: z.string().min(1),
  /** The plan (deployment) the alert is about. */
  plan: z.string(),
  job: z.string().optional(),
  host: z.string().optional(),
  backupId: z.string().optional(),
  /** Facts, one per line: the agent's error line, the command and its status, … */
  details: z.array(z.string()),
  /** Findings of a verification or a drill, worst first. */
  findings: z.array(findingSchema),
  /** Findings left out of `findings` (over MAX_ALERT_FINDINGS). */
  moreFindings: z.number().int().nonnegative().default(0),
  /** What to do next, in order. */
  nextSteps: z.array(z.string()),
  /** The function that raised it. */
  source: z.string(),
  /** ISO time it was raised. */
  at: z.string(),
});

/** One alert. */
export type Alert = z.output<typeof alertSchema>;

/** What callers give to make an alert (lists default to empty). */
export type AlertInput = Omit<Alert, 'details' | 'findings' | 'nextSteps' | 'moreFindings'> &
  Partial<Pick<Alert, 'details' | 'findings' | 'nextSteps'>>;

/**
 * Builds an alert, sorting findings worst first and capping them.
 * @example makeAlert({ severity: 'critical', title: 'Backup failed: app-db', plan: 'acme', source: 'backup-finished', at })
 */
export function makeAlert(input: AlertInput): Alert {
  const findings = [...(input.findings ?? [])].sort(
    (a, b) => SEVERITY_ORDER.indexOf(a.severity) - SEVERITY_ORDER.indexOf(b.severity),
  );
  return {
    ...input,
    details: input.details ?? [],
    findings: findings.slice(0, MAX_ALERT_FINDINGS),
    moreFindings: Math.max(0, findings.length - MAX_ALERT_FINDINGS),
    nextSteps: input.nextSteps ?? [],
  };
}

/** The worst severity of some findings, or undefined for none. */
export function worstSeverity(findings: readonly Pick<Finding, 'severity'>[]): Severity | undefined {
  return SEVERITY_ORDER.find((s) => findings.some((f) => f.severity === s));
}

/** Counts of findings by severity, in words: `2 critical, 1 warning`. */
export function countFindings(findings: readonly Pick<Finding, 'severity'>[]): string {
  const parts = SEVERITY_ORDER.map((s) => [s, findings.filter((f) => f.severity === s).length] as const)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${s === 'warning' && n > 1 ? 'warnings' : s}`);
  return parts.join(', ') || 'no findings';
}

/**
 * The SNS subject: severity and title on one line, under 100 characters (SNS's limit).
 * @example alertSubject(alert) // '[Strongbox CRITICAL] Backup failed: app-db on db-primary'
 */
export function alertSubject(alert: Alert): string {
  const subject = `[Strongbox ${alert.severity.toUpperCase()}] ${alert.title}`.replace(/[\r\n\t]+/g, ' ');
  return subject.length <= 99 ? subject : `${subject.slice(0, 98)}…`;
}

/**
 * The alert as plain text, for e-mail.
 * @example formatAlertText(makeAlert({ severity: 'warning', title: 'Verification: 1 warning', … }))
 */
export function formatAlertText(alert: Alert): string {
  const lines = [`${alert.severity.toUpperCase()} — ${alert.title}`, ''];
  const facts: [string, string | undefined][] = [
    ['Plan', alert.plan],
    ['Job', alert.job],
    ['Host', alert.host],
    ['Backup', alert.backupId],
    ['When', alert.at],
  ];
  for (const [label, value] of facts) if (value) lines.push(`${`${label}:`.padEnd(8)} ${value}`);
  if (alert.details.length > 0) lines.push('', 'What happened', ...alert.details.map((d) => `  ${d}`));
  if (alert.findings.length > 0) {
    lines.push(
      '',
      `Findings (${countFindings(alert.findings)}${alert.moreFindings ? ` shown, ${alert.moreFindings} more` : ''})`,
    );
    for (const f of alert.findings) {
      lines.push(`  ${f.severity.toUpperCase().padEnd(8)} ${f.job}  ${f.check}: ${f.message}`);
    }
  }
  if (alert.nextSteps.length > 0) {
    lines.push('', 'What to do next', ...alert.nextSteps.map((step, i) => `  ${i + 1}. ${step}`));
  }
  lines.push('', `— Strongbox ${alert.source}`);
  return lines.join('\n');
}
