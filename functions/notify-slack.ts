/**
 * notify-slack — SNS (the alert topic) → one Slack message per alert. Alerts of the other functions
 * carry their content in the `strongbox.alert` message attribute and become a Block Kit message
 * (severity, job, host, what happened, what to do next); CloudWatch alarm notifications and any other
 * message are shown too. The webhook URL comes from the SSM SecureString named by
 * STRONGBOX_SLACK_WEBHOOK_PARAMETER, is cached for five minutes, and is never logged. Slack's 429 and
 * 5xx answers are retried.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { Context } from 'aws-lambda';
import { awsErrorName, describeAwsError } from '#adapters/aws/errors';
import { FUNCTIONS } from '#core/deployment';
import { PlanError } from '#core/errors';
import type { Clock } from '#core/ports';
import { systemClock } from '#core/ports';
import { type FunctionEnv, readFunctionEnv } from './env';
import { ALERT_ATTRIBUTE, alertSchema } from './lib/alerts';
import { snsEventSchema } from './lib/events';
import { runLogged } from './lib/handler';
import {
  parseAlarmMessage,
  postToSlack,
  type SlackMessage,
  slackMessageOfAlarm,
  slackMessageOfAlert,
  slackMessageOfText,
} from './lib/slack';
import { parseInput } from './lib/validate';
import { lazy } from './runtime';

const logger = new Logger({ serviceName: FUNCTIONS.notifySlack });
const ssmClient = new SSMClient({});

/** How long a fetched webhook URL is used before it is read again (rotations take effect by then). */
export const WEBHOOK_CACHE_MS = 5 * 60_000;

/** What notify-slack uses. */
export interface NotifySlackServices {
  env: FunctionEnv<'slackWebhookParameter'>;
  ssm: SSMClient;
  logger: Logger;
  fetch: typeof fetch;
  sleep: (ms: number) => Promise<void>;
  clock: Clock;
  /** The webhook URL (cached); see `webhookFromSsm`. */
  webhook: () => Promise<string>;
}

/**
 * Reads the webhook URL from an SSM SecureString, caching it for `WEBHOOK_CACHE_MS`.
 * @example const webhook = webhookFromSsm(ssm, '/strongbox/slack-webhook', systemClock)
 * @throws PlanError when the parameter is missing or does not hold an https URL (the value is never shown).
 */
export function webhookFromSsm(ssm: SSMClient, parameter: string, clock: Clock): () => Promise<string> {
  let cached: { url: string; until: number } | undefined;
  return async () => {
    if (cached && cached.until > clock.now().getTime()) return cached.url;
    let value: string | undefined;
    try {
      const response = await ssm.send(new GetParameterCommand({ Name: parameter, WithDecryption: true }));
      value = response.Parameter?.Value;
    } catch (error) {
      if (awsErrorName(error) === 'ParameterNotFound') {
        throw new PlanError([
          `SSM parameter ${parameter} does not exist: create it as a SecureString holding the Slack incoming webhook URL`,
        ]);
      }
      throw new PlanError([`cannot read SSM parameter ${parameter}: ${describeAwsError(error)}`], {
        cause: error,
      });
    }
    if (!value || !isWebhookUrl(value)) {
      throw new PlanError([
        `SSM parameter ${parameter} does not hold an https URL (a Slack incoming webhook URL)`,
      ]);
    }
    cached = { url: value, until: clock.now().getTime() + WEBHOOK_CACHE_MS };
    return value;
  };
}

function isWebhookUrl(value: string): boolean {
  try {
    const url = new URL(value.trim());
    return (
      url.protocol === 'https:' ||
      (url.protocol === 'http:' && ['127.0.0.1', 'localhost'].includes(url.hostname))
    );
  } catch {
    return false;
  }
}

/** The Slack message of one SNS message: a Strongbox alert, a CloudWatch alarm, or plain text. */
export function slackMessageOf(record: {
  Subject?: string | null;
  Message: string;
  MessageAttributes?: Record<string, { Value: string }>;
}): SlackMessage {
  const attribute = record.MessageAttributes?.[ALERT_ATTRIBUTE]?.Value;
  if (attribute) {
    try {
      const alert = alertSchema.safeParse(JSON.parse(attribute));
      if (alert.success) return slackMessageOfAlert(alert.data);
    } catch {
      // not JSON: fall through to the text of the message
    }
  }
  const alarm = parseAlarmMessage(record.Message);
  if (alarm) return slackMessageOfAlarm(alarm);
  return slackMessageOfText(record.Subject ?? undefined, record.Message);
}

/** What notify-slack delivered. */
export interface NotifySlackResult {
  delivered: number;
  /** Attempts each delivery took (1 = at once). */
  attempts: number[];
}

/**
 * Delivers every message of an SNS event to Slack, in order.
 * @example await notifySlack(snsEvent, services) // { delivered: 1, attempts: [1] }
 * @throws PlanError for a malformed event or a refused webhook; StrongboxError when Slack stays
 *   unavailable (Lambda then retries the event).
 */
export async function notifySlack(event: unknown, services: NotifySlackServices): Promise<NotifySlackResult> {
  const parsed = parseInput(snsEventSchema, event, 'notify-slack event');
  const url = await services.webhook();
  const attempts: number[] = [];
  for (const record of parsed.Records) {
    const message = slackMessageOf(record.Sns);
    const tries = await postToSlack(url, message, {
      fetch: services.fetch,
      sleep: services.sleep,
      source: `SSM parameter ${services.env.slackWebhookParameter}`,
    });
    attempts.push(tries);
    services.logger.info('alert delivered to Slack', {
      messageId: record.Sns.MessageId,
      title: message.text,
      attempts: tries,
    });
  }
  return { delivered: attempts.length, attempts };
}

/**
 * The handler over given services (tests pass a mocked SSM client and a local HTTP server as Slack).
 * @example export const handler = createNotifySlackHandler(async () => services)
 */
export function createNotifySlackHandler(getServices: () => Promise<NotifySlackServices>) {
  return async (event: unknown, context?: Context): Promise<NotifySlackResult> => {
    const services = await getServices();
    return runLogged(services.logger, context, FUNCTIONS.notifySlack, () => notifySlack(event, services));
  };
}

/** Lambda entry: SNS subscription of the alert topic. */
export const handler = createNotifySlackHandler(
  lazy(async () => {
    const env = readFunctionEnv(process.env, ['slackWebhookParameter']);
    return {
      env,
      ssm: ssmClient,
      logger,
      fetch: globalThis.fetch,
      sleep: (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
      clock: systemClock,
      webhook: webhookFromSsm(ssmClient, env.slackWebhookParameter, systemClock),
    };
  }),
);
