/** What a command hands back to the CLI: an exit status, a JSON value for `--json`, and text for people. */
export interface Outcome {
  /** 0 ok, 1 warning, 2 error — what monitoring systems read. */
  exitCode: 0 | 1 | 2;
  json: unknown;
  text: string;
}
