/** Events as AWS sends them, for the handler tests (shapes from the EventBridge and Lambda docs). */
import { TEST_ENV } from './support/services';

export const COMMAND_ID = '0b7f5a2c-1111-2222-3333-444455556666';
export const INSTANCE_ID = 'i-0123456789abcdef0';

/** `EC2 Command Invocation Status-change Notification` from source aws.ssm. */
export function commandStatusEvent(
  status: string,
  detail: Partial<Record<'command-id' | 'instance-id' | 'document-name', string>> = {},
) {
  return {
    version: '0',
    id: '6a7e8feb-b491-4cf7-a9f1-bf3703467718',
    'detail-type': 'EC2 Command Invocation Status-change Notification',
    source: 'aws.ssm',
    account: '111122223333',
    time: '2024-12-06T02:07:13Z',
    region: 'eu-central-1',
    resources: [`arn:aws:ec2:eu-central-1:111122223333:instance/${detail['instance-id'] ?? INSTANCE_ID}`],
    detail: {
      'command-id': COMMAND_ID,
      'document-name': TEST_ENV.documentName,
      'instance-id': INSTANCE_ID,
      'requested-date-time': '2024-12-06T02:00:04.113Z',
      status,
      ...detail,
    },
  };
}

/** `Object Restore Completed` from source aws.s3. */
export function restoreCompletedEvent(key: string, bucket = TEST_ENV.vaultBucket) {
  return {
    version: '0',
    id: '2ee9cc15-d022-99ea-1fb8-1b1bac4850f9',
    'detail-type': 'Object Restore Completed',
    source: 'aws.s3',
    account: '111122223333',
    time: '2024-12-06T07:41:02Z',
    region: 'eu-central-1',
    resources: [`arn:aws:s3:::${bucket}`],
    detail: {
      version: '0',
      bucket: { name: bucket },
      object: { key, size: 1024, etag: 'b1946ac92492d2347c6235b4d2611184' },
      'request-id': '189F19CB7FB1B6A4',
      requester: 's3.amazonaws.com',
      'restore-expiry-time': '2024-12-13T00:00:00Z',
      'source-storage-class': 'GLACIER',
    },
  };
}
