/**
 * The Strongbox SSM Command document, as data: download the agent executables (one per architecture,
 * gzip) and the plan, check their SHA-256 sums, install the executable of the host's architecture
 * (`uname -m`) and the plan, run one agent action. No Node.js is needed on the host. Pure, so tests can
 * run the generated script.
 *
 * Parameters reach the script as environment variables only (`interpolationType: ENV_VAR`, so
 * `SSM_<name>`), each quoted; nothing a caller sends is pasted into the script text. The script execs
 * the agent last, so the agent's `strongbox: error: …` line stays the last line of stderr.
 */
import {
  AGENT_ACTIONS,
  AGENT_ARCHITECTURES,
  AGENT_ENV,
  AGENT_ERROR_PREFIX,
  type AgentAction,
  type AgentArchitecture,
  agentArgv,
  agentRestoreOptionsSchema,
  DOCUMENT_OPTIONS_PATTERN,
  DOCUMENT_PARAMETERS,
  DOCUMENT_RUN_STEP,
  DOCUMENT_TIMEOUT_PARAMETER,
  HOST_PATHS,
} from '#core/deployment';
import { TIERS } from '#core/tiers';

/** The longest run SSM allows a `aws:runShellScript` step (48 h). */
export const MAX_EXECUTION_TIMEOUT_SECONDS = 172_800;

/**
 * Where the `aws:downloadContent` steps put the bundle and the plan: a path relative to the command's own
 * downloads directory (`…/orchestration/<command-id>/downloads/`, which the SSM Agent creates and which is
 * the run step's working directory). An absolute path that does not exist yet would be taken as a *file*
 * name, so the second download would overwrite the first; a shared absolute directory would let two
 * commands on one host truncate each other's download. Each file gets its own relative path: its name.
 */
export function downloadPath(fileName: string): string {
  if (fileName === '' || fileName.includes('/') || fileName === '.' || fileName === '..') {
    throw new RangeError(`a download needs a plain file name, got '${fileName}'`);
  }
  return fileName;
}

/** One architecture's agent executable, as the deployment ships it (gzip). */
export interface AgentArtifact {
  /** HTTPS URL of the gzip file. */
  url: string;
  /** Name it downloads as (the last part of its key). */
  fileName: string;
  /** SHA-256 (hex) of the gzip file, checked before it is unpacked. */
  sha256: string;
  /** SHA-256 (hex) of the executable, checked after it is unpacked and of the one installed. */
  executableSha256: string;
}

/** What the document needs to know. Values may be CDK tokens (bucket name, key ARN). */
export interface AgentDocumentOptions {
  /** The agent executable of each architecture (AGENT_ARCHITECTURES). */
  agents: Record<AgentArchitecture, AgentArtifact>;
  /** HTTPS URL of the plan object. */
  planUrl: string;
  planFileName: string;
  planSha256: string;
  /** `s3://<bucket>`: the deployment's vault, exported to the agent as STRONGBOX_VAULT_URL. */
  vaultUrl: string;
  /** ARN of the vault key, exported as STRONGBOX_KMS_KEY_ID. */
  kmsKeyArn: string;
  /** Region of the deployment, exported as AWS_REGION. */
  region: string;
  /** The job names the document may run (allowed values of the job parameter). */
  jobs: readonly string[];
  /** Default run limit of the agent step, in seconds (1 to 172800). */
  defaultTimeoutSeconds: number;
}

/** Parameters the script reads, with the environment variable SSM sets for each. */
const ENV = Object.fromEntries(Object.values(DOCUMENT_PARAMETERS).map((name) => [name, `SSM_${name}`])) as {
  [K in (typeof DOCUMENT_PARAMETERS)[keyof typeof DOCUMENT_PARAMETERS]]: string;
};

/** Parameters the agent argv leaves out when they are empty. */
const OPTIONAL = [
  DOCUMENT_PARAMETERS.backupId,
  DOCUMENT_PARAMETERS.tier,
  DOCUMENT_PARAMETERS.options,
] as const;

/** The allowedPattern of each document parameter. */
export function parameterPatterns(jobs: readonly string[]): Record<string, string> {
  if (jobs.length === 0 || jobs.some((job) => !/^[a-z0-9][a-z0-9-]*$/.test(job))) {
    throw new RangeError(`job names must be lowercase letters, digits and dashes: ${jobs.join(', ')}`);
  }
  return {
    [DOCUMENT_PARAMETERS.action]: `^(${AGENT_ACTIONS.join('|')})$`,
    [DOCUMENT_PARAMETERS.job]: `^(${jobs.join('|')})$`,
    [DOCUMENT_PARAMETERS.backupId]: '^$|^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$',
    [DOCUMENT_PARAMETERS.tier]: `^$|^(${TIERS.join('|')})$`,
    [DOCUMENT_PARAMETERS.options]: DOCUMENT_OPTIONS_PATTERN,
    [DOCUMENT_TIMEOUT_PARAMETER]: '^([1-9][0-9]{0,4}|1[0-6][0-9]{4}|17[01][0-9]{3}|172[0-7][0-9]{2}|172800)$',
  };
}

/** Single-quotes a literal for bash. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * Bash lines that build `args` from the SSM_* variables, following core/deployment `agentArgv` for every
 * action: the argv is derived from agentArgv itself (with marker values), so the two cannot drift.
 */
export function argvScript(): string[] {
  const marker = (name: string) => `<<parameter:${name}>>`;
  const full = {
    job: marker('job'),
    backupId: marker('backupId'),
    tier: marker('tier'),
    options: marker('options'),
  };
  const lines = [`case "\${${ENV.action}}" in`];
  for (const action of AGENT_ACTIONS) {
    const argv = agentArgv({ action, ...full });
    // Elements that disappear when one optional parameter is empty belong to that parameter.
    const owner = new Map<number, string>();
    for (const name of OPTIONAL) {
      const without = agentArgv({ action, ...full, [name]: '' });
      let j = 0;
      argv.forEach((element, i) => {
        if (without[j] === element) j++;
        else owner.set(i, name);
      });
    }
    lines.push(`  ${action})`);
    let i = 0;
    while (i < argv.length) {
      const group = owner.get(i);
      const chunk: string[] = [];
      while (i < argv.length && owner.get(i) === group) {
        chunk.push(word(argv[i] as string, action));
        i++;
      }
      const add = `args+=(${chunk.join(' ')})`;
      lines.push(
        group ? `    if [ -n "\${${ENV[group as keyof typeof ENV]}:-}" ]; then ${add}; fi` : `    ${add}`,
      );
    }
    lines.push('    ;;');
  }
  lines.push(`  *) fail "unknown action '\${${ENV.action}}' (expected ${AGENT_ACTIONS.join(', ')})" ;;`);
  lines.push('esac');
  return ['args=()', ...lines];

  function word(element: string, action: AgentAction): string {
    const match = /^<<parameter:(\w+)>>$/.exec(element);
    if (!match) return shellQuote(element);
    const name = match[1] as keyof typeof ENV;
    if (!(name in ENV)) throw new Error(`agentArgv(${action}) gave an unknown marker ${name}`);
    return `"\${${ENV[name]}:-}"`;
  }
}

/** Name of the download step of one architecture's executable. */
export function agentDownloadStep(arch: AgentArchitecture): string {
  return `downloadAgent${arch[0]?.toUpperCase()}${arch.slice(1)}`;
}

/**
 * The script of the run step: install the executable of the host's architecture (unless the one
 * installed is already it) and the checked plan, export the deployment's overrides, then exec
 * `HOST_PATHS.agent <agentArgv…>`.
 */
export function agentRunScript(options: AgentDocumentOptions): string[] {
  const errorPrefix = AGENT_ERROR_PREFIX;
  const arches = Object.keys(AGENT_ARCHITECTURES) as AgentArchitecture[];
  const machines = arches.flatMap((arch) => AGENT_ARCHITECTURES[arch]);
  return [
    '#!/bin/bash',
    'set -euo pipefail',
    'umask 022',
    `fail() { printf '%s%s\\n' ${shellQuote(errorPrefix)} "$1" >&2; exit 2; }`,
    `if [ -z "\${${ENV.action}+x}" ] || [ -z "\${${ENV.job}+x}" ]; then`,
    '  fail "this SSM Agent does not pass document parameters as environment variables (needs 3.3.2746.0 or later): update the SSM Agent"',
    'fi',
    'sha256_of() { sha256sum "$1" | cut -d " " -f 1; }',
    // install_checked <staged file> <expected sha256> <destination> <mode>
    'install_checked() {',
    '  local src="$1" want="$2" dest="$3" mode="$4" got',
    '  [ -f "$src" ] || fail "downloaded file $PWD/$src is missing"',
    '  got="$(sha256_of "$src")" || fail "cannot compute the SHA-256 of $src"',
    '  [ "$got" = "$want" ] || fail "SHA-256 of $src is $got, expected $want: the download is damaged or was replaced; run the command again"',
    '  if ! cmp -s "$src" "$dest"; then',
    '    install -D -m "$mode" "$src" "$dest.new.$$" || fail "cannot write $dest"',
    '    mv -f "$dest.new.$$" "$dest" || fail "cannot install $dest"',
    '  fi',
    '}',
    // install_agent <staged gzip> <its sha256> <sha256 of the executable> <destination>: the installed
    // executable stays when it is already the one; a new one is unpacked beside it, checked, then renamed
    // over it (a command still running the old one keeps its file).
    'install_agent() {',
    '  local src="$1" want_gz="$2" want="$3" dest="$4" got',
    '  if [ -f "$dest" ] && [ "$(sha256_of "$dest")" = "$want" ]; then return 0; fi',
    '  [ -f "$src" ] || fail "downloaded file $PWD/$src is missing"',
    '  got="$(sha256_of "$src")" || fail "cannot compute the SHA-256 of $src"',
    '  [ "$got" = "$want_gz" ] || fail "SHA-256 of $src is $got, expected $want_gz: the download is damaged or was replaced; run the command again"',
    `  install -d -m 0755 "\${dest%/*}" || fail "cannot create \${dest%/*}"`,
    '  gzip -dc "$src" > "$dest.new.$$" || { rm -f "$dest.new.$$"; fail "cannot unpack $src into $dest (disk full?)"; }',
    '  got="$(sha256_of "$dest.new.$$")"',
    '  [ "$got" = "$want" ] || { rm -f "$dest.new.$$"; fail "SHA-256 of the executable unpacked from $src is $got, expected $want"; }',
    '  chmod 0755 "$dest.new.$$" && mv -f "$dest.new.$$" "$dest" || fail "cannot install $dest"',
    '}',
    // The downloads are relative to the working directory: this command's own downloads directory.
    'machine="$(uname -m)"',
    'case "$machine" in',
    ...arches.map((arch) => {
      const agent = options.agents[arch];
      return `  ${AGENT_ARCHITECTURES[arch].join('|')}) install_agent ${shellQuote(`./${downloadPath(agent.fileName)}`)} ${shellQuote(agent.sha256)} ${shellQuote(agent.executableSha256)} ${shellQuote(HOST_PATHS.agent)} ;;`;
    }),
    `  *) fail "no Strongbox agent for this host's architecture $machine (built for ${machines.join(', ')})" ;;`,
    'esac',
    `install_checked ${shellQuote(`./${downloadPath(options.planFileName)}`)} ${shellQuote(options.planSha256)} ${shellQuote(HOST_PATHS.plan)} 0644`,
    `export ${AGENT_ENV.vaultUrl}=${shellQuote(options.vaultUrl)}`,
    `export ${AGENT_ENV.kmsKeyId}=${shellQuote(options.kmsKeyArn)}`,
    `export ${AGENT_ENV.region}=${shellQuote(options.region)}`,
    ...argvScript(),
    `exec ${shellQuote(HOST_PATHS.agent)} "\${args[@]}"`,
  ];
}

/**
 * The document content (schemaVersion 2.2): an `aws:downloadContent` step per agent architecture and
 * one for the plan (SSM cannot choose a download by the host's architecture), and the run step
 * `DOCUMENT_RUN_STEP`, whose run limit is the `executionTimeout` parameter.
 */
export function agentDocumentContent(options: AgentDocumentOptions): Record<string, unknown> {
  const timeout = options.defaultTimeoutSeconds;
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > MAX_EXECUTION_TIMEOUT_SECONDS) {
    throw new RangeError(
      `defaultTimeoutSeconds must be 1 to ${MAX_EXECUTION_TIMEOUT_SECONDS}, got ${timeout}`,
    );
  }
  const patterns = parameterPatterns(options.jobs);
  const envParameter = (description: string, name: string, required: boolean) => ({
    type: 'String',
    description,
    ...(required ? {} : { default: '' }),
    allowedPattern: patterns[name],
    interpolationType: 'ENV_VAR',
  });
  const linux = { StringEquals: ['platformType', 'Linux'] };
  const download = (name: string, url: string, fileName: string) => ({
    action: 'aws:downloadContent',
    name,
    precondition: linux,
    inputs: {
      sourceType: 'S3',
      sourceInfo: JSON.stringify({ path: url }),
      destinationPath: downloadPath(fileName),
    },
  });
  return {
    schemaVersion: '2.2',
    description:
      'Strongbox: installs or updates the agent executable and the plan (SHA-256 checked), then runs one agent action.',
    parameters: {
      [DOCUMENT_PARAMETERS.action]: envParameter(
        `One of ${AGENT_ACTIONS.join(', ')}.`,
        DOCUMENT_PARAMETERS.action,
        true,
      ),
      [DOCUMENT_PARAMETERS.job]: envParameter('Job name from the plan.', DOCUMENT_PARAMETERS.job, true),
      [DOCUMENT_PARAMETERS.backupId]: envParameter(
        'Backup id to write (backup) or read (restore); empty for the latest.',
        DOCUMENT_PARAMETERS.backupId,
        false,
      ),
      [DOCUMENT_PARAMETERS.tier]: envParameter('GFS tier of a backup.', DOCUMENT_PARAMETERS.tier, false),
      [DOCUMENT_PARAMETERS.options]: envParameter(
        `Restore or drill options as JSON (${Object.keys(agentRestoreOptionsSchema.shape).join(', ')}).`,
        DOCUMENT_PARAMETERS.options,
        false,
      ),
      [DOCUMENT_TIMEOUT_PARAMETER]: {
        type: 'String',
        description: 'Seconds the agent may run (1 to 172800); the job timeout.',
        default: String(timeout),
        allowedPattern: patterns[DOCUMENT_TIMEOUT_PARAMETER],
      },
    },
    mainSteps: [
      ...(Object.keys(AGENT_ARCHITECTURES) as AgentArchitecture[]).map((arch) =>
        download(agentDownloadStep(arch), options.agents[arch].url, options.agents[arch].fileName),
      ),
      download('downloadPlan', options.planUrl, options.planFileName),
      {
        action: 'aws:runShellScript',
        name: DOCUMENT_RUN_STEP,
        precondition: linux,
        inputs: {
          timeoutSeconds: `{{ ${DOCUMENT_TIMEOUT_PARAMETER} }}`,
          runCommand: agentRunScript(options),
        },
      },
    ],
  };
}
