"""The durable rollout engine: executes a campaign plan as a persisted state machine."""
