/** Slack messages and delivery: adapters/alerts/slack, shared by notify-slack and the agent. */
export * from '#adapters/alerts/slack';
