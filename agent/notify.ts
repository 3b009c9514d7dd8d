/**
 * The agent's own alerts (the plan's `notify:` section), for sites without AWS: one alert per run —
 * the same alert the functions publish (core/alerts) — delivered to each configured channel: a Slack
 * incoming webhook (the notify-slack function's Block Kit message), a generic webhook (the alert as
 * JSON) and e-mail through the host's sendmail (the alert's e-mail text). Secrets (webhook URLs) are
 * read from the environment or a file when sending, never put in argv, a log line or an error message.
 * A channel that fails is reported back as a warning; it never fails the run that is being reported.
 */
import { readFile } from 'node:fs/promises';
import { postJson, postToSlack, slackMessageOfAlert } from '#adapters/alerts/slack';
import { spawnTool } from '#agent/pipeline/child';
import type { Env } from '#agent/runtime';
import { type Alert, alertSubject, formatAlertText } from '#core/alerts';
import { describeError, PlanError } from '#core/errors';
import type { NotifyConfig, SecretValue } from '#core/local-ops';

/** What delivery needs from outside. */
export interface NotifyServices {
  env: Env;
  fetch: typeof fetch;
  sleep: (ms: number) => Promise<void>;
  /** Name of this host, for the default sender address. */
  host: string;
}

/** Attempts per webhook delivery (waits of 1 s, then 2 s): an alert should not hold a cron run long. */
export const NOTIFY_ATTEMPTS = 3;

/** How long sendmail may take to accept one message. */
export const SENDMAIL_TIMEOUT_SECONDS = 30;

/** How one channel fared. */
export interface Delivery {
  channel: 'slack' | 'webhook' | 'email';
  ok: boolean;
  /** Why it failed (never the secret). */
  error?: string;
}

/**
 * Reads a secret the plan names by reference: an environment variable, or the first line of a file.
 * `where` names the field for messages (`notify.slack.webhookUrl`); the value never appears in one.
 * @example await readSecretValue({ env: 'SLACK_WEBHOOK' }, 'notify.slack.webhookUrl', process.env)
 * @throws PlanError when the variable is unset or empty, or the file cannot be read or is empty.
 */
export async function readSecretValue(ref: SecretValue, where: string, env: Env): Promise<string> {
  if ('env' in ref) {
    const value = env[ref.env]?.trim();
    if (!value) throw new PlanError([`${where}: environment variable ${ref.env} is not set on this host`]);
    return value;
  }
  let text: string;
  try {
    text = await readFile(ref.file, 'utf8');
  } catch (error) {
    throw new PlanError([`${where}: cannot read ${ref.file}: ${describeError(error)}`], { cause: error });
  }
  const value = text.split('\n')[0]?.trim();
  if (!value) throw new PlanError([`${where}: ${ref.file} is empty (it should hold the URL on one line)`]);
  return value;
}

/** Describes where a secret comes from, for messages: `env SLACK_WEBHOOK`, `file /etc/…`. */
function sourceOf(ref: SecretValue, where: string): string {
  return `${where} (${'env' in ref ? `environment variable ${ref.env}` : `file ${ref.file}`})`;
}

/** The URL of a webhook secret, refused (without showing it) unless it is http(s). */
async function webhookUrl(ref: SecretValue, where: string, env: Env): Promise<string> {
  const value = await readSecretValue(ref, where, env);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new PlanError([`${sourceOf(ref, where)} does not hold a URL`]);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new PlanError([`${sourceOf(ref, where)} does not hold an http(s) URL`]);
  }
  return value;
}

/**
 * The alert as an e-mail for `sendmail -t`: From, To, Subject (RFC 2047 encoded when not ASCII), Date,
 * and the alert's text as a UTF-8 plain-text body.
 */
export function emailOf(alert: Alert, to: readonly string[], from: string, date: Date): string {
  const subject = alertSubject(alert);
  const encoded = /^[\x20-\x7e]*$/.test(subject)
    ? subject
    : `=?UTF-8?B?${Buffer.from(subject, 'utf8').toString('base64')}?=`;
  return [
    `From: ${from}`,
    `To: ${to.join(', ')}`,
    `Subject: ${encoded}`,
    `Date: ${date.toUTCString().replace('GMT', '+0000')}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    'Auto-Submitted: auto-generated',
    '',
    formatAlertText(alert),
    '',
  ].join('\n');
}

/** Hands one message to sendmail on stdin (`-t -oi`: recipients from the headers, a lone dot is text). */
async function sendmail(program: string, message: string, env: Env): Promise<void> {
  const tool = spawnTool(program, ['-t', '-oi'], {
    env: { ...env },
    stdin: 'pipe',
    stdout: 'ignore',
    name: 'sendmail',
    timeoutSeconds: SENDMAIL_TIMEOUT_SECONDS,
  });
  tool.stdin?.on('error', () => {}); // a sendmail that exits early: its status says why
  tool.stdin?.end(message);
  await tool.done;
}

/**
 * Delivers one alert to every channel of `config`, each on its own: one failing does not stop the
 * others. Never throws; what failed is in the result.
 * @example const deliveries = await deliverAlert(alert, plan.notify, { env, fetch, sleep, host })
 */
export async function deliverAlert(
  alert: Alert,
  config: NotifyConfig,
  services: NotifyServices,
): Promise<Delivery[]> {
  const retry = { fetch: services.fetch, sleep: services.sleep, maxAttempts: NOTIFY_ATTEMPTS };
  const channels: [Delivery['channel'], () => Promise<unknown>][] = [];
  const { slack, webhook, email } = config;
  if (slack) {
    channels.push([
      'slack',
      async () =>
        postToSlack(
          await webhookUrl(slack.webhookUrl, 'notify.slack.webhookUrl', services.env),
          slackMessageOfAlert(alert),
          { ...retry, source: sourceOf(slack.webhookUrl, 'notify.slack.webhookUrl') },
        ),
    ]);
  }
  if (webhook) {
    channels.push([
      'webhook',
      async () =>
        postJson(await webhookUrl(webhook.url, 'notify.webhook.url', services.env), alert, {
          ...retry,
          source: sourceOf(webhook.url, 'notify.webhook.url'),
          receiver: 'the webhook',
        }),
    ]);
  }
  if (email) {
    channels.push([
      'email',
      () =>
        sendmail(
          email.sendmail,
          emailOf(alert, email.to, email.from ?? `strongbox@${services.host}`, new Date(alert.at)),
          services.env,
        ),
    ]);
  }
  return Promise.all(
    channels.map(async ([channel, send]) => {
      try {
        await send();
        return { channel, ok: true };
      } catch (error) {
        return { channel, ok: false, error: describeError(error) };
      }
    }),
  );
}
