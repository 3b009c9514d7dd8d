/**
 * Alerts of the functions: one alert is one SNS message — readable text for e-mail subscribers, and the
 * same alert as JSON in the `strongbox.alert` message attribute, from which notify-slack builds its Slack
 * message. The alert itself (schema, text, subject) is core/alerts, shared with the agent's own alerts.
 */
import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { ALERT_ATTRIBUTE, type Alert, alertSubject, formatAlertText } from '#core/alerts';

export * from '#core/alerts';

/**
 * Publishes an alert to the alert topic: text for e-mail, JSON in the `strongbox.alert` attribute.
 * @example await publishAlert(sns, topicArn, alert)
 * @returns the SNS message id.
 */
export async function publishAlert(
  sns: SNSClient,
  topicArn: string,
  alert: Alert,
): Promise<string | undefined> {
  const response = await sns.send(
    new PublishCommand({
      TopicArn: topicArn,
      Subject: alertSubject(alert),
      Message: formatAlertText(alert),
      MessageAttributes: {
        [ALERT_ATTRIBUTE]: { DataType: 'String', StringValue: JSON.stringify(alert) },
      },
    }),
  );
  return response.MessageId;
}
