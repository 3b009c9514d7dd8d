/** `strongbox keygen PATH`: a new local master key (mode 0600; never overwrites). */
import { generateMasterKeyFile } from '#adapters/keys/local';
import type { Outcome } from './outcome';

export async function keygenCommand(path: string): Promise<Outcome> {
  await generateMasterKeyFile(path);
  return {
    exitCode: 0,
    json: { path },
    text: `wrote a new master key to ${path} (mode 0600). Keep a copy off this host: without it no backup can be restored.`,
  };
}
