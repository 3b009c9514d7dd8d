import { GetParameterCommand, ParameterNotFound, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { SsmSecretStore } from '#adapters/aws/secrets';
import { resolvePassword } from '#agent/sources/context';
import { PlanError, SourceError } from '#core/errors';

const ssmMock = mockClient(SSMClient);

afterEach(() => {
  ssmMock.reset();
});

describe('resolvePassword', () => {
  it('reads the environment variable named by passwordEnv', async () => {
    expect(await resolvePassword({ passwordEnv: 'DB_PW' }, { env: { DB_PW: 'pw-from-env' } })).toBe(
      'pw-from-env',
    );
  });

  it.each([[{}], [{ DB_PW: '' }]])('names an unset or empty variable (%j)', async (env) => {
    const attempt = resolvePassword({ passwordEnv: 'DB_PW' }, { env });
    await expect(attempt).rejects.toBeInstanceOf(PlanError);
    await expect(attempt).rejects.toThrow(/DB_PW is not set/);
  });

  it('decrypts the SSM SecureString named by passwordParameter', async () => {
    ssmMock.on(GetParameterCommand).resolves({ Parameter: { Value: 'pw-from-ssm' } });

    const password = await resolvePassword(
      { passwordParameter: '/db/app/password' },
      { env: {}, secrets: new SsmSecretStore({ client: new SSMClient({ region: 'eu-west-1' }) }) },
    );

    expect(password).toBe('pw-from-ssm');
    expect(ssmMock.commandCalls(GetParameterCommand)[0]?.args[0].input).toEqual({
      Name: '/db/app/password',
      WithDecryption: true,
    });
  });

  it('turns a missing parameter into a PlanError naming it', async () => {
    ssmMock.on(GetParameterCommand).rejects(new ParameterNotFound({ message: 'nope', $metadata: {} }));
    const attempt = resolvePassword(
      { passwordParameter: '/db/missing' },
      { env: {}, secrets: new SsmSecretStore({ client: new SSMClient({ region: 'eu-west-1' }) }) },
    );
    await expect(attempt).rejects.toBeInstanceOf(PlanError);
    await expect(attempt).rejects.toThrow(/\/db\/missing does not exist/);
  });

  it('turns other SSM failures into a SourceError', async () => {
    ssmMock.on(GetParameterCommand).rejects(new Error('AccessDenied'));
    const attempt = resolvePassword(
      { passwordParameter: '/db/app/password' },
      { env: {}, secrets: new SsmSecretStore({ client: new SSMClient({ region: 'eu-west-1' }) }) },
    );
    await expect(attempt).rejects.toBeInstanceOf(SourceError);
  });

  it('leaves the password to .pgpass when none is configured', async () => {
    expect(await resolvePassword({}, { env: {} })).toBeUndefined();
  });
});
