/**
 * Slack messages for alerts: one readable message per alert (severity, job, host, what happened, what to
 * do next) as Block Kit with a plain-text fallback, and delivery to an incoming webhook (or any JSON
 * webhook) with retries on 429 (after Retry-After) and 5xx. Used by the notify-slack function and by the
 * agent's own alerts (agent/notify). The webhook URL is a secret: it is passed in, used, and never
 * logged or put into an error message.
 */

import { type Alert, countFindings } from '#core/alerts';
import { PlanError, StrongboxError } from '#core/errors';

/** A Slack message: fallback text (notifications, old clients) and blocks. */
export interface SlackMessage {
  text: string;
  blocks: Record<string, unknown>[];
}

const EMOJI = {
  critical: ':red_circle:',
  warning: ':large_orange_circle:',
  info: ':large_blue_circle:',
} as const;
/** Slack's limit on the text of one section block. */
const SECTION_CHARS = 3000;
/** Slack's limit on a header block's text. */
const HEADER_CHARS = 150;

/** Escapes the three characters Slack's mrkdwn reserves. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function clip(text: string, limit: number): string {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}

function section(text: string): Record<string, unknown> {
  return { type: 'section', text: { type: 'mrkdwn', text: clip(text, SECTION_CHARS) } };
}

/**
 * The Slack message of an alert.
 * @example slackMessageOfAlert(alert).text // 'CRITICAL — Backup failed: app-db on db-primary (i-0…)'
 */
export function slackMessageOfAlert(alert: Alert): SlackMessage {
  const severity = alert.severity.toUpperCase();
  const blocks: Record<string, unknown>[] = [
    {
      type: 'header',
      text: {
        type: 'plain_text',
        text: clip(`${EMOJI[alert.severity]} ${severity} · ${alert.title}`, HEADER_CHARS),
        emoji: true,
      },
    },
  ];
  const fields = (
    [
      ['Job', alert.job],
      ['Host', alert.host],
      ['Backup', alert.backupId ? `\`${alert.backupId}\`` : undefined],
      ['Plan', alert.plan],
    ] as const
  )
    .filter(([, value]) => value)
    .map(([label, value]) => ({ type: 'mrkdwn', text: `*${label}*\n${escapeMrkdwn(value ?? '')}` }));
  if (fields.length > 0) blocks.push({ type: 'section', fields });
  if (alert.details.length > 0) {
    blocks.push(section(`*What happened*\n${alert.details.map((d) => `• ${escapeMrkdwn(d)}`).join('\n')}`));
  }
  if (alert.findings.length > 0) {
    const lines = alert.findings.map(
      (f) =>
        `${EMOJI[f.severity]} \`${escapeMrkdwn(f.job)}\` *${escapeMrkdwn(f.check)}* — ${escapeMrkdwn(f.message)}`,
    );
    const header = `*Findings* (${countFindings(alert.findings)})`;
    const kept: string[] = [];
    let length = header.length;
    for (const line of lines) {
      if (length + line.length + 1 > SECTION_CHARS - 60) break;
      kept.push(line);
      length += line.length + 1;
    }
    const left = lines.length - kept.length + alert.moreFindings;
    const body = [header, ...kept, ...(left > 0 ? [`…and ${left} more (see the e-mail)`] : [])].join('\n');
    blocks.push(section(body));
  }
  if (alert.nextSteps.length > 0) {
    blocks.push(
      section(
        `*What to do next*\n${alert.nextSteps.map((s, i) => `${i + 1}. ${escapeMrkdwn(s)}`).join('\n')}`,
      ),
    );
  }
  blocks.push({
    type: 'context',
    elements: [
      { type: 'mrkdwn', text: `Strongbox ${escapeMrkdwn(alert.source)} · ${escapeMrkdwn(alert.at)}` },
    ],
  });
  return { text: `${severity} — ${alert.title}`, blocks };
}

/** The parts of a CloudWatch alarm notification (SNS message JSON) that the message shows. */
export interface CloudWatchAlarmMessage {
  AlarmName: string;
  AlarmDescription?: string | null;
  NewStateValue: string;
  NewStateReason?: string;
  StateChangeTime?: string;
  Trigger?: { MetricName?: string; Namespace?: string; Dimensions?: { name: string; value: string }[] };
}

/** Whether an SNS message body is a CloudWatch alarm notification. */
export function parseAlarmMessage(message: string): CloudWatchAlarmMessage | undefined {
  try {
    const data = JSON.parse(message) as Partial<CloudWatchAlarmMessage>;
    return typeof data.AlarmName === 'string' && typeof data.NewStateValue === 'string'
      ? (data as CloudWatchAlarmMessage)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The Slack message of a CloudWatch alarm (the stack's alarms publish to the same topic). */
export function slackMessageOfAlarm(alarm: CloudWatchAlarmMessage): SlackMessage {
  const firing = alarm.NewStateValue === 'ALARM';
  const emoji = firing
    ? EMOJI.critical
    : alarm.NewStateValue === 'OK'
      ? ':large_green_circle:'
      : EMOJI.warning;
  const job = alarm.Trigger?.Dimensions?.find((d) => d.name === 'Job')?.value;
  const title = `${alarm.AlarmName} is ${alarm.NewStateValue}`;
  const lines = [
    alarm.AlarmDescription ? escapeMrkdwn(alarm.AlarmDescription) : undefined,
    alarm.NewStateReason ? `_${escapeMrkdwn(alarm.NewStateReason)}_` : undefined,
    alarm.Trigger?.MetricName
      ? `Metric: \`${alarm.Trigger.Namespace}/${alarm.Trigger.MetricName}\`${job ? ` for job \`${escapeMrkdwn(job)}\`` : ''}`
      : undefined,
  ].filter((l): l is string => Boolean(l));
  return {
    text: `${firing ? 'ALARM' : alarm.NewStateValue} — ${title}`,
    blocks: [
      {
        type: 'header',
        text: { type: 'plain_text', text: clip(`${emoji} ${title}`, HEADER_CHARS), emoji: true },
      },
      ...(lines.length > 0 ? [section(lines.join('\n'))] : []),
      {
        type: 'context',
        elements: [
          { type: 'mrkdwn', text: `CloudWatch alarm · ${escapeMrkdwn(alarm.StateChangeTime ?? '')}` },
        ],
      },
    ],
  };
}

/** The Slack message of any other SNS message: its subject and text. */
export function slackMessageOfText(subject: string | undefined, message: string): SlackMessage {
  const title = subject || 'Strongbox notification';
  return {
    text: title,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: clip(title, HEADER_CHARS), emoji: true } },
      section(`\`\`\`${message.replace(/```/g, "'''")}\`\`\``),
    ],
  };
}

/** How deliveries retry. */
export interface DeliveryOptions {
  fetch: typeof fetch;
  sleep: (ms: number) => Promise<void>;
  /** Attempts in all (default 5). */
  maxAttempts?: number;
  /** Longest single wait, also for Retry-After (default 30 s). */
  maxWaitMs?: number;
  /** Where the URL came from, for messages (never the URL itself). */
  source: string;
}

/**
 * Posts a message to a Slack incoming webhook. Retries on 429 (waiting Retry-After seconds), 5xx and
 * network errors with exponential back-off; other answers are final.
 * @example await postToSlack(webhookUrl, slackMessageOfAlert(alert), { fetch, sleep, source: 'SSM parameter /strongbox/slack' })
 * @returns the attempts it took.
 * @throws PlanError when Slack refuses the webhook or the message (4xx: revoked webhook, archived channel);
 *   StrongboxError when it still fails after the last attempt.
 */
export function postToSlack(url: string, message: SlackMessage, options: DeliveryOptions): Promise<number> {
  return postJson(url, message, {
    ...options,
    receiver: 'Slack',
    refusedHint: '(revoked, or its channel archived)',
  });
}

/**
 * Posts any JSON body to a webhook the way {@link postToSlack} posts to Slack: retries on 429 (after
 * Retry-After), 5xx and network errors; a 4xx answer is final. Messages name `receiver` and
 * `options.source`, never the URL.
 * @example await postJson(url, alert, { fetch, sleep, source: 'notify.webhook.url (env HOOK_URL)', receiver: 'the webhook' })
 * @returns the attempts it took.
 * @throws PlanError when the receiver refuses (4xx); StrongboxError when it still fails after the last attempt.
 */
export async function postJson(
  url: string,
  body: unknown,
  options: DeliveryOptions & { receiver: string; refusedHint?: string },
): Promise<number> {
  const maxAttempts = options.maxAttempts ?? 5;
  const maxWaitMs = options.maxWaitMs ?? 30_000;
  let last = '';
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    let waitMs = Math.min(1000 * 2 ** (attempt - 1), maxWaitMs);
    try {
      const response = await options.fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      const text = clip((await response.text()).replace(/\s+/g, ' ').trim(), 100);
      if (response.ok) return attempt;
      last = `HTTP ${response.status}${text ? ` ${text}` : ''}`;
      if (response.status === 429) {
        const seconds = Number(response.headers.get('retry-after'));
        waitMs = Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds * 1000, maxWaitMs) : waitMs;
      } else if (response.status < 500) {
        throw new PlanError([
          `${options.receiver} refused the message (${last}): check the webhook in ${options.source}${options.refusedHint ? ` ${options.refusedHint}` : ''} and put a working one there`,
        ]);
      }
    } catch (error) {
      if (error instanceof PlanError) throw error;
      const code = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
      last = `network error ${code}`;
    }
    if (attempt < maxAttempts) await options.sleep(waitMs);
  }
  throw new StrongboxError(
    `${options.receiver} did not take the message after ${maxAttempts} attempts (last: ${last})`,
  );
}
