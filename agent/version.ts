/** The agent's version, recorded in every manifest. Kept in step with package.json by a unit test. */
export const VERSION = '0.1.0';
